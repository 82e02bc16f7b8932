/**
 * A router's NAT connections: a fixed-size table in typed arrays, allocation-free per packet.
 *
 * Each connection joins an inside endpoint (a VM's address and port), the outside endpoint it
 * is seen as (the router's external address and a port of it), and the remote endpoint it
 * talks to. Two chained hash indexes find it: from the inside (protocol, inside, remote) for
 * packets going out, and from the outside (protocol, outside, remote) for packets coming in.
 * For ICMP echo the "port" is the echo identifier and the remote port is 0.
 *
 * Mapping is address-and-port-dependent (RFC 4787 §4.1): one outside port may serve several
 * remotes. An outside port is the inside one when that is free ("port preservation"), else
 * one picked by hash from 1024..65535. Timeouts (RFC 5382 for TCP, RFC 4787 for UDP):
 * TCP 7440 s once a reply was seen and until a FIN or RST, 240 s before that and after a FIN,
 * 10 s after a RST; UDP 300 s; ICMP 60 s. Expired entries go in `expire`, called about once a
 * second. When the table is full, new connections are refused (the caller counts them) and
 * established ones carry on.
 */

const NONE = -1;
const PORT_FIRST = 1024;
const PORT_SPAN = 65536 - PORT_FIRST;
/** How many outside ports are tried for a new connection before giving up. */
const PORT_PROBES = 128;

export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;

/** Timeouts, in milliseconds. */
const TCP_ESTABLISHED_MS = 7440_000;
const TCP_TRANSITORY_MS = 240_000;
const TCP_RESET_MS = 10_000;
const UDP_MS = 300_000;
const ICMP_MS = 60_000;

