/**
 * The controller's TLS: a certificate authority of its own and a serving certificate it
 * signs, made at first start in DATA_DIR/tls (keys 0600), or the operator's (--tls-cert,
 * --tls-key: a chain whose last certificate is the authority). Agents pin the authority by
 * its fingerprint, which every join token carries, so no name in the certificate has to
 * match how a host reaches the controller.
 *
 * The fingerprint is the SHA-256 of the authority's certificate (DER), in base64url.
 */
import 'reflect-metadata';
import { KeyObject, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { caFingerprint } from '../view/agent-auth.js';
import { writePrivateFile } from '../io/private-file.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface ControllerTls {
  /** The serving key (PEM) and its chain: the serving certificate, then the authority. */
  key: string;
  cert: string;
  /** The authority's certificate (PEM) and its fingerprint. */
  ca: string;
  fingerprint: string;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const YEAR_MS = 365 * 86_400_000;

/** The fingerprint join tokens carry of a certificate in PEM. */
const fingerprintOf = (pem: string) => caFingerprint(new X509Certificate(pem).raw);

/** The certificates in a PEM text, in order. */
function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The operator's certificate chain and key. */
export function tlsFromFiles(certFile: string, keyFile: string): ControllerTls {
  const cert = readFileSync(certFile, 'utf8');
  const chain = pemCertificates(cert);
  if (chain.length === 0) throw new Error(`${certFile}: no PEM certificate in it`);
  const ca = chain[chain.length - 1];
  return { key: readFileSync(keyFile, 'utf8'), cert, ca, fingerprint: fingerprintOf(ca) };
}

/** DATA_DIR/tls's authority and serving certificate, made there if missing. */
export async function loadOrCreateTls(dir: string): Promise<ControllerTls> {
  const at = (f: string) => join(dir, f);
  if (!existsSync(at('server.key'))) await create(dir);
  const ca = readFileSync(at('ca.crt'), 'utf8');
  return { key: readFileSync(at('server.key'), 'utf8'), cert: readFileSync(at('server.crt'), 'utf8') + ca, ca, fingerprint: fingerprintOf(ca) };
}

async function create(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: `CN=weft controller CA (${hostname()})`, notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 20 * YEAR_MS),
    keys: caKeys, signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as CryptoKeyPair;
  // Names help a client that checks them (the CLI with --ca-file); agents check the pin.
  const ips = Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(), subject: 'CN=weft controller', issuer: ca.subject, notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 10 * YEAR_MS),
    signingKey: caKeys.privateKey, publicKey: keys.publicKey, signingAlgorithm: ALG,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'dns', value: hostname() }, ...[...new Set(['127.0.0.1', ...ips])].map((value) => ({ type: 'ip' as const, value }))]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
  const pem = (k: CryptoKey) => KeyObject.from(k).export({ type: 'pkcs8', format: 'pem' });
  writePrivateFile(join(dir, 'ca.key'), pem(caKeys.privateKey), { what: 'the controller\'s CA key' });
  writeFileSync(join(dir, 'ca.crt'), `${ca.toString('pem')}\n`, { mode: 0o644 });
  writeFileSync(join(dir, 'server.crt'), `${cert.toString('pem')}\n`, { mode: 0o644 });
  writePrivateFile(join(dir, 'server.key'), pem(keys.privateKey), { what: 'the controller\'s TLS key' });
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}
