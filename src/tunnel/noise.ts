/**
 * The tunnels' handshake: Noise_IK_25519_ChaChaPoly_SHA256 (noiseprotocol.org, rev. 34) in
 * WireGuard's message layout, with SHA-256 in place of BLAKE2s and a 12-byte cookie nonce.
 * Both hosts know each other's static key from the controller: the initiator proves its
 * own and learns nothing it did not know; the responder learns who is calling only once the
 * first message authenticates. Each handshake yields fresh session keys (forward secrecy
 * through the ephemeral keys).
 *
 *   -> e, es, s, ss, {timestamp}       initiation, 148 bytes
 *   <- e, ee, se, {}                   response, 92 bytes
 *
 * Every primitive is node:crypto's (OpenSSL's): X25519, SHA-256, HMAC, ChaCha20-Poly1305.
 * Nothing here runs per data packet; it may allocate.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, timingSafeEqual, type KeyObject } from 'node:crypto';

export const PROTOCOL = 'Noise_IK_25519_ChaChaPoly_SHA256';
export const PROLOGUE = 'weft tunnel v1';

export const MessageType = { Initiation: 1, Response: 2, CookieReply: 3, Data: 4 } as const;
export const INITIATION_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_REPLY_LEN = 52;

const KEY = 32;
const TAG = 16;

export interface KeyPair {
  /** Raw X25519 keys, 32 bytes each. */
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey: Buffer.from(jwk.d!, 'base64url'), publicKey: Buffer.from(jwk.x!, 'base64url') };
}

/** The public half of a raw private key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  const jwk = createPublicKey(privateKeyObject(privateKey)).export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url');
}

/** DER prefixes of X25519 keys (RFC 8410): PKCS#8 private, SubjectPublicKeyInfo public. */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

export function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY) throw new Error(`an X25519 private key is 32 bytes, not ${raw.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== KEY) throw new Error(`an X25519 public key is 32 bytes, not ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
}

/** X25519; throws on a low-order public key (an all-zero shared secret). */
function dh(privateKey: KeyObject, publicKey: Uint8Array): Buffer {
  const shared = diffieHellman({ privateKey, publicKey: publicKeyObject(publicKey) });
  if (shared.every((b) => b === 0)) throw new Error('low-order public key');
  return shared;
}

export const hash = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
export const hmac = (key: Uint8Array, ...parts: Uint8Array[]): Buffer => {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
};
/** A 16-byte MAC (mac1, mac2, cookies): HMAC-SHA-256 truncated. */
export const mac16 = (key: Uint8Array, data: Uint8Array): Buffer => hmac(key, data).subarray(0, 16);

/** Noise's HKDF: two or three 32-byte outputs. */
function hkdf(ck: Uint8Array, input: Uint8Array, n: 2 | 3): Buffer[] {
  const temp = hmac(ck, input);
  const out1 = hmac(temp, Buffer.from([1]));
  const out2 = hmac(temp, out1, Buffer.from([2]));
  if (n === 2) return [out1, out2];
  return [out1, out2, hmac(temp, out2, Buffer.from([3]))];
}

function nonce(n: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(BigInt(n), 4);
  return b;
}

export function aeadSeal(key: Uint8Array, n: number | Buffer, ad: Uint8Array, plain: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, typeof n === 'number' ? nonce(n) : n, { authTagLength: TAG });
  c.setAAD(ad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** The plaintext, or null when the tag does not authenticate. */
export function aeadOpen(key: Uint8Array, n: number | Buffer, ad: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < TAG) return null;
  const d = createDecipheriv('chacha20-poly1305', key, typeof n === 'number' ? nonce(n) : n, { authTagLength: TAG });
  d.setAAD(ad, { plaintextLength: sealed.length - TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
  } catch {
    return null;
  }
}

/** Noise's symmetric state: the chaining key, the handshake hash and the current key. */
class Symmetric {
  ck: Buffer;
  h: Buffer;
  k: Buffer | null = null;
  constructor() {
    const name = Buffer.from(PROTOCOL); // exactly 32 bytes: used as it is
    this.h = name;
    this.ck = name;
    this.mixHash(Buffer.from(PROLOGUE));
  }
  clone(): Symmetric {
    return Object.assign(Object.create(Symmetric.prototype) as Symmetric, { ck: this.ck, h: this.h, k: this.k });
  }
  mixHash(data: Uint8Array): void {
    this.h = hash(this.h, data);
  }
  mixKey(input: Uint8Array): void {
    const [ck, k] = hkdf(this.ck, input, 2);
    this.ck = ck;
    this.k = k;
  }
  /** Each key is used once here (for one message part), so its nonce is always 0. */
  encryptAndHash(plain: Uint8Array): Buffer {
    const c = aeadSeal(this.k!, 0, this.h, plain);
    this.mixHash(c);
    return c;
  }
  decryptAndHash(sealed: Uint8Array): Buffer | null {
    const p = aeadOpen(this.k!, 0, this.h, sealed);
    if (p !== null) this.mixHash(sealed);
    return p;
  }
  split(): [Buffer, Buffer] {
    const [a, b] = hkdf(this.ck, Buffer.alloc(0), 2);
    return [a, b];
  }
}

/** Session keys from a finished handshake, each 32 bytes. */
export interface SessionKeys {
  send: Buffer;
  receive: Buffer;
}

/** An initiation under way: what the initiator keeps until the response comes. */
export interface Initiation {
  message: Buffer;
  localIndex: number;
  ephemeral: KeyObject;
  sym: Symmetric;
}

/** A TAI64N-like timestamp: 8 bytes of seconds, 4 of nanoseconds, both big-endian; only
 * ever compared with the same peer's earlier ones (anti-replay of initiations). */
export function timestamp(nowMs = Date.now()): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64BE(0x4000000000000000n + BigInt(Math.floor(nowMs / 1000)), 0);
  b.writeUInt32BE(Math.floor((nowMs % 1000) * 1e6), 8);
  return b;
}

