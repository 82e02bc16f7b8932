/**
 * A host's keys, made on the host the first time its agent starts and kept in files only
 * root reads: its identity (Ed25519, for the controller) and its tunnel key (X25519).
 *
 * Private halves never leave the host. The identity's public half is pinned by the
 * controller when the host enrolls; the tunnel key's goes to the controller at every join,
 * and from there to the host's peers.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { generateKeyPair, publicKeyOf, type KeyPair } from '../tunnel/noise.js';
import { generateIdentity, identityFromPem } from '../view/agent-auth.js';

export function defaultKeyFile(host: string): string {
  return `/var/lib/weft/agent-${host}/tunnel.key`;
}

/** Reads the key in `file` (base64 of the 32-byte private key), or makes one there. */
export function loadOrCreateKey(file: string): { keys: KeyPair; created: boolean } {
  let text: string | null = null;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: cannot read the tunnel key: ${(err as Error).message}`);
  }
  if (text !== null) {
    const raw = Buffer.from(text, 'base64');
    if (!/^[A-Za-z0-9+/]{43}=$/.test(text) || raw.length !== 32) throw new Error(`${file}: not a tunnel key (one line: 32 bytes in base64); move it away to make a new one`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return { keys: { privateKey: raw, publicKey: publicKeyOf(raw) }, created: false };
  }
  const keys = generateKeyPair();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${Buffer.from(keys.privateKey).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return { keys, created: true };
}

/** The host's identity key (Ed25519, PKCS#8 PEM) in `file`, made there if missing: what the
 * agent signs its requests to the controller with once its host is enrolled. */
export function loadOrCreateIdentity(file: string): { key: KeyObject; publicKey: string; created: boolean } {
  let pem: string | null = null;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file}: cannot read the identity key: ${(err as Error).message}`);
  }
  const created = pem === null;
  if (pem === null) {
    const made = generateIdentity();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, made.pem, { mode: 0o600, flag: 'wx' });
    pem = made.pem;
  }
  try {
    return { ...identityFromPem(pem), created };
  } catch (err) {
    throw new Error(`${file}: not an identity key (${(err as Error).message}); move it away to make a new one, then enroll the host again (weft host create)`);
  }
}
