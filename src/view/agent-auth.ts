/**
 * How an agent proves which host it is, once its host is enrolled: every request (the join,
 * the watch) carries a signature by the host's identity key (Ed25519, made on the host;
 * the controller pinned its public half when the host's single-use join token was spent):
 *
 *   Authorization: WeftHost h1:1795582270098:BASE64URL(signature)
 *
 * over "weft agent v1\n" HOST "\n" MILLISECONDS "\n" METHOD " " PATH. A signature is good
 * for two minutes either side of the controller's clock and for that method and path only;
 * it crosses the network only inside TLS (an agent reaches its controller over https://,
 * plain http:// being for loopback), so nobody on the path can replay it.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export const AGENT_AUTH_SCHEME = 'WeftHost';
export const AGENT_AUTH_SKEW_MS = 120_000;
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

function message(host: string, ms: number, method: string, path: string): Buffer {
  return Buffer.from(`weft agent v1\n${host}\n${ms}\n${method.toUpperCase()} ${path}`);
}

export function signAgentRequest(host: string, key: KeyObject, method: string, path: string, now = Date.now()): string {
  return `${AGENT_AUTH_SCHEME} ${host}:${now}:${sign(null, message(host, now, method, path), key).toString('base64url')}`;
}

export interface SignedRequest {
  host: string;
  ms: number;
  signature: Buffer;
}

/** The parts of a WeftHost authorization header, or null when it is not one. */
export function parseAgentAuth(header: string | undefined): SignedRequest | null {
  const m = /^WeftHost ([A-Za-z0-9][A-Za-z0-9._-]{0,62}):(\d{1,16}):([A-Za-z0-9_-]{86})$/.exec(header ?? '');
  return m ? { host: m[1], ms: Number(m[2]), signature: Buffer.from(m[3], 'base64url') } : null;
}

/** Whether `req` is `host`'s signature (by `publicKey`, base64 of the raw 32 bytes) of this
 * method and path, made within the allowed skew of `now`. */
export function verifyAgentAuth(req: SignedRequest, publicKey: string, method: string, path: string, now = Date.now()): boolean {
  if (Math.abs(now - req.ms) > AGENT_AUTH_SKEW_MS) return false;
  const raw = Buffer.from(publicKey, 'base64');
  if (raw.length !== 32) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
    return verify(null, message(req.host, req.ms, method, path), key, req.signature);
  } catch {
    return false;
  }
}

/** A new identity key pair: the private key as PKCS#8 PEM, the public as base64 raw bytes. */
export function generateIdentity(): { pem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), publicKey: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64') };
}

/** The identity in a PEM file's text; throws when it is not an Ed25519 private key. */
export function identityFromPem(pem: string): { key: KeyObject; publicKey: string } {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an Ed25519 private key, not ${key.asymmetricKeyType}`);
  return { key, publicKey: Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url').toString('base64') };
}

/** How a join token names the controller's TLS authority, for the agent to pin: the
 * SHA-256 of the authority's certificate (DER), in base64url. */
export function caFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}
