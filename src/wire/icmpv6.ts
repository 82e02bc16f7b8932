/**
 * ICMPv6 (RFC 4443) and the Neighbor Discovery messages Weft answers for its ports
 * (RFC 4861 §4.3, §4.4). The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Type      |     Code      |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           Message body (echo: identifier, sequence;           |
 * |   NS/NA: flags or reserved (4), target address (16), options) |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readU16, readU32, WireError, writeU16, writeU32, readMac, writeMac, type MacNumber } from './bytes.js';
import { finish, pseudoHeaderV6, sumBytes } from './checksum.js';
import { IpProtocol } from './ipv4.js';

export const TYPE = 0;
export const CODE = 1;
export const CHECKSUM = 2;
export const BODY = 4;
export const HEADER_LEN = BODY + 4;
/** Neighbor Discovery: where the target address starts, and the first option. */
export const ND_TARGET = 8;
export const ND_OPTIONS = ND_TARGET + 16;

export const Icmpv6Type = {
  DestinationUnreachable: 1,
  PacketTooBig: 2,
  EchoRequest: 128,
  EchoReply: 129,
  RouterSolicitation: 133,
  NeighborSolicitation: 135,
  NeighborAdvertisement: 136,
} as const;

/** NDP option types (RFC 4861 §4.6). */
export const NdOption = { SourceLinkLayerAddress: 1, TargetLinkLayerAddress: 2 } as const;

export class Icmpv6Packet {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): Icmpv6Packet | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'icmpv6', `${len} bytes, the header needs ${HEADER_LEN}`);
    const p = new Icmpv6Packet(buf, off, len);
    const nd = p.type === Icmpv6Type.NeighborSolicitation || p.type === Icmpv6Type.NeighborAdvertisement;
    if (nd && len < ND_OPTIONS) return new WireError('truncated', 'icmpv6', `neighbor discovery message of ${len} bytes`);
    return p;
  }

  get type(): number { return this.buf[this.off + TYPE]; }
  get code(): number { return this.buf[this.off + CODE]; }
  get checksum(): number { return readU16(this.buf, this.off + CHECKSUM); }
  get body(): number { return readU32(this.buf, this.off + BODY); }
  /** NS/NA target address: a copy. */
  get ndTarget(): Uint8Array { return this.buf.slice(this.off + ND_TARGET, this.off + ND_TARGET + 16); }

  /** The link-layer address carried in an NDP option of `type`, or null. A malformed
   * option list (a zero length, or one running past the end) ends the search. */
  ndLinkLayerOption(type: number): MacNumber | null {
    let o = this.off + ND_OPTIONS;
    const end = this.off + this.len;
    while (o + 2 <= end) {
      const optLen = this.buf[o + 1] * 8;
      if (optLen === 0 || o + optLen > end) return null;
      if (this.buf[o] === type && optLen >= 8) return readMac(this.buf, o + 2);
      o += optLen;
    }
    return null;
  }

  verifyChecksum(src: Uint8Array, dst: Uint8Array): boolean {
    return finish(sumBytes(this.buf, this.off, this.len, pseudoHeaderV6(src, dst, IpProtocol.Icmpv6, this.len))) === 0;
  }
}

export class Icmpv6Repr {
  constructor(
    public type: number,
    public code: number,
    /** The four bytes after the checksum. */
    public body: number,
    /** Everything after the first eight bytes. */
    public data: Uint8Array,
  ) {}

  /** A Neighbor Advertisement for `target` at `mac` (solicited, override), RFC 4861 §4.4. */
  static neighborAdvertisement(target: Uint8Array, mac: MacNumber, solicited = true): Icmpv6Repr {
    const data = new Uint8Array(16 + 8);
    data.set(target, 0);
    data[16] = NdOption.TargetLinkLayerAddress;
    data[17] = 1;
    writeMac(data, 18, mac);
    const flags = (solicited ? 0x4000_0000 : 0) | 0x2000_0000;
    return new Icmpv6Repr(Icmpv6Type.NeighborAdvertisement, 0, flags >>> 0, data);
  }

  static parse(p: Icmpv6Packet, src: Uint8Array, dst: Uint8Array): Icmpv6Repr | WireError {
    if (!p.verifyChecksum(src, dst)) return new WireError('malformed', 'icmpv6', 'checksum mismatch');
    return new Icmpv6Repr(p.type, p.code, p.body, p.buf.slice(p.off + HEADER_LEN, p.off + p.len));
  }

  bufferLen(): number { return HEADER_LEN + this.data.length; }

  emit(buf: Uint8Array, off: number, src: Uint8Array, dst: Uint8Array): void {
    const len = this.bufferLen();
    buf[off + TYPE] = this.type;
    buf[off + CODE] = this.code;
    writeU16(buf, off + CHECKSUM, 0);
    writeU32(buf, off + BODY, this.body);
    buf.set(this.data, off + HEADER_LEN);
    writeU16(buf, off + CHECKSUM, finish(sumBytes(buf, off, len, pseudoHeaderV6(src, dst, IpProtocol.Icmpv6, len))));
  }
}