function ephemeralPair(): { key: KeyObject; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { key: privateKey, pub: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url') };
}

/**
 * The first message, to `responder` (its static public key), from us (`local`). mac1 and
 * mac2 are left zero for the caller (who knows the cookie, if any).
 */
export function createInitiation(local: { key: KeyObject; publicKey: Uint8Array }, responder: Uint8Array, localIndex: number, ts: Buffer): Initiation {
  const sym = new Symmetric();
  sym.mixHash(responder);
  const e = ephemeralPair();
  const msg = Buffer.alloc(INITIATION_LEN);
  msg[0] = MessageType.Initiation;
  msg.writeUInt32LE(localIndex, 4);
  e.pub.copy(msg, 8);
  sym.mixHash(e.pub);
  sym.mixKey(dh(e.key, responder)); // es
  sym.encryptAndHash(local.publicKey).copy(msg, 40); // s: 32 + 16
  sym.mixKey(dh(local.key, responder)); // ss
  sym.encryptAndHash(ts).copy(msg, 88); // timestamp: 12 + 16
  return { message: msg, localIndex, ephemeral: e.key, sym };
}

/** What the responder learns from an initiation: who sent it and when, and the state to
 * answer with. null: it does not authenticate (the caller counts why). */
export interface ConsumedInitiation {
  initiatorKey: Buffer;
  remoteIndex: number;
  timestamp: Buffer;
  sym: Symmetric;
  initiatorEphemeral: Buffer;
}

export function consumeInitiation(local: { key: KeyObject; publicKey: Uint8Array }, msg: Uint8Array): ConsumedInitiation | null {
  try {
    const m = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
    const sym = new Symmetric();
    sym.mixHash(local.publicKey);
    const re = Buffer.from(m.subarray(8, 40));
    sym.mixHash(re);
    sym.mixKey(dh(local.key, re)); // es
    const rs = sym.decryptAndHash(m.subarray(40, 88));
    if (rs === null) return null;
    sym.mixKey(dh(local.key, rs)); // ss
    const ts = sym.decryptAndHash(m.subarray(88, 116));
    if (ts === null) return null;
    return { initiatorKey: rs, remoteIndex: m.readUInt32LE(4), timestamp: ts, sym, initiatorEphemeral: re };
  } catch {
    return null; // a low-order or malformed public key
  }
}

/** The responder's answer; mac1 and mac2 left zero. Its keys: send first, receive second. */
export function createResponse(consumed: ConsumedInitiation, localIndex: number): { message: Buffer; keys: SessionKeys } {
  const sym = consumed.sym;
  const e = ephemeralPair();
  const msg = Buffer.alloc(RESPONSE_LEN);
  msg[0] = MessageType.Response;
  msg.writeUInt32LE(localIndex, 4);
  msg.writeUInt32LE(consumed.remoteIndex, 8);
  e.pub.copy(msg, 12);
  sym.mixHash(e.pub);
  sym.mixKey(dh(e.key, consumed.initiatorEphemeral)); // ee
  sym.mixKey(dh(e.key, consumed.initiatorKey)); // se
  sym.encryptAndHash(Buffer.alloc(0)).copy(msg, 44); // an empty payload: its tag
  const [i2r, r2i] = sym.split();
  return { message: msg, keys: { send: r2i, receive: i2r } };
}

/** The initiator's keys from a response to `init`, or null when it does not authenticate. */
export function consumeResponse(local: { key: KeyObject }, init: Initiation, msg: Uint8Array): SessionKeys | null {
  try {
    const m = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
    // Work on a copy: a forged response must not spoil the state for the real one.
    const s = init.sym.clone();
    const re = Buffer.from(m.subarray(12, 44));
    s.mixHash(re);
    s.mixKey(dh(init.ephemeral, re)); // ee
    s.mixKey(dh(local.key, re)); // se
    if (s.decryptAndHash(m.subarray(44, 60)) === null) return null;
    const [i2r, r2i] = s.split();
    return { send: i2r, receive: r2i };
  } catch {
    return null;
  }
}

/** mac1's key for messages to the holder of `publicKey`: anyone who does not know that
 * key cannot make a handshake message it will spend a Diffie-Hellman on. */
export const mac1Key = (publicKey: Uint8Array) => hash(Buffer.from('mac1----'), publicKey);
/** The key a cookie reply from the holder of `publicKey` is sealed with. */
export const cookieKey = (publicKey: Uint8Array) => hash(Buffer.from('cookie--'), publicKey);

/** Whether two MACs are equal, in constant time. */
export const sameMac = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);
