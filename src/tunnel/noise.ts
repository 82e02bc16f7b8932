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
 * Nothing here runs per data packet; it may allocate. The Noise messages inside the framing
 * are checked against published test vectors (noise.test.ts: cacophony's and snow's).
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readU32le } from '../wire/bytes.js';

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

/** Noise's symmetric state: the chaining key, the handshake hash and the current key.
 * `prologue` is ours (PROLOGUE) except in the tests against published vectors. */
export class Symmetric {
  ck: Buffer;
  /** The handshake hash: after the last handshake message, the same on both sides. */
  h: Buffer;
  k: Buffer | null = null;
  constructor(prologue: Uint8Array = Buffer.from(PROLOGUE)) {
    const name = Buffer.from(PROTOCOL); // exactly 32 bytes: used as it is
    this.h = name;
    this.ck = name;
    this.mixHash(prologue);
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
  /** The transport keys: initiator to responder first. */
  split(): [Buffer, Buffer] {
    const [a, b] = hkdf(this.ck, Buffer.alloc(0), 2);
    return [a, b];
  }
}

/** A key pair as the handshake holds it: the private key for node:crypto, the public raw. */
export interface DhPair {
  key: KeyObject;
  publicKey: Uint8Array;
}

/** A DhPair from a raw private key. */
export function dhPair(privateKey: Uint8Array): DhPair {
  return { key: privateKeyObject(privateKey), publicKey: publicKeyOf(privateKey) };
}

function ephemeralPair(): DhPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { key: privateKey, publicKey: Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url') };
}

// ---- The IK pattern's two messages, as the Noise specification has them (§7.5) --------------
// The bytes of each message without WireGuard's framing (type, indexes, mac1 and mac2),
// for any payload; the framed functions below are these with the timestamp (or nothing) as
// payload and a fresh ephemeral key, and noise.test.ts checks these against other
// implementations' published test vectors. Each takes `sym` fresh (new Symmetric) for the
// first message and the same one, carried on, for the second.

/** -> e, es, s, ss, {payload}: e (32) ‖ s sealed (48) ‖ payload sealed (+16). Throws on a
 * low-order responder key. */
export function writeIkInitiation(sym: Symmetric, local: DhPair, responder: Uint8Array, e: DhPair, payload: Uint8Array): Buffer {
  sym.mixHash(responder); // the pre-message: <- s
  sym.mixHash(e.publicKey);
  sym.mixKey(dh(e.key, responder)); // es
  const s = sym.encryptAndHash(local.publicKey);
  sym.mixKey(dh(local.key, responder)); // ss
  return Buffer.concat([e.publicKey, s, sym.encryptAndHash(payload)]);
}

/** The responder's side of writeIkInitiation; null when it does not authenticate (or
 * carries a low-order key). */
export function readIkInitiation(sym: Symmetric, local: DhPair, msg: Uint8Array): { initiatorKey: Buffer; initiatorEphemeral: Buffer; payload: Buffer } | null {
  if (msg.length < KEY + KEY + TAG + TAG) return null;
  try {
    sym.mixHash(local.publicKey);
    const re = Buffer.from(msg.subarray(0, KEY));
    sym.mixHash(re);
    sym.mixKey(dh(local.key, re)); // es
    const rs = sym.decryptAndHash(msg.subarray(KEY, 2 * KEY + TAG));
    if (rs === null) return null;
    sym.mixKey(dh(local.key, rs)); // ss
    const payload = sym.decryptAndHash(msg.subarray(2 * KEY + TAG));
    if (payload === null) return null;
    return { initiatorKey: rs, initiatorEphemeral: re, payload };
  } catch {
    return null; // a low-order or malformed public key
  }
}

/** <- e, ee, se, {payload}: e (32) ‖ payload sealed (+16), from the responder's state after
 * readIkInitiation. Throws on a low-order key. */
export function writeIkResponse(sym: Symmetric, e: DhPair, initiatorEphemeral: Uint8Array, initiatorKey: Uint8Array, payload: Uint8Array): Buffer {
  sym.mixHash(e.publicKey);
  sym.mixKey(dh(e.key, initiatorEphemeral)); // ee
  sym.mixKey(dh(e.key, initiatorKey)); // se
  return Buffer.concat([e.publicKey, sym.encryptAndHash(payload)]);
}

/** The initiator's side of writeIkResponse: the payload, or null when it does not
 * authenticate. `sym` is the state after writeIkInitiation. */
export function readIkResponse(sym: Symmetric, local: { key: KeyObject }, ephemeral: KeyObject, msg: Uint8Array): Buffer | null {
  if (msg.length < KEY + TAG) return null;
  try {
    const re = Buffer.from(msg.subarray(0, KEY));
    sym.mixHash(re);
    sym.mixKey(dh(ephemeral, re)); // ee
    sym.mixKey(dh(local.key, re)); // se
    return sym.decryptAndHash(msg.subarray(KEY));
  } catch {
    return null;
  }
}

// ---- The same in WireGuard's framing -------------------------------------------------------

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

/** Where the Noise message sits in each framed one: after type, reserved and the indexes. */
const INITIATION_NOISE = 8;
const RESPONSE_NOISE = 12;
/** mac1 and mac2 end every handshake message. */
const MACS = 32;

/**
 * The first message, to `responder` (its static public key), from us (`local`), with a
 * fresh ephemeral key. mac1 and mac2 are left zero for the caller (who knows the cookie,
 * if any).
 */
export function createInitiation(local: DhPair, responder: Uint8Array, localIndex: number, ts: Buffer): Initiation {
  const sym = new Symmetric();
  const e = ephemeralPair();
  const msg = Buffer.alloc(INITIATION_LEN);
  msg[0] = MessageType.Initiation;
  msg.writeUInt32LE(localIndex, 4);
  writeIkInitiation(sym, local, responder, e, ts).copy(msg, INITIATION_NOISE);
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

export function consumeInitiation(local: DhPair, msg: Uint8Array): ConsumedInitiation | null {
  if (msg.length !== INITIATION_LEN) return null;
  const sym = new Symmetric();
  const r = readIkInitiation(sym, local, msg.subarray(INITIATION_NOISE, INITIATION_LEN - MACS));
  if (r === null) return null;
  return { initiatorKey: r.initiatorKey, remoteIndex: readU32le(msg, 4), timestamp: r.payload, sym, initiatorEphemeral: r.initiatorEphemeral };
}

/** The responder's answer, with a fresh ephemeral key; mac1 and mac2 left zero. Its keys:
 * send first, receive second. */
export function createResponse(consumed: ConsumedInitiation, localIndex: number): { message: Buffer; keys: SessionKeys } {
  const sym = consumed.sym;
  const msg = Buffer.alloc(RESPONSE_LEN);
  msg[0] = MessageType.Response;
  msg.writeUInt32LE(localIndex, 4);
  msg.writeUInt32LE(consumed.remoteIndex, 8);
  writeIkResponse(sym, ephemeralPair(), consumed.initiatorEphemeral, consumed.initiatorKey, Buffer.alloc(0)).copy(msg, RESPONSE_NOISE);
  const [i2r, r2i] = sym.split();
  return { message: msg, keys: { send: r2i, receive: i2r } };
}

/** The initiator's keys from a response to `init`, or null when it does not authenticate. */
export function consumeResponse(local: { key: KeyObject }, init: Initiation, msg: Uint8Array): SessionKeys | null {
  if (msg.length !== RESPONSE_LEN) return null;
  // Work on a copy: a forged response must not spoil the state for the real one.
  const s = init.sym.clone();
  if (readIkResponse(s, local, init.ephemeral, msg.subarray(RESPONSE_NOISE, RESPONSE_LEN - MACS)) === null) return null;
  const [i2r, r2i] = s.split();
  return { send: i2r, receive: r2i };
}

/** mac1's key for messages to the holder of `publicKey`: anyone who does not know that
 * key cannot make a handshake message it will spend a Diffie-Hellman on. */
export const mac1Key = (publicKey: Uint8Array) => hash(Buffer.from('mac1----'), publicKey);
/** The key a cookie reply from the holder of `publicKey` is sealed with. */
export const cookieKey = (publicKey: Uint8Array) => hash(Buffer.from('cookie--'), publicKey);

/** Whether two MACs are equal, in constant time. */
export const sameMac = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);
