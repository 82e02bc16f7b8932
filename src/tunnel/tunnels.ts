/**
 * Encrypted tunnels between this host and its peers (the other hosts of its encrypted
 * networks), WireGuard's way: a Noise IK handshake (noise.ts) per pair of hosts gives
 * session keys; data datagrams are sealed with ChaCha20-Poly1305 under a 64-bit counter
 * nonce and checked against a replay window; sessions are replaced by a new handshake after
 * `rekeyAfterMs` or `rekeyAfterMessages` and never used past 1.5 times that.
 *
 * Rotation loses nothing: the initiator sends with its old session until the response
 * comes; the responder sends with its old one until the first datagram under the new one
 * confirms the initiator has it; both keep the previous session for receiving what is in
 * flight. Frames sent before any session exists are held (a few per peer) for the
 * handshake to finish.
 *
 * What is refused, is refused silently: nothing is ever sent in answer to a datagram that
 * does not authenticate, so a scan learns nothing. Handshake messages must carry mac1,
 * keyed by this host's public key (which only the controller's hosts know); under load
 * (more handshake messages a second than `loadThreshold`) they must also carry mac2, a
 * cookie bound to their source address that this host hands out in a cookie reply, and
 * each source address is rate limited. A flood of handshakes from an unknown sender costs
 * one HMAC each and never touches the sessions in use.
 *
 * The data path calls `seal` and `receive` per datagram (allocation-free: the AEAD is the
 * native addon's), `tick` every second or so, and `drain` to send what the tunnels
 * themselves have to say (handshake messages, keepalives, held frames).
 */
import { randomBytes } from 'node:crypto';
import { native } from '../io/native.js';
import { formatIpv4, readU32le, writeU32le } from '../wire/bytes.js';
import { TUNNEL_HANDLED, TUNNEL_HEADER_LEN, TunnelRefusal, type TunnelEngine, type TunnelPeer, type TunnelPeerSpec, type TunnelStats } from '../datapath/model.js';
import { ReplayWindow } from './replay.js';
import {
  aeadOpen, aeadSeal, consumeInitiation, consumeResponse, cookieKey, COOKIE_REPLY_LEN, createInitiation, createResponse, INITIATION_LEN,
  mac1Key, mac16, MessageType, privateKeyObject, publicKeyOf, RESPONSE_LEN, sameMac, timestamp, type Initiation,
} from './noise.js';
import type { KeyObject } from 'node:crypto';

/** WireGuard's timers (its whitepaper, §6), ours by default. */
export const REKEY_AFTER_MS = 120_000;
const REKEY_TIMEOUT_MS = 5_000;
const REKEY_ATTEMPT_MS = 90_000;
const KEEPALIVE_MS = 10_000;
const COOKIE_SECRET_MS = 120_000;
/** Counters stay exact JavaScript numbers: a session is replaced long before 2^52. */
const REKEY_AFTER_MESSAGES = 2 ** 52;
const REJECT_AFTER_MESSAGES = 2 ** 53 - 2 ** 13;
/** Initiations from one peer closer together than this are refused (WireGuard: 50 a second). */
const INITIATION_MIN_GAP_MS = 20;
/** Frames held per peer while its first handshake runs. */
const HELD_FRAMES = 32;
const EMPTY = new Uint8Array(0);
/** Sources the handshake rate limiter remembers before it starts over. */
const LIMITER_SOURCES = 4096;

export interface TunnelOptions {
  /** This host's X25519 private key (32 bytes). */
  privateKey: Uint8Array;
  /** The largest datagram a session seals (the data path's slot): held frames' size. */
  maxPlaintext: number;
  /** Replace a session after this long (default 120 s); never use one past 1.5 times it. */
  rekeyAfterMs?: number;
  /** Replace a session after sending this many datagrams in it (default 2^52). */
  rekeyAfterMessages?: number;
  /** Handshake messages a second above which mac2 (a cookie) is required (default 50). */
  loadThreshold?: number;
  /** Handshakes a second one source address may start once under load (default 20, burst 5). */
  handshakesPerSecond?: number;
  /** Send a keepalive when nothing was sent for this long (0: only as WireGuard's passive
   * keepalive, 10 s after receiving data and sending none). */
  persistentKeepaliveMs?: number;
  /** The clock, in milliseconds: Date.now by default (tests pass their own). */
  now?: () => number;
}