/** TCP flags and what the table remembers of them. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;
const SEEN_REPLY = 1;
const SEEN_FIN = 2;
const SEEN_RST = 4;

function mix(a: number, b: number, c: number, d: number, e: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ b ^ (h >>> 15), 0xc2b2ae35);
  h = Math.imul(h ^ c ^ (h >>> 13), 0x27d4eb2f);
  h = Math.imul(h ^ d ^ (h >>> 16), 0x165667b1);
  h = Math.imul(h ^ e ^ (h >>> 15), 0x85ebca6b);
  return (h ^ (h >>> 16)) >>> 0;
}

export class NatTable {
  readonly capacity: number;
  private readonly mask: number;
  readonly protocol: Uint8Array;
  readonly insideIp: Uint32Array;
  readonly insidePort: Uint16Array;
  readonly outsideIp: Uint32Array;
  readonly outsidePort: Uint16Array;
  readonly remoteIp: Uint32Array;
  readonly remotePort: Uint16Array;
  private readonly expires: Float64Array;
  private readonly seen: Uint8Array;
  private readonly nextOut: Int32Array;
  private readonly nextIn: Int32Array;
  private readonly bucketsOut: Int32Array;
  private readonly bucketsIn: Int32Array;
  private readonly used: Uint8Array;
  private freeHead = 0;
  /** Connections in the table. */
  size = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    let buckets = 1;
    while (buckets < capacity * 2) buckets *= 2;
    this.mask = buckets - 1;
    this.protocol = new Uint8Array(capacity);
    this.insideIp = new Uint32Array(capacity);
    this.insidePort = new Uint16Array(capacity);
    this.outsideIp = new Uint32Array(capacity);
    this.outsidePort = new Uint16Array(capacity);
    this.remoteIp = new Uint32Array(capacity);
    this.remotePort = new Uint16Array(capacity);
    this.expires = new Float64Array(capacity);
    this.seen = new Uint8Array(capacity);
    this.used = new Uint8Array(capacity);
    // Free entries are chained through nextOut.
    this.nextOut = new Int32Array(capacity);
    this.nextIn = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.nextOut[i] = i + 1 < capacity ? i + 1 : NONE;
    this.bucketsOut = new Int32Array(buckets).fill(NONE);
    this.bucketsIn = new Int32Array(buckets).fill(NONE);
  }

  /** The connection a packet going out belongs to, or -1. */
  findOut(protocol: number, insideIp: number, insidePort: number, remoteIp: number, remotePort: number): number {
    for (let i = this.bucketsOut[mix(protocol, insideIp, insidePort, remoteIp, remotePort) & this.mask]; i !== NONE; i = this.nextOut[i]) {
      if (this.insidePort[i] === insidePort && this.insideIp[i] === insideIp && this.remoteIp[i] === remoteIp && this.remotePort[i] === remotePort && this.protocol[i] === protocol) return i;
    }
    return NONE;
  }

  /** The connection a packet coming in belongs to, or -1. */
  findIn(protocol: number, outsideIp: number, outsidePort: number, remoteIp: number, remotePort: number): number {
    for (let i = this.bucketsIn[mix(protocol, outsideIp, outsidePort, remoteIp, remotePort) & this.mask]; i !== NONE; i = this.nextIn[i]) {
      if (this.outsidePort[i] === outsidePort && this.outsideIp[i] === outsideIp && this.remoteIp[i] === remoteIp && this.remotePort[i] === remotePort && this.protocol[i] === protocol) return i;
    }
    return NONE;
  }

  /**
   * A new connection from the inside, seen from outside at `outsideIp` and a port chosen
   * here; or -1 when the table is full or no port is free for this remote.
   */
  openOut(protocol: number, insideIp: number, insidePort: number, remoteIp: number, remotePort: number, outsideIp: number, now: number): number {
    if (this.freeHead === NONE) return NONE;
    let port = insidePort;
    if (port < PORT_FIRST || this.findIn(protocol, outsideIp, port, remoteIp, remotePort) !== NONE) {
      const start = mix(protocol, insideIp, insidePort, remoteIp, remotePort) % PORT_SPAN;
      let k = 0;
      for (; k < PORT_PROBES; k++) {
        port = PORT_FIRST + ((start + k) % PORT_SPAN);
        if (this.findIn(protocol, outsideIp, port, remoteIp, remotePort) === NONE) break;
      }
      if (k === PORT_PROBES) return NONE;
    }
    return this.insert(protocol, insideIp, insidePort, outsideIp, port, remoteIp, remotePort, now);
  }

  /** A new connection from the outside (a port forward): both ends given. */
  openIn(protocol: number, insideIp: number, insidePort: number, outsideIp: number, outsidePort: number, remoteIp: number, remotePort: number, now: number): number {
    if (this.freeHead === NONE || this.findOut(protocol, insideIp, insidePort, remoteIp, remotePort) !== NONE) return NONE;
    return this.insert(protocol, insideIp, insidePort, outsideIp, outsidePort, remoteIp, remotePort, now);
  }

  private insert(protocol: number, insideIp: number, insidePort: number, outsideIp: number, outsidePort: number, remoteIp: number, remotePort: number, now: number): number {
    const i = this.freeHead;
    this.freeHead = this.nextOut[i];
    this.protocol[i] = protocol;
    this.insideIp[i] = insideIp;
    this.insidePort[i] = insidePort;
    this.outsideIp[i] = outsideIp;
    this.outsidePort[i] = outsidePort;
    this.remoteIp[i] = remoteIp;
    this.remotePort[i] = remotePort;
    this.seen[i] = 0;
    this.used[i] = 1;
    this.expires[i] = now + (protocol === TCP ? TCP_TRANSITORY_MS : protocol === UDP ? UDP_MS : ICMP_MS);
    const bo = mix(protocol, insideIp, insidePort, remoteIp, remotePort) & this.mask;
    this.nextOut[i] = this.bucketsOut[bo];
    this.bucketsOut[bo] = i;
    const bi = mix(protocol, outsideIp, outsidePort, remoteIp, remotePort) & this.mask;
    this.nextIn[i] = this.bucketsIn[bi];
    this.bucketsIn[bi] = i;
    this.size++;
    return i;
  }

  /** A packet of connection `i` passed: its timeout starts again, by what TCP said. */
  touch(i: number, reply: boolean, tcpFlags: number, now: number): void {
    const p = this.protocol[i];
    if (p !== TCP) {
      this.expires[i] = now + (p === UDP ? UDP_MS : ICMP_MS);
      return;
    }
    let s = this.seen[i];
    if (reply) s |= SEEN_REPLY;
    if (tcpFlags & TCP_FIN) s |= SEEN_FIN;
    if (tcpFlags & TCP_RST) s |= SEEN_RST;
    this.seen[i] = s;
    this.expires[i] = now + (s & SEEN_RST ? TCP_RESET_MS : s & SEEN_FIN || !(s & SEEN_REPLY) ? TCP_TRANSITORY_MS : TCP_ESTABLISHED_MS);
  }

  /** Removes connections whose time is up; returns how many. */
  expire(now: number): number {
    let n = 0;
    for (let i = 0; i < this.capacity; i++) {
      if (this.used[i] === 1 && this.expires[i] <= now) {
        this.remove(i);
        n++;
      }
    }
    return n;
  }

  /** Removes every connection (the router's external address changed, say). */
  clear(): void {
    for (let i = 0; i < this.capacity; i++) if (this.used[i] === 1) this.remove(i);
  }

  private remove(i: number): void {
    const bo = mix(this.protocol[i], this.insideIp[i], this.insidePort[i], this.remoteIp[i], this.remotePort[i]) & this.mask;
    if (this.bucketsOut[bo] === i) this.bucketsOut[bo] = this.nextOut[i];
    else for (let j = this.bucketsOut[bo]; j !== NONE; j = this.nextOut[j]) if (this.nextOut[j] === i) { this.nextOut[j] = this.nextOut[i]; break; }
    const bi = mix(this.protocol[i], this.outsideIp[i], this.outsidePort[i], this.remoteIp[i], this.remotePort[i]) & this.mask;
    if (this.bucketsIn[bi] === i) this.bucketsIn[bi] = this.nextIn[i];
    else for (let j = this.bucketsIn[bi]; j !== NONE; j = this.nextIn[j]) if (this.nextIn[j] === i) { this.nextIn[j] = this.nextIn[i]; break; }
    this.used[i] = 0;
    this.nextOut[i] = this.freeHead;
    this.freeHead = i;
    this.size--;
  }
}
