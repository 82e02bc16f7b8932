/**
 * Geneve (RFC 8926 §3.4): a variable-length header with TLV options, inside UDP.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        Virtual Network Identifier (VNI)       |    Reserved   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                    Variable-Length Options                    |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * An option (§3.5):
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |          Option Class         |      Type     |R|R|R| Length  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                 Variable-Length Option Data                   |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 * Opt Len and an option's Length count 4-byte words, not including the fixed headers.
 * Unknown option classes pass through the view; the C bit (critical) tells the receiver
 * whether an option it does not understand must cause a drop (§3.5.1), a policy decision.
 */
import { readU16, readU24, WireError, writeU16, writeU24 } from './bytes.js';

export const VER_OPTLEN = 0;
export const FLAGS = 1;
export const PROTOCOL = 2;
export const VNI = 4;
export const OPTIONS = 8;
export const HEADER_LEN = OPTIONS;
/** Opt Len is six bits of 4-byte words. */
export const OPTIONS_MAX_LEN = 63 * 4;
export const FLAG_OAM = 0x80;
export const FLAG_CRITICAL = 0x40;
/** Protocol Type for an Ethernet payload (Transparent Ethernet Bridging). */
export const PROTOCOL_ETHERNET = 0x6558;

/** Outer IPv4 (20) + UDP (8) + Geneve fixed header (8), with no options. */
export const OVERHEAD_V4 = 20 + 8 + HEADER_LEN;

export interface GeneveOption {
  optionClass: number;
  type: number;
  /** A multiple of four bytes, at most 124. */
  data: Uint8Array;
}

export class GeneveHeader {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  /** Checks that the fixed header and the options it announces are present. */
  static checked(buf: Uint8Array, off = 0, len = buf.length - off): GeneveHeader | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'geneve', `${len} bytes, the header needs ${HEADER_LEN}`);
    const h = new GeneveHeader(buf, off, len);
    if (h.headerLen > len) return new WireError('truncated', 'geneve', `options of ${h.optionsLen} bytes, ${len - HEADER_LEN} at hand`);
    return h;
  }

  get version(): number { return this.buf[this.off + VER_OPTLEN] >>> 6; }
  get optionsLen(): number { return (this.buf[this.off + VER_OPTLEN] & 0x3f) * 4; }
  get headerLen(): number { return HEADER_LEN + this.optionsLen; }
  get oam(): boolean { return (this.buf[this.off + FLAGS] & FLAG_OAM) !== 0; }
  get critical(): boolean { return (this.buf[this.off + FLAGS] & FLAG_CRITICAL) !== 0; }
  get protocol(): number { return readU16(this.buf, this.off + PROTOCOL); }
  get vni(): number { return readU24(this.buf, this.off + VNI); }
  get payloadOffset(): number { return this.off + this.headerLen; }
  get payloadLen(): number { return this.len - this.headerLen; }

  /** The options, or why they cannot be read (an option running past Opt Len). */
  options(): GeneveOption[] | WireError {
    const out: GeneveOption[] = [];
    let o = this.off + OPTIONS;
    const end = this.off + this.headerLen;
    while (o < end) {
      if (o + 4 > end) return new WireError('malformed', 'geneve', 'option header runs past the options');
      const dataLen = (this.buf[o + 3] & 0x1f) * 4;
      if (o + 4 + dataLen > end) return new WireError('malformed', 'geneve', 'option data runs past the options');
      out.push({ optionClass: readU16(this.buf, o), type: this.buf[o + 2], data: this.buf.slice(o + 4, o + 4 + dataLen) });
      o += 4 + dataLen;
    }
    return out;
  }
}

export class GeneveRepr {
  constructor(
    public vni: number,
    public protocol: number = PROTOCOL_ETHERNET,
    public options: GeneveOption[] = [],
    public oam = false,
    public critical = false,
  ) {}

  static parse(h: GeneveHeader): GeneveRepr | WireError {
    if (h.version !== 0) return new WireError('malformed', 'geneve', `version ${h.version}`);
    const options = h.options();
    if (options instanceof WireError) return options;
    return new GeneveRepr(h.vni, h.protocol, options, h.oam, h.critical);
  }

  optionsLen(): number {
    return this.options.reduce((n, o) => n + 4 + o.data.length, 0);
  }

  bufferLen(): number { return HEADER_LEN + this.optionsLen(); }

  emit(buf: Uint8Array, off = 0): void {
    const optLen = this.optionsLen();
    if (optLen > OPTIONS_MAX_LEN) throw new WireError('malformed', 'geneve', `options of ${optLen} bytes, at most ${OPTIONS_MAX_LEN}`);
    buf[off + VER_OPTLEN] = optLen / 4;
    buf[off + FLAGS] = (this.oam ? FLAG_OAM : 0) | (this.critical ? FLAG_CRITICAL : 0);
    writeU16(buf, off + PROTOCOL, this.protocol);
    writeU24(buf, off + VNI, this.vni);
    buf[off + VNI + 3] = 0;
    let o = off + OPTIONS;
    for (const opt of this.options) {
      if (opt.data.length % 4 !== 0 || opt.data.length > 31 * 4) {
        throw new WireError('malformed', 'geneve', `option data of ${opt.data.length} bytes`);
      }
      writeU16(buf, o, opt.optionClass);
      buf[o + 2] = opt.type;
      buf[o + 3] = opt.data.length / 4;
      buf.set(opt.data, o + 4);
      o += 4 + opt.data.length;
    }
  }
}

/** Writes an option-less Geneve header for an Ethernet payload: the hot-path form. */
export function writeGeneveHeader(buf: Uint8Array, off: number, vni: number): void {
  buf[off + VER_OPTLEN] = 0;
  buf[off + FLAGS] = 0;
  writeU16(buf, off + PROTOCOL, PROTOCOL_ETHERNET);
  writeU24(buf, off + VNI, vni);
  buf[off + VNI + 3] = 0;
}