/** One session: keys from one handshake, and its counters. */
class Session {
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  constructor(
    readonly peer: Peer,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly sendKey: Buffer,
    readonly receiveKey: Buffer,
    readonly initiator: boolean,
    readonly created: number,
  ) {}
}

/** A remote host of the tunnels. `address`/`port` is where it is now: where it was last
 * heard from in an authenticated datagram, else where the controller says it is. */
class Peer implements TunnelPeer {
  address: number;
  port: number;
  configuredAddress: number;
  configuredPort: number;
  readonly mac1Key: Buffer;
  readonly cookieKey: Buffer;
  current: Session | null = null;
  previous: Session | null = null;
  /** A session this host answered a handshake for, until the initiator's first datagram. */
  next: Session | null = null;
  handshake: Initiation | null = null;
  handshakeSentAt = 0;
  handshakeStartedAt = 0;
  lastMac1Sent: Buffer | null = null;
  cookie: Buffer | null = null;
  cookieAt = 0;
  /** The greatest initiation timestamp accepted from it (anti-replay), and when. */
  lastTimestamp: Buffer | null = null;
  lastInitiationAt = -Infinity;
  lastSentAt = 0;
  lastReceivedAt = 0;
  /** When the last unanswered-data handshake was started (see tick). */
  unansweredSince = 0;
  held: Uint8Array | null = null;
  readonly heldLengths = new Int32Array(HELD_FRAMES);
  heldCount = 0;
  readonly stats = { handshakes: 0, rotations: 0, authFailures: 0, replays: 0, roams: 0 };

  constructor(
    readonly key: Buffer,
    address: number,
    port: number,
  ) {
    this.address = this.configuredAddress = address;
    this.port = this.configuredPort = port;
    this.mac1Key = mac1Key(key);
    this.cookieKey = cookieKey(key);
  }
}

