/**
 * UDP (RFC 768).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |            Length             |           Checksum            |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readU16, WireError, writeU16, type Ipv4Number } from './bytes.js';
import { finish, pseudoHeaderV4, pseudoHeaderV6, sumBytes } from './checksum.js';
import { IpProtocol } from './ipv4.js';

export const SRC_PORT = 0;
export const DST_PORT = 2;
export const LENGTH = 4;
export const CHECKSUM = 6;
export const HEADER_LEN = CHECKSUM + 2;

/** IANA: VXLAN (RFC 7348 §5) and Geneve (RFC 8926 §3.3). */
export const VXLAN_PORT = 4789;
/** Weft's encrypted tunnels (ours: not an IANA assignment). */
export const TUNNEL_PORT = 4793;
export const GENEVE_PORT = 6081;

export class UdpDatagram {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): UdpDatagram | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'udp', `${len} bytes, the header needs ${HEADER_LEN}`);
    const d = new UdpDatagram(buf, off, len);
    if (d.length < HEADER_LEN) return new WireError('malformed', 'udp', `length field ${d.length}`);
    if (d.length > len) return new WireError('truncated', 'udp', `length field ${d.length}, ${len} bytes at hand`);
    return d;
  }

  get srcPort(): number { return readU16(this.buf, this.off + SRC_PORT); }
  get dstPort(): number { return readU16(this.buf, this.off + DST_PORT); }
  get length(): number { return readU16(this.buf, this.off + LENGTH); }
  get checksum(): number { return readU16(this.buf, this.off + CHECKSUM); }
  get payloadOffset(): number { return this.off + HEADER_LEN; }
  get payloadLen(): number { return this.length - HEADER_LEN; }

  /** A zero checksum means "none" over IPv4 (RFC 768) and passes. */
  verifyChecksumV4(src: Ipv4Number, dst: Ipv4Number): boolean {
    if (this.checksum === 0) return true;
    return finish(sumBytes(this.buf, this.off, this.length, pseudoHeaderV4(src, dst, IpProtocol.Udp, this.length))) === 0;
  }
}

export class UdpRepr {
  constructor(
    public srcPort: number,
    public dstPort: number,
    public payloadLen: number,
  ) {}

  static parse(d: UdpDatagram): UdpRepr {
    return new UdpRepr(d.srcPort, d.dstPort, d.payloadLen);
  }

  bufferLen(): number { return HEADER_LEN + this.payloadLen; }

  /** Writes the header at buf[off] with a zero checksum; the payload must already be in
   * place at off + HEADER_LEN before `fillChecksumV4/V6` is called. */
  emit(buf: Uint8Array, off = 0): void {
    writeU16(buf, off + SRC_PORT, this.srcPort);
    writeU16(buf, off + DST_PORT, this.dstPort);
    writeU16(buf, off + LENGTH, HEADER_LEN + this.payloadLen);
    writeU16(buf, off + CHECKSUM, 0);
  }

  fillChecksumV4(buf: Uint8Array, off: number, src: Ipv4Number, dst: Ipv4Number): void {
    const len = this.bufferLen();
    writeU16(buf, off + CHECKSUM, 0);
    const sum = finish(sumBytes(buf, off, len, pseudoHeaderV4(src, dst, IpProtocol.Udp, len)));
    writeU16(buf, off + CHECKSUM, sum === 0 ? 0xffff : sum);
  }

  fillChecksumV6(buf: Uint8Array, off: number, src: Uint8Array, dst: Uint8Array): void {
    const len = this.bufferLen();
    writeU16(buf, off + CHECKSUM, 0);
    const sum = finish(sumBytes(buf, off, len, pseudoHeaderV6(src, dst, IpProtocol.Udp, len)));
    writeU16(buf, off + CHECKSUM, sum === 0 ? 0xffff : sum);
  }
}
