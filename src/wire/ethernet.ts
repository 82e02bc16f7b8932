/**
 * Ethernet II frames (IEEE 802.3, DIX framing). The frame check sequence is not part of
 * what a TAP device or an encapsulation carries, so it is not modelled.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Destination MAC address                    |
 * +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                               |                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 * |                      Source MAC address                       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           EtherType           |           Payload ...         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readMac, readU16, WireError, writeMac, writeU16, type MacNumber } from './bytes.js';

export const DST = 0;
export const SRC = 6;
export const ETHERTYPE = 12;
export const HEADER_LEN = ETHERTYPE + 2;

/** EtherTypes Weft looks at. Any other value passes through untouched. */
export const EtherType = {
  Ipv4: 0x0800,
  Arp: 0x0806,
  Vlan: 0x8100,
  Ipv6: 0x86dd,
  QinQ: 0x88a8,
  TransparentEthernetBridging: 0x6558,
} as const;

/** A zero-copy view of an Ethernet frame: buf[off, off+len). */
export class EthernetFrame {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  /** The view, or why these bytes cannot be an Ethernet frame. */
  static checked(buf: Uint8Array, off = 0, len = buf.length - off): EthernetFrame | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'ethernet', `${len} bytes, the header needs ${HEADER_LEN}`);
    return new EthernetFrame(buf, off, len);
  }

  get dst(): MacNumber { return readMac(this.buf, this.off + DST); }
  set dst(v: MacNumber) { writeMac(this.buf, this.off + DST, v); }
  get src(): MacNumber { return readMac(this.buf, this.off + SRC); }
  set src(v: MacNumber) { writeMac(this.buf, this.off + SRC, v); }
  get ethertype(): number { return readU16(this.buf, this.off + ETHERTYPE); }
  set ethertype(v: number) { writeU16(this.buf, this.off + ETHERTYPE, v); }
  get payloadOffset(): number { return this.off + HEADER_LEN; }
  get payloadLen(): number { return this.len - HEADER_LEN; }
}

export class EthernetRepr {
  constructor(
    public dst: MacNumber,
    public src: MacNumber,
    public ethertype: number,
  ) {}

  static parse(frame: EthernetFrame): EthernetRepr {
    return new EthernetRepr(frame.dst, frame.src, frame.ethertype);
  }

  bufferLen(): number { return HEADER_LEN; }

  /** Writes the header at buf[off]; the payload follows at off + HEADER_LEN. */
  emit(buf: Uint8Array, off = 0): void {
    writeMac(buf, off + DST, this.dst);
    writeMac(buf, off + SRC, this.src);
    writeU16(buf, off + ETHERTYPE, this.ethertype);
  }
}