/** A token bucket per source address, for handshakes under load. */
class SourceLimiter {
  private readonly buckets = new Map<number, { tokens: number; at: number }>();
  constructor(private readonly perSecond: number, private readonly burst: number) {}
  allow(address: number, now: number): boolean {
    let b = this.buckets.get(address);
    if (b === undefined) {
      if (this.buckets.size >= LIMITER_SOURCES) this.buckets.clear();
      this.buckets.set(address, (b = { tokens: this.burst, at: now }));
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.perSecond) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

interface Outgoing {
  data: Uint8Array;
  address: number;
  port: number;
}

export class Tunnels implements TunnelEngine {
  lastPeer: TunnelPeer | null = null;
  private readonly local: { key: KeyObject; publicKey: Buffer };
  private readonly ownMac1Key: Buffer;
  private readonly ownCookieKey: Buffer;
  private readonly peers = new Map<string, Peer>();
  private readonly sessions = new Map<number, Session>();
  private readonly handshakes = new Map<number, Peer>();
  private readonly outbox: Outgoing[] = [];
  private readonly limiter: SourceLimiter;
  private readonly now: () => number;
  private readonly rekeyAfterMs: number;
  private readonly rejectAfterMs: number;
  private readonly rekeyAfterMessages: number;
  private readonly loadThreshold: number;
  private readonly keepaliveMs: number;
  private readonly maxPlaintext: number;
  private cookieSecret = randomBytes(32);
  private cookieSecretAt: number;
  private loadWindowAt = 0;
  private loadCount = 0;
  private loadPrevious = 0;
  private lastTimestampMs = 0;

  constructor(opts: TunnelOptions) {
    this.local = { key: privateKeyObject(opts.privateKey), publicKey: Buffer.from(publicKeyOf(opts.privateKey)) };
    this.ownMac1Key = mac1Key(this.local.publicKey);
    this.ownCookieKey = cookieKey(this.local.publicKey);
    this.now = opts.now ?? Date.now;
    this.rekeyAfterMs = opts.rekeyAfterMs ?? REKEY_AFTER_MS;
    this.rejectAfterMs = this.rekeyAfterMs * 1.5;
    this.rekeyAfterMessages = Math.min(opts.rekeyAfterMessages ?? REKEY_AFTER_MESSAGES, REKEY_AFTER_MESSAGES);
    this.loadThreshold = opts.loadThreshold ?? 50;
    this.limiter = new SourceLimiter(opts.handshakesPerSecond ?? 20, 5);
    this.keepaliveMs = opts.persistentKeepaliveMs ?? 0;
    this.maxPlaintext = opts.maxPlaintext;
    this.cookieSecretAt = this.now();
  }

  get publicKey(): Buffer {
    return this.local.publicKey;
  }

  // ---- peers ------------------------------------------------------------------------------

  setPeers(specs: TunnelPeerSpec[]): void {
    const want = new Map(specs.map((s) => [Buffer.from(s.publicKey).toString('base64'), s]));
    for (const [text, peer] of this.peers) {
      if (want.has(text)) continue;
      // Cut off at once: its sessions and handshakes are forgotten, so its datagrams now
      // find no session and are dropped.
      this.forget(peer.current);
      this.forget(peer.previous);
      this.forget(peer.next);
      this.endHandshake(peer);
      this.peers.delete(text);
    }
    for (const [text, s] of want) {
      if (s.publicKey.length !== 32) throw new Error(`peer ${text}: a public key is 32 bytes, not ${s.publicKey.length}`);
      const have = this.peers.get(text);
      if (have === undefined) {
        const p = new Peer(Buffer.from(s.publicKey), s.address, s.port);
        this.peers.set(text, p);
        // Handshake at once, not at the first frame: a peer still holding a session from
        // before this host restarted moves to the new one now, instead of sending into a
        // session nobody has until it expires.
        this.initiate(p, this.now());
      } else if (have.configuredAddress !== s.address || have.configuredPort !== s.port) {
        // The controller learned where it is now: believe it over an older roam.
        have.address = have.configuredAddress = s.address;
        have.port = have.configuredPort = s.port;
      }
    }
  }

  peerOf(publicKey: Uint8Array): TunnelPeer | undefined {
    return this.peers.get(Buffer.from(publicKey).toString('base64'));
  }

  // ---- the data path's calls ------------------------------------------------------------

  seal(peer: TunnelPeer, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number {
    const p = peer as Peer;
    const s = p.current;
    const now = this.now();
    if (s === null || now - s.created >= this.rejectAfterMs || s.sendCounter >= REJECT_AFTER_MESSAGES) {
      const held = this.hold(p, src, srcOff, len);
      this.initiate(p, now);
      return held ? 0 : -1;
    }
    const sealed = this.sealIn(s, src, srcOff, len, dst, dstOff);
    p.lastSentAt = now;
    if (p.handshake === null && (s.sendCounter >= this.rekeyAfterMessages || now - s.created >= (s.initiator ? this.rekeyAfterMs : this.rekeyAfterMs * 1.25))) {
      // The initiator of a session replaces it; the responder only if the initiator has not
      // (it sends nothing, say), a little later, so the two rarely cross.
      this.initiate(p, now);
    }
    return sealed;
  }

  receive(buf: Uint8Array, off: number, len: number, fromAddress: number, fromPort: number): number {
    if (len < 4 || (buf[off + 1] | buf[off + 2] | buf[off + 3]) !== 0) return TunnelRefusal.malformed;
    const type = buf[off];
    if (type === MessageType.Data) return this.openData(buf, off, len, fromAddress, fromPort);
    const now = this.now();
    if (type === MessageType.Initiation && len === INITIATION_LEN) return this.onInitiation(buf.subarray(off, off + len), fromAddress, fromPort, now);
    if (type === MessageType.Response && len === RESPONSE_LEN) return this.onResponse(buf.subarray(off, off + len), fromAddress, fromPort, now);
    if (type === MessageType.CookieReply && len === COOKIE_REPLY_LEN) return this.onCookieReply(buf.subarray(off, off + len), now);
    return TunnelRefusal.malformed;
  }

  tick(): void {
    const now = this.now();
    if (now - this.cookieSecretAt >= COOKIE_SECRET_MS) {
      this.cookieSecret = randomBytes(32);
      this.cookieSecretAt = now;
    }
    for (const p of this.peers.values()) {
      for (const s of [p.current, p.previous, p.next]) {
        if (s !== null && now - s.created >= this.rejectAfterMs) this.forget(s);
      }
      if (p.handshake !== null && now - p.handshakeSentAt >= REKEY_TIMEOUT_MS) {
        if (now - p.handshakeStartedAt >= REKEY_ATTEMPT_MS) {
          // Give up until there is something to send again.
          this.endHandshake(p);
          p.heldCount = 0;
        } else {
          this.initiate(p, now);
        }
      }
      const s = p.current;
      if (s === null) continue;
      // Data sent and nothing heard since for 15 s (WireGuard's rule): the peer may have lost
      // its side of the session (a restart); a new handshake settles it.
      if (p.lastSentAt > p.lastReceivedAt && now - Math.max(p.lastReceivedAt, p.unansweredSince) >= KEEPALIVE_MS + REKEY_TIMEOUT_MS && p.handshake === null) {
        p.unansweredSince = now;
        this.initiate(p, now);
      }
      const quietFor = now - p.lastSentAt;
      if ((this.keepaliveMs > 0 && quietFor >= this.keepaliveMs) || (p.lastReceivedAt > p.lastSentAt && now - p.lastReceivedAt >= KEEPALIVE_MS)) {
        this.keepalive(p, s, now);
      }
    }
  }

  /** This host's address changed: a keepalive to every peer with a session, so each follows
   * at once instead of sending to the old address until it hears from this host. */
  announce(): void {
    const now = this.now();
    for (const p of this.peers.values()) if (p.current !== null) this.keepalive(p, p.current, now);
  }

  drain(send: (data: Uint8Array, address: number, port: number) => void): void {
    for (let i = 0; i < this.outbox.length; i++) send(this.outbox[i].data, this.outbox[i].address, this.outbox[i].port);
    this.outbox.length = 0;
  }

  get pending(): boolean {
    return this.outbox.length > 0;
  }

  stats(peer: TunnelPeer): TunnelStats {
    const p = peer as Peer;
    const now = this.now();
    return {
      endpoint: `${formatIpv4(p.address)}:${p.port}`,
      session: p.current === null ? null : { ageMs: now - p.current.created, initiator: p.current.initiator, sent: p.current.sendCounter },
      handshakes: p.stats.handshakes,
      rotations: p.stats.rotations,
      authFailures: p.stats.authFailures,
      replays: p.stats.replays,
      roams: p.stats.roams,
    };
  }

  // ---- data -----------------------------------------------------------------------------

  private sealIn(s: Session, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number {
    const counter = s.sendCounter++;
    dst[dstOff] = MessageType.Data;
    dst[dstOff + 1] = dst[dstOff + 2] = dst[dstOff + 3] = 0;
    writeU32le(dst, dstOff + 4, s.remoteIndex);
    writeU32le(dst, dstOff + 8, counter >>> 0);
    writeU32le(dst, dstOff + 12, Math.floor(counter / 0x1_0000_0000));
    return TUNNEL_HEADER_LEN + native.aeadSeal(s.sendKey, counter, src, srcOff, len, dst, dstOff + TUNNEL_HEADER_LEN);
  }

  private openData(buf: Uint8Array, off: number, len: number, fromAddress: number, fromPort: number): number {
    if (len < TUNNEL_HEADER_LEN + 16) return TunnelRefusal.malformed;
    const s = this.sessions.get(readU32le(buf, off + 4));
    if (s === undefined) return TunnelRefusal.unknownSession;
    const high = readU32le(buf, off + 12);
    const counter = high * 0x1_0000_0000 + readU32le(buf, off + 8);
    const now = this.now();
    if (high >= 0x20_0000 || counter >= REJECT_AFTER_MESSAGES || now - s.created >= this.rejectAfterMs) return TunnelRefusal.expired;
    const p = s.peer;
    if (!s.replay.fresh(counter)) {
      p.stats.replays++;
      return TunnelRefusal.replay;
    }
    const plain = native.aeadOpen(s.receiveKey, counter, buf, off + TUNNEL_HEADER_LEN, len - TUNNEL_HEADER_LEN, buf, off + TUNNEL_HEADER_LEN);
    if (plain < 0) {
      p.stats.authFailures++;
      return TunnelRefusal.authFailed;
    }
    s.replay.accept(counter);
    if (p.next === s) {
      // The initiator's first datagram in the session this host answered: it has the keys,
      // so this host may send in it too.
      p.next = null;
      this.promote(p, s, now);
    }
    this.heardFrom(p, fromAddress, fromPort);
    p.lastReceivedAt = now;
    this.lastPeer = p;
    return plain;
  }

  /** `s` becomes the session `p` is sent to in; the one it replaces still receives. */
  private promote(p: Peer, s: Session, now: number): void {
    this.forget(p.previous);
    p.previous = p.current;
    p.current = s;
    this.established(p, now);
  }

  /** An authenticated message came from here: the peer is here now (it may have roamed). */
  private heardFrom(p: Peer, address: number, port: number): void {
    if (p.address === address && p.port === port) return;
    p.address = address;
    p.port = port;
    p.stats.roams++;
  }

  /** An empty datagram in `s`: the peer hears from this host (and confirms a session). */
  private keepalive(p: Peer, s: Session, now: number): void {
    this.sendSealed(p, s, EMPTY, now);
  }

  /** Seals `plain` in `s` into a datagram of its own, for the outbox. */
  private sendSealed(p: Peer, s: Session, plain: Uint8Array, now: number, plainOff = 0, len = plain.length): void {
    const out = new Uint8Array(TUNNEL_HEADER_LEN + len + 16);
    this.sealIn(s, plain, plainOff, len, out, 0);
    this.outbox.push({ data: out, address: p.address, port: p.port });
    p.lastSentAt = now;
  }

  private hold(p: Peer, src: Uint8Array, srcOff: number, len: number): boolean {
    if (p.heldCount === HELD_FRAMES || len > this.maxPlaintext) return false;
    if (p.held === null) p.held = new Uint8Array(HELD_FRAMES * this.maxPlaintext);
    p.held.set(src.subarray(srcOff, srcOff + len), p.heldCount * this.maxPlaintext);
    p.heldLengths[p.heldCount++] = len;
    return true;
  }

  /** A session with `p` is usable for sending: what was held goes out in it. */
  private established(p: Peer, now: number): void {
    p.stats.handshakes++;
    if (p.previous !== null) p.stats.rotations++;
    const s = p.current!;
    for (let i = 0; i < p.heldCount; i++) this.sendSealed(p, s, p.held!, now, i * this.maxPlaintext, p.heldLengths[i]);
    p.heldCount = 0;
  }

  private forget(s: Session | null): void {
    if (s === null) return;
    this.sessions.delete(s.localIndex);
    const p = s.peer;
    if (p.current === s) p.current = null;
    if (p.previous === s) p.previous = null;
    if (p.next === s) p.next = null;
  }

  // ---- handshakes -----------------------------------------------------------------------

  /** No handshake of this host's with `p` under way any more. */
  private endHandshake(p: Peer): void {
    if (p.handshake !== null) this.handshakes.delete(p.handshake.localIndex);
    p.handshake = null;
    p.handshakeStartedAt = 0;
  }

  /** Whether a handshake message carries mac1 for this host: made by someone who knows its
   * public key. Checked before anything else is spent on it. */
  private hasMac1(msg: Uint8Array): boolean {
    const at = msg.length - 32;
    return sameMac(mac16(this.ownMac1Key, msg.subarray(0, at)), msg.subarray(at, at + 16));
  }

  private newIndex(): number {
    for (;;) {
      const i = randomBytes(4).readUInt32LE(0);
      if (!this.sessions.has(i) && !this.handshakes.has(i)) return i;
    }
  }

  /** Starts a handshake with `p`, unless one was sent less than REKEY_TIMEOUT ago. */
  private initiate(p: Peer, now: number): void {
    if (p.handshake !== null && now - p.handshakeSentAt < REKEY_TIMEOUT_MS) return;
    if (p.handshake !== null) this.handshakes.delete(p.handshake.localIndex);
    const index = this.newIndex();
    // Timestamps only ever increase, even for two handshakes within a millisecond.
    this.lastTimestampMs = Math.max(Date.now(), this.lastTimestampMs + 1);
    const init = createInitiation(this.local, p.key, index, timestamp(this.lastTimestampMs));
    p.lastMac1Sent = this.addMacs(init.message, p, now);
    p.handshake = init;
    p.handshakeSentAt = now;
    if (p.handshakeStartedAt === 0) p.handshakeStartedAt = now;
    this.handshakes.set(index, p);
    this.outbox.push({ data: init.message, address: p.address, port: p.port });
  }

  /** Writes mac1 (keyed by the recipient's public key) and mac2 (its cookie for us, while
   * fresh) into a handshake message; returns mac1. */
  private addMacs(msg: Buffer, p: Peer, now: number): Buffer {
    const at = msg.length - 32;
    const mac1 = mac16(p.mac1Key, msg.subarray(0, at));
    mac1.copy(msg, at);
    if (p.cookie !== null && now - p.cookieAt < COOKIE_SECRET_MS - 10_000) mac16(p.cookie, msg.subarray(0, at + 16)).copy(msg, at + 16);
    return Buffer.from(mac1);
  }

  /** The checks every handshake message passes before any Diffie-Hellman is spent on it:
   * mac1, then under load mac2 (a cookie reply otherwise) and the source's rate. */
  private admit(msg: Uint8Array, fromAddress: number, fromPort: number, now: number): number {
    if (!this.hasMac1(msg)) return TunnelRefusal.handshakeRefused;
    const at = msg.length - 32;
    if (now - this.loadWindowAt >= 1000) {
      this.loadPrevious = now - this.loadWindowAt >= 2000 ? 0 : this.loadCount;
      this.loadCount = 0;
      this.loadWindowAt = now;
    }
    this.loadCount++;
    if (this.loadCount <= this.loadThreshold && this.loadPrevious <= this.loadThreshold) return 0;
    // Under load: the sender must show it receives at the address it sends from.
    const cookie = this.cookieFor(fromAddress, fromPort);
    if (!sameMac(mac16(cookie, msg.subarray(0, at + 16)), msg.subarray(at + 16, at + 32))) {
      if (this.limiter.allow(fromAddress, now)) this.sendCookieReply(msg, cookie, fromAddress, fromPort);
      return TunnelRefusal.rateLimited;
    }
    return this.limiter.allow(fromAddress, now) ? 0 : TunnelRefusal.rateLimited;
  }

  private cookieFor(address: number, port: number): Buffer {
    const src = Buffer.alloc(6);
    src.writeUInt32BE(address, 0);
    src.writeUInt16BE(port, 4);
    return mac16(this.cookieSecret, src);
  }

  private sendCookieReply(msg: Uint8Array, cookie: Buffer, address: number, port: number): void {
    const reply = Buffer.alloc(COOKIE_REPLY_LEN);
    reply[0] = MessageType.CookieReply;
    reply.writeUInt32LE(readU32le(msg, 4), 4); // the sender's index
    const nonce = randomBytes(12);
    nonce.copy(reply, 8);
    const at = msg.length - 32;
    aeadSeal(this.ownCookieKey, nonce, msg.subarray(at, at + 16), cookie).copy(reply, 20);
    this.outbox.push({ data: reply, address, port });
  }

  private onInitiation(msg: Uint8Array, fromAddress: number, fromPort: number, now: number): number {
    const admitted = this.admit(msg, fromAddress, fromPort, now);
    if (admitted !== 0) return admitted;
    const c = consumeInitiation(this.local, msg);
    if (c === null) return TunnelRefusal.authFailed;
    const p = this.peers.get(c.initiatorKey.toString('base64'));
    if (p === undefined) return TunnelRefusal.handshakeRefused;
    if (p.lastTimestamp !== null && Buffer.compare(c.timestamp, p.lastTimestamp) <= 0) {
      // The latest one again is the peer sending it twice (see the tie-break below): not
      // an attack; an older one is a replay.
      if (Buffer.compare(c.timestamp, p.lastTimestamp) === 0) return TUNNEL_HANDLED;
      p.stats.replays++;
      return TunnelRefusal.replay;
    }
    if (now - p.lastInitiationAt < INITIATION_MIN_GAP_MS) return TunnelRefusal.rateLimited;
    p.lastTimestamp = c.timestamp;
    p.lastInitiationAt = now;
    if (p.handshake !== null) {
      // Both hosts started a handshake at once: the one whose key sorts lower wins, so the
      // pair ends up with one new session rather than two that push each other out. The
      // winner sends its initiation again: the first may have reached the peer before the
      // peer knew this host, and been refused.
      if (Buffer.compare(this.local.publicKey, p.key) < 0) {
        this.outbox.push({ data: p.handshake.message, address: p.address, port: p.port });
        return TUNNEL_HANDLED;
      }
      this.endHandshake(p);
    }
    const index = this.newIndex();
    const { message, keys } = createResponse(c, index);
    p.lastMac1Sent = this.addMacs(message, p, now);
    this.forget(p.next);
    const s = new Session(p, index, c.remoteIndex, keys.send, keys.receive, false, now);
    p.next = s;
    this.sessions.set(index, s);
    this.heardFrom(p, fromAddress, fromPort);
    this.outbox.push({ data: message, address: fromAddress, port: fromPort });
    return TUNNEL_HANDLED;
  }

  /** A response: mac1 as any handshake message, but no cookie even under load. It must name
   * a handshake of ours by its random index, which only the peer we sent it to (or someone
   * on the path) knows, so it cannot come from a flood of forged sources. */
  private onResponse(msg: Uint8Array, fromAddress: number, fromPort: number, now: number): number {
    if (!this.hasMac1(msg)) return TunnelRefusal.handshakeRefused;
    const index = readU32le(msg, 8);
    const p = this.handshakes.get(index);
    if (p === undefined || p.handshake === null || p.handshake.localIndex !== index) return TunnelRefusal.unknownSession;
    const keys = consumeResponse(this.local, p.handshake, msg);
    if (keys === null) {
      p.stats.authFailures++;
      return TunnelRefusal.authFailed;
    }
    this.endHandshake(p);
    const s = new Session(p, index, readU32le(msg, 4), keys.send, keys.receive, true, now);
    this.sessions.set(index, s);
    this.heardFrom(p, fromAddress, fromPort);
    p.lastReceivedAt = now;
    const held = p.heldCount;
    this.promote(p, s, now);
    // The responder may send in the session once it hears from us in it.
    if (held === 0) this.keepalive(p, s, now);
    return TUNNEL_HANDLED;
  }

  /** A cookie for a handshake message this host sent: an initiation (its index a handshake
   * under way) or a response (its index the session it offered). */
  private onCookieReply(msg: Uint8Array, now: number): number {
    const index = readU32le(msg, 4);
    const p = this.handshakes.get(index) ?? this.sessions.get(index)?.peer;
    if (p === undefined || p.lastMac1Sent === null) return TunnelRefusal.unknownSession;
    const cookie = aeadOpen(p.cookieKey, Buffer.from(msg.subarray(8, 20)), p.lastMac1Sent, msg.subarray(20, 52));
    if (cookie === null) return TunnelRefusal.authFailed;
    p.cookie = cookie;
    p.cookieAt = now;
    // An initiation is sent again at once, now with mac2 (the peer is there, only busy); a
    // response goes with mac2 when the peer tries again.
    if (p.handshake !== null && p.handshake.localIndex === index) {
      p.handshakeSentAt = now - REKEY_TIMEOUT_MS;
      this.initiate(p, now);
    }
    return TUNNEL_HANDLED;
  }
}
