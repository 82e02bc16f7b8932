/**
 * How an agent proves which host it is, once its host is enrolled: every request (the join,
 * the watch) carries a signature by the host's identity key (Ed25519, made on the host;
 * the controller pinned its public half when the host's single-use join token was spent):
 *
 *   Authorization: WeftHost h1:1795582270098:NONCE:BASE64URL(signature)
 *
 * over "weft agent v2\n" HOST "\n" MILLISECONDS "\n" NONCE "\n" METHOD " " TARGET "\n"
 * BASE64URL(SHA-256(BODY)), where TARGET is the path with its query, as sent, and NONCE 16
 * random bytes (base64url). A signature is good for two minutes either side of the
 * controller's clock, for that method, target and body only, and once: the controller
 * remembers each host's nonces until their time is out of the window
 * (src/controller/seen-signatures.ts), so a signature seen again, on the network or in a
 * log, is refused. It crosses the network only inside TLS (an agent reaches its controller
 * over https://, plain http:// being for loopback).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

export const AGENT_AUTH_SCHEME = 'WeftHost';
export const AGENT_AUTH_SKEW_MS = 120_000;
/** Random bytes in a nonce: enough that an agent never makes the same one twice. */
const NONCE_BYTES = 16;
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** What a signature covers of a request. `target`: the path and query, as sent
 * ("/v1/agents/h1/watch?revision=4"); `body`: its bytes (none for a GET). */
export interface AgentRequest {
  method: string;
  target: string;
  body?: Uint8Array | string;
}

function message(host: string, ms: number, nonce: string, req: AgentRequest): Buffer {
  const digest = createHash('sha256').update(req.body ?? '').digest('base64url');
  return Buffer.from(`weft agent v2\n${host}\n${ms}\n${nonce}\n${req.method.toUpperCase()} ${req.target}\n${digest}`);
}

/** The Authorization header for `req`, signed by `host`'s identity `key`, with a fresh nonce. */
export function signAgentRequest(host: string, key: KeyObject, req: AgentRequest, now = Date.now()): string {
  const nonce = randomBytes(NONCE_BYTES).toString('base64url');
  return `${AGENT_AUTH_SCHEME} ${host}:${now}:${nonce}:${sign(null, message(host, now, nonce, req), key).toString('base64url')}`;
}

export interface SignedRequest {
  host: string;
  ms: number;
  nonce: string;
  signature: Buffer;
}

/** The parts of a WeftHost authorization header, or null when it is not one. */
export function parseAgentAuth(header: string | undefined): SignedRequest | null {
  const m = /^WeftHost ([A-Za-z0-9][A-Za-z0-9._-]{0,62}):(\d{1,16}):([A-Za-z0-9_-]{22}):([A-Za-z0-9_-]{86})$/.exec(header ?? '');
  return m ? { host: m[1], ms: Number(m[2]), nonce: m[3], signature: Buffer.from(m[4], 'base64url') } : null;
}

/** Whether `header` is meant as a WeftHost signature (parsed or not: an older agent's has no
 * nonce), for a refusal to say what is wrong with it. */
export function looksLikeAgentAuth(header: string | undefined): boolean {
  return header?.startsWith(`${AGENT_AUTH_SCHEME} `) ?? false;
}

/** Whether `signed` is its host's signature (by `publicKey`, base64 of the raw 32 bytes) of
 * this request, made within the allowed skew of `now`. Whether it was seen before is the
 * caller's to check (SeenSignatures), after this. */
export function verifyAgentAuth(signed: SignedRequest, publicKey: string, req: AgentRequest, now = Date.now()): boolean {
  if (Math.abs(now - signed.ms) > AGENT_AUTH_SKEW_MS) return false;
  const raw = Buffer.from(publicKey, 'base64');
  if (raw.length !== 32) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
    return verify(null, message(signed.host, signed.ms, signed.nonce, req), key, signed.signature);
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
