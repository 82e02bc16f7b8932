/**
 * IEEE 802.1Q VLAN tags, and 802.1ad (QinQ) stacked tags. A tag follows an EtherType of
 * 0x8100 (C-tag) or 0x88a8 (S-tag); this view starts after that TPID, so a QinQ frame is
 * an S-tag view whose `ethertype` is 0x8100, followed by a C-tag view.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | PCP |D|         VLAN ID       |      EtherType (inner)        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readU16, WireError, writeU16 } from './bytes.js';

export const TCI = 0;
export const ETHERTYPE = 2;
export const HEADER_LEN = ETHERTYPE + 2;

/** VLAN IDs 0 (priority tag only) and 4095 are reserved (802.1Q table 9-2). */
export const VID_MIN = 1;
export const VID_MAX = 4094;

export class VlanTag {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): VlanTag | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'vlan', `${len} bytes, a tag needs ${HEADER_LEN}`);
    return new VlanTag(buf, off, len);
  }

  get pcp(): number { return this.buf[this.off + TCI] >>> 5; }
  get dei(): boolean { return (this.buf[this.off + TCI] & 0x10) !== 0; }
  get vid(): number { return readU16(this.buf, this.off + TCI) & 0x0fff; }
  get ethertype(): number { return readU16(this.buf, this.off + ETHERTYPE); }
  get payloadOffset(): number { return this.off + HEADER_LEN; }
}

export class VlanRepr {
  constructor(
    public vid: number,
    public ethertype: number,
    public pcp = 0,
    public dei = false,
  ) {}

  static parse(tag: VlanTag): VlanRepr {
    return new VlanRepr(tag.vid, tag.ethertype, tag.pcp, tag.dei);
  }

  bufferLen(): number { return HEADER_LEN; }

  emit(buf: Uint8Array, off = 0): void {
    writeU16(buf, off + TCI, ((this.pcp & 7) << 13) | (this.dei ? 0x1000 : 0) | (this.vid & 0x0fff));
    writeU16(buf, off + ETHERTYPE, this.ethertype);
  }
}
