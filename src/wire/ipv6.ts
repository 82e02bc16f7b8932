/**
 * IPv6 (RFC 8200) fixed header. Extension headers are left to the upper layers: `nextHeader`
 * is reported as it stands.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Version| Traffic Class |           Flow Label                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |         Payload Length        |  Next Header  |   Hop Limit   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Source Address (16)                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                  Destination Address (16)                     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readU16, readU32, WireError, writeU16, writeU32 } from './bytes.js';

export const VER_TC_FLOW = 0;
export const PAYLOAD_LEN = 4;
export const NEXT_HEADER = 6;
export const HOP_LIMIT = 7;
export const SRC = 8;
export const DST = 24;
export const HEADER_LEN = DST + 16;

export class Ipv6Packet {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): Ipv6Packet | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'ipv6', `${len} bytes, the header needs ${HEADER_LEN}`);
    const p = new Ipv6Packet(buf, off, len);
    if (p.version !== 6) return new WireError('malformed', 'ipv6', `version ${p.version}`);
    if (HEADER_LEN + p.payloadLen > len) {
      return new WireError('truncated', 'ipv6', `payload length ${p.payloadLen}, ${len - HEADER_LEN} bytes at hand`);
    }
    return p;
  }

  get version(): number { return this.buf[this.off] >>> 4; }
  get trafficClass(): number { return (readU16(this.buf, this.off) >>> 4) & 0xff; }
  get flowLabel(): number { return readU32(this.buf, this.off) & 0xfffff; }
  get payloadLen(): number { return readU16(this.buf, this.off + PAYLOAD_LEN); }
  get nextHeader(): number { return this.buf[this.off + NEXT_HEADER]; }
  get hopLimit(): number { return this.buf[this.off + HOP_LIMIT]; }
  /** The source address: a copy, 16 bytes. */
  get src(): Uint8Array { return this.buf.slice(this.off + SRC, this.off + SRC + 16); }
  get dst(): Uint8Array { return this.buf.slice(this.off + DST, this.off + DST + 16); }
  get payloadOffset(): number { return this.off + HEADER_LEN; }
}

export class Ipv6Repr {
  constructor(
    public src: Uint8Array,
    public dst: Uint8Array,
    public nextHeader: number,
    public payloadLen: number,
    public hopLimit = 64,
    public trafficClass = 0,
    public flowLabel = 0,
  ) {}

  static parse(p: Ipv6Packet): Ipv6Repr {
    return new Ipv6Repr(p.src, p.dst, p.nextHeader, p.payloadLen, p.hopLimit, p.trafficClass, p.flowLabel);
  }

  bufferLen(): number { return HEADER_LEN; }

  emit(buf: Uint8Array, off = 0): void {
    writeU32(buf, off + VER_TC_FLOW, ((6 << 28) | ((this.trafficClass & 0xff) << 20) | (this.flowLabel & 0xfffff)) >>> 0);
    writeU16(buf, off + PAYLOAD_LEN, this.payloadLen);
    buf[off + NEXT_HEADER] = this.nextHeader;
    buf[off + HOP_LIMIT] = this.hopLimit;
    buf.set(this.src, off + SRC);
    buf.set(this.dst, off + DST);
  }
}
