/**
 * IPv4 (RFC 791).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version|  IHL  |   DSCP    |ECN|          Total Length         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Identification        |Flags|      Fragment Offset    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Time to Live |    Protocol   |         Header Checksum       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       Source Address                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination Address                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options (IHL > 5) ...                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readU16, readU32, WireError, writeU16, writeU32, type Ipv4Number } from './bytes.js';
import { internetChecksum } from './checksum.js';

export const VER_IHL = 0;
export const DSCP_ECN = 1;
export const TOTAL_LEN = 2;
export const IDENT = 4;
export const FLAGS_FRAG = 6;
export const TTL = 8;
export const PROTOCOL = 9;
export const CHECKSUM = 10;
export const SRC = 12;
export const DST = 16;
export const HEADER_LEN = DST + 4;

export const IpProtocol = { Icmp: 1, Tcp: 6, Udp: 17, Icmpv6: 58 } as const;

export class Ipv4Packet {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  /** Checks version, header length and total length against the bytes at hand. Bytes past
   * the total length (Ethernet padding) are allowed and ignored. */
  static checked(buf: Uint8Array, off = 0, len = buf.length - off): Ipv4Packet | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'ipv4', `${len} bytes, the header needs ${HEADER_LEN}`);
    const p = new Ipv4Packet(buf, off, len);
    if (p.version !== 4) return new WireError('malformed', 'ipv4', `version ${p.version}`);
    if (p.headerLen < HEADER_LEN) return new WireError('malformed', 'ipv4', `header length ${p.headerLen}`);
    if (p.totalLen < p.headerLen) return new WireError('malformed', 'ipv4', `total length ${p.totalLen} below header length ${p.headerLen}`);
    if (p.totalLen > len) return new WireError('truncated', 'ipv4', `total length ${p.totalLen}, ${len} bytes at hand`);
    return p;
  }

  get version(): number { return this.buf[this.off + VER_IHL] >>> 4; }
  get headerLen(): number { return (this.buf[this.off + VER_IHL] & 0x0f) * 4; }
  get dscp(): number { return this.buf[this.off + DSCP_ECN] >>> 2; }
  get ecn(): number { return this.buf[this.off + DSCP_ECN] & 3; }
  get totalLen(): number { return readU16(this.buf, this.off + TOTAL_LEN); }
  get ident(): number { return readU16(this.buf, this.off + IDENT); }
  get dontFragment(): boolean { return (this.buf[this.off + FLAGS_FRAG] & 0x40) !== 0; }
  get moreFragments(): boolean { return (this.buf[this.off + FLAGS_FRAG] & 0x20) !== 0; }
  get fragmentOffset(): number { return (readU16(this.buf, this.off + FLAGS_FRAG) & 0x1fff) * 8; }
  get ttl(): number { return this.buf[this.off + TTL]; }
  get protocol(): number { return this.buf[this.off + PROTOCOL]; }
  get checksum(): number { return readU16(this.buf, this.off + CHECKSUM); }
  get src(): Ipv4Number { return readU32(this.buf, this.off + SRC); }
  get dst(): Ipv4Number { return readU32(this.buf, this.off + DST); }
  get payloadOffset(): number { return this.off + this.headerLen; }
  get payloadLen(): number { return this.totalLen - this.headerLen; }

  verifyChecksum(): boolean {
    return internetChecksum(this.buf, this.off, this.headerLen) === 0;
  }
}

export class Ipv4Repr {
  constructor(
    public src: Ipv4Number,
    public dst: Ipv4Number,
    public protocol: number,
    public payloadLen: number,
    public ttl = 64,
    public ident = 0,
    public dontFragment = true,
    public dscp = 0,
    public ecn = 0,
  ) {}

  /** Refuses a packet with a wrong header checksum, fragments, or options (the data path
   * does not need them; they are reported rather than silently misread). */
  static parse(p: Ipv4Packet): Ipv4Repr | WireError {
    if (!p.verifyChecksum()) return new WireError('malformed', 'ipv4', 'header checksum mismatch');
    return new Ipv4Repr(p.src, p.dst, p.protocol, p.payloadLen, p.ttl, p.ident, p.dontFragment, p.dscp, p.ecn);
  }

  bufferLen(): number { return HEADER_LEN; }

  /** Writes a 20-byte header (no options) with its checksum at buf[off]. */
  emit(buf: Uint8Array, off = 0): void {
    buf[off + VER_IHL] = 0x45;
    buf[off + DSCP_ECN] = ((this.dscp & 0x3f) << 2) | (this.ecn & 3);
    writeU16(buf, off + TOTAL_LEN, HEADER_LEN + this.payloadLen);
    writeU16(buf, off + IDENT, this.ident);
    writeU16(buf, off + FLAGS_FRAG, this.dontFragment ? 0x4000 : 0);
    buf[off + TTL] = this.ttl;
    buf[off + PROTOCOL] = this.protocol;
    writeU16(buf, off + CHECKSUM, 0);
    writeU32(buf, off + SRC, this.src);
    writeU32(buf, off + DST, this.dst);
    writeU16(buf, off + CHECKSUM, internetChecksum(buf, off, HEADER_LEN));
  }
}
