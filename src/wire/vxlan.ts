/**
 * VXLAN (RFC 7348 §5): an 8-byte header in front of an Ethernet frame, inside UDP.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |R|R|R|R|I|R|R|R|            Reserved                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                VXLAN Network Identifier (VNI) |   Reserved    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 * The I flag "MUST be set to 1 for a valid VXLAN Network ID"; reserved bits are sent as
 * zero and ignored on receipt. The view reports the flag; the data path decides.
 */
import { readU24, WireError, writeU24, writeU32 } from './bytes.js';

export const FLAGS = 0;
export const VNI = 4;
export const HEADER_LEN = 8;
export const FLAG_I = 0x08;
export const VNI_MAX = 0xff_ffff;

/** Outer IPv4 (20) + UDP (8) + VXLAN (8): what the underlay carries beyond the inner frame. */
export const OVERHEAD_V4 = 20 + 8 + HEADER_LEN;

export class VxlanHeader {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): VxlanHeader | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'vxlan', `${len} bytes, the header needs ${HEADER_LEN}`);
    return new VxlanHeader(buf, off, len);
  }

  get flags(): number { return this.buf[this.off + FLAGS]; }
  get vniValid(): boolean { return (this.buf[this.off + FLAGS] & FLAG_I) !== 0; }
  get vni(): number { return readU24(this.buf, this.off + VNI); }
  get payloadOffset(): number { return this.off + HEADER_LEN; }
  get payloadLen(): number { return this.len - HEADER_LEN; }
}

export class VxlanRepr {
  constructor(public vni: number) {}

  static parse(h: VxlanHeader): VxlanRepr | WireError {
    if (!h.vniValid) return new WireError('malformed', 'vxlan', 'I flag not set');
    return new VxlanRepr(h.vni);
  }

  bufferLen(): number { return HEADER_LEN; }

  emit(buf: Uint8Array, off = 0): void {
    writeVxlanHeader(buf, off, this.vni);
  }
}

/** Writes a VXLAN header for `vni` at buf[off]: the hot-path form of `VxlanRepr.emit`. */
export function writeVxlanHeader(buf: Uint8Array, off: number, vni: number): void {
  writeU32(buf, off, FLAG_I << 24);
  writeU24(buf, off + VNI, vni);
  buf[off + VNI + 3] = 0;
}
