/**
 * The TCP header (RFC 9293 §3.1). Weft never terminates TCP; it reads the header for
 * connection tracking and capture, and writes one in tests.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Source Port          |       Destination Port        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                        Sequence Number                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Acknowledgment Number                      |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Data |       |C|E|U|A|P|R|S|F|                               |
 * | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           Checksum            |         Urgent Pointer        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Options (data offset > 5) ...              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readU16, readU32, WireError, writeU16, writeU32, type Ipv4Number } from './bytes.js';
import { finish, pseudoHeaderV4, pseudoHeaderV6, sumBytes } from './checksum.js';
import { IpProtocol } from './ipv4.js';

export const SRC_PORT = 0;
export const DST_PORT = 2;
export const SEQ = 4;
export const ACK = 8;
export const DATA_OFFSET = 12;
export const FLAGS = 13;
export const WINDOW = 14;
export const CHECKSUM = 16;
export const URGENT = 18;
export const HEADER_LEN = URGENT + 2;

export const TcpFlag = { Fin: 0x01, Syn: 0x02, Rst: 0x04, Psh: 0x08, Ack: 0x10, Urg: 0x20, Ece: 0x40, Cwr: 0x80 } as const;

export class TcpSegment {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): TcpSegment | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'tcp', `${len} bytes, the header needs ${HEADER_LEN}`);
    const s = new TcpSegment(buf, off, len);
    if (s.headerLen < HEADER_LEN) return new WireError('malformed', 'tcp', `data offset ${s.headerLen / 4}`);
    if (s.headerLen > len) return new WireError('truncated', 'tcp', `header of ${s.headerLen} bytes, ${len} at hand`);
    return s;
  }

  get srcPort(): number { return readU16(this.buf, this.off + SRC_PORT); }
  get dstPort(): number { return readU16(this.buf, this.off + DST_PORT); }
  get seq(): number { return readU32(this.buf, this.off + SEQ); }
  get ack(): number { return readU32(this.buf, this.off + ACK); }
  get headerLen(): number { return (this.buf[this.off + DATA_OFFSET] >>> 4) * 4; }
  get flags(): number { return this.buf[this.off + FLAGS]; }
  get window(): number { return readU16(this.buf, this.off + WINDOW); }
  get checksum(): number { return readU16(this.buf, this.off + CHECKSUM); }
  get urgent(): number { return readU16(this.buf, this.off + URGENT); }
  get payloadOffset(): number { return this.off + this.headerLen; }

  verifyChecksumV4(src: Ipv4Number, dst: Ipv4Number): boolean {
    return finish(sumBytes(this.buf, this.off, this.len, pseudoHeaderV4(src, dst, IpProtocol.Tcp, this.len))) === 0;
  }
}

export class TcpRepr {
  constructor(
    public srcPort: number,
    public dstPort: number,
    public seq: number,
    public ack: number,
    public flags: number,
    public window: number,
    /** Raw option bytes, a multiple of four long. */
    public options: Uint8Array = new Uint8Array(0),
    public payload: Uint8Array = new Uint8Array(0),
  ) {}

  static parse(s: TcpSegment): TcpRepr {
    return new TcpRepr(
      s.srcPort, s.dstPort, s.seq, s.ack, s.flags, s.window,
      s.buf.slice(s.off + HEADER_LEN, s.payloadOffset), s.buf.slice(s.payloadOffset, s.off + s.len),
    );
  }

  headerLen(): number { return HEADER_LEN + this.options.length; }
  bufferLen(): number { return this.headerLen() + this.payload.length; }

  /** Writes the segment with its IPv4 checksum at buf[off]. */
  emitV4(buf: Uint8Array, off: number, src: Ipv4Number, dst: Ipv4Number): void {
    this.emit(buf, off, pseudoHeaderV4(src, dst, IpProtocol.Tcp, this.bufferLen()));
  }

  /** Writes the segment with its IPv6 checksum (RFC 8200 §8.1) at buf[off]. */
  emitV6(buf: Uint8Array, off: number, src: Uint8Array, dst: Uint8Array): void {
    this.emit(buf, off, pseudoHeaderV6(src, dst, IpProtocol.Tcp, this.bufferLen()));
  }

  private emit(buf: Uint8Array, off: number, pseudo: number): void {
    if (this.options.length % 4 !== 0) throw new WireError('malformed', 'tcp', 'options must be a multiple of 4 bytes');
    writeU16(buf, off + SRC_PORT, this.srcPort);
    writeU16(buf, off + DST_PORT, this.dstPort);
    writeU32(buf, off + SEQ, this.seq);
    writeU32(buf, off + ACK, this.ack);
    buf[off + DATA_OFFSET] = (this.headerLen() / 4) << 4;
    buf[off + FLAGS] = this.flags;
    writeU16(buf, off + WINDOW, this.window);
    writeU16(buf, off + CHECKSUM, 0);
    writeU16(buf, off + URGENT, 0);
    buf.set(this.options, off + HEADER_LEN);
    buf.set(this.payload, off + this.headerLen());
    writeU16(buf, off + CHECKSUM, finish(sumBytes(buf, off, this.bufferLen(), pseudo)));
  }
}
