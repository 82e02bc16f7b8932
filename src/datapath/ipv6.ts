/**
 * IPv6 tables for the per-packet path: prefixes and neighbours as 32-bit words, so that a
 * routed packet is matched and its next MAC found without building a string or a BigInt.
 * Built by the control plane (they allocate); looked up per packet (they do not).
 */
import { parseIpv6, readU32 } from '../wire/bytes.js';
import { ROUTER_MAC } from './router-mac.js';

/** The router's link-local address: fe80:: with ROUTER_MAC's modified EUI-64 (RFC 4291
 * appendix A), the source of its router advertisements and the VMs' IPv6 gateway. */
export const ROUTER_LINK_LOCAL = eui64(parseIpv6('fe80::'), ROUTER_MAC);

/** `prefix` (its first 8 bytes) with the interface identifier made from `mac`. */
export function eui64(prefix: Uint8Array, mac: number): Uint8Array {
  const out = new Uint8Array(16);
  out.set(prefix.subarray(0, 8));
  const m = [0, 1, 2, 3, 4, 5].map((i) => Math.floor(mac / 2 ** (8 * (5 - i))) & 0xff);
  out.set([m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]], 8);
  return out;
}

/** An IPv6 prefix as words and masks. */
export class Prefix6 {
  readonly words = new Uint32Array(4);
  readonly masks = new Uint32Array(4);

  constructor(
    bytes: Uint8Array,
    readonly length: number,
  ) {
    for (let i = 0; i < 4; i++) {
      const bits = Math.max(0, Math.min(32, length - 32 * i));
      this.masks[i] = bits === 0 ? 0 : (0xffff_ffff << (32 - bits)) >>> 0;
      this.words[i] = (readU32(bytes, 4 * i) & this.masks[i]) >>> 0;
    }
  }

  static parse(cidr: string): Prefix6 {
    const [addr, len] = cidr.split('/');
    return new Prefix6(parseIpv6(addr), Number(len));
  }

  /** Whether the address at mem[at, at+16) is in this prefix. */
  contains(mem: Uint8Array, at: number): boolean {
    for (let i = 0; i < 4; i++) if (((readU32(mem, at + 4 * i) & this.masks[i]) >>> 0) !== this.words[i]) return false;
    return true;
  }
}

/** IPv6 address -> MAC, for the neighbours the controller told us about. */
export class Neighbors6 {
  private readonly buckets = new Map<number, Array<{ w: Uint32Array; mac: number }>>();

  set(address: Uint8Array, mac: number): void {
    const w = new Uint32Array([0, 1, 2, 3].map((i) => readU32(address, 4 * i)));
    const key = fold(w[0], w[1], w[2], w[3]);
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = []));
    b.push({ w, mac });
  }

  /** The MAC of the address at mem[at, at+16), or undefined. */
  get(mem: Uint8Array, at: number): number | undefined {
    const w0 = readU32(mem, at);
    const w1 = readU32(mem, at + 4);
    const w2 = readU32(mem, at + 8);
    const w3 = readU32(mem, at + 12);
    const b = this.buckets.get(fold(w0, w1, w2, w3));
    if (b === undefined) return undefined;
    for (let i = 0; i < b.length; i++) {
      const e = b[i].w;
      if (e[0] === w0 && e[1] === w1 && e[2] === w2 && e[3] === w3) return b[i].mac;
    }
    return undefined;
  }
}

function fold(a: number, b: number, c: number, d: number): number {
  return (Math.imul(a ^ c, 0x9e3779b1) ^ Math.imul(b ^ d, 0x85ebca77)) >>> 0;
}
