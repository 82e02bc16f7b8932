/**
 * ICMP for IPv4 (RFC 792). Every message shares the first four bytes; the next four are
 * "rest of header" (identifier and sequence for echo, unused or MTU for errors).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Type      |     Code      |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |    Identifier (echo)          |    Sequence number (echo)     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Data ...
 * +-+-+-+-+-
 * ```
 */
import { readU16, readU32, WireError, writeU16, writeU32 } from './bytes.js';
import { internetChecksum } from './checksum.js';

export const TYPE = 0;
export const CODE = 1;
export const CHECKSUM = 2;
export const REST = 4;
export const HEADER_LEN = REST + 4;

export const Icmpv4Type = {
  EchoReply: 0,
  DestinationUnreachable: 3,
  EchoRequest: 8,
  TimeExceeded: 11,
} as const;

export class Icmpv4Packet {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): Icmpv4Packet | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'icmpv4', `${len} bytes, the header needs ${HEADER_LEN}`);
    return new Icmpv4Packet(buf, off, len);
  }

  get type(): number { return this.buf[this.off + TYPE]; }
  get code(): number { return this.buf[this.off + CODE]; }
  get checksum(): number { return readU16(this.buf, this.off + CHECKSUM); }
  get rest(): number { return readU32(this.buf, this.off + REST); }
  get echoIdent(): number { return readU16(this.buf, this.off + REST); }
  get echoSeq(): number { return readU16(this.buf, this.off + REST + 2); }
  get dataOffset(): number { return this.off + HEADER_LEN; }
  get dataLen(): number { return this.len - HEADER_LEN; }

  verifyChecksum(): boolean { return internetChecksum(this.buf, this.off, this.len) === 0; }
}

export class Icmpv4Repr {
  constructor(
    public type: number,
    public code: number,
    /** The four bytes after the checksum, as one number. */
    public rest: number,
    public data: Uint8Array,
  ) {}

  static echoRequest(ident: number, seq: number, data: Uint8Array): Icmpv4Repr {
    return new Icmpv4Repr(Icmpv4Type.EchoRequest, 0, ((ident << 16) | seq) >>> 0, data);
  }

  static parse(p: Icmpv4Packet): Icmpv4Repr | WireError {
    if (!p.verifyChecksum()) return new WireError('malformed', 'icmpv4', 'checksum mismatch');
    return new Icmpv4Repr(p.type, p.code, p.rest, p.buf.slice(p.dataOffset, p.off + p.len));
  }

  bufferLen(): number { return HEADER_LEN + this.data.length; }

  emit(buf: Uint8Array, off = 0): void {
    buf[off + TYPE] = this.type;
    buf[off + CODE] = this.code;
    writeU16(buf, off + CHECKSUM, 0);
    writeU32(buf, off + REST, this.rest);
    buf.set(this.data, off + HEADER_LEN);
    writeU16(buf, off + CHECKSUM, internetChecksum(buf, off, this.bufferLen()));
  }
}
