/**
 * ARP (RFC 826) for IPv4 over Ethernet, the only combination Weft answers or inspects.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |        Hardware type          |         Protocol type         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  HW addr len  | Proto addr len|           Operation           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |    Sender hardware address (6) | Sender protocol address (4)  |
 * |    Target hardware address (6) | Target protocol address (4)  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { readMac, readU16, readU32, WireError, writeMac, writeU16, writeU32, type Ipv4Number, type MacNumber } from './bytes.js';

export const HTYPE = 0;
export const PTYPE = 2;
export const HLEN = 4;
export const PLEN = 5;
export const OPER = 6;
export const SHA = 8;
export const SPA = 14;
export const THA = 18;
export const TPA = 24;
export const HEADER_LEN = TPA + 4;

export const HTYPE_ETHERNET = 1;
export const PTYPE_IPV4 = 0x0800;
export const ArpOperation = { Request: 1, Reply: 2 } as const;

export class ArpPacket {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  static checked(buf: Uint8Array, off = 0, len = buf.length - off): ArpPacket | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'arp', `${len} bytes, Ethernet/IPv4 ARP needs ${HEADER_LEN}`);
    const p = new ArpPacket(buf, off, len);
    if (p.htype !== HTYPE_ETHERNET || p.ptype !== PTYPE_IPV4 || p.hlen !== 6 || p.plen !== 4) {
      return new WireError('malformed', 'arp', 'not Ethernet/IPv4 ARP');
    }
    return p;
  }

  get htype(): number { return readU16(this.buf, this.off + HTYPE); }
  get ptype(): number { return readU16(this.buf, this.off + PTYPE); }
  get hlen(): number { return this.buf[this.off + HLEN]; }
  get plen(): number { return this.buf[this.off + PLEN]; }
  get operation(): number { return readU16(this.buf, this.off + OPER); }
  get senderMac(): MacNumber { return readMac(this.buf, this.off + SHA); }
  get senderIp(): Ipv4Number { return readU32(this.buf, this.off + SPA); }
  get targetMac(): MacNumber { return readMac(this.buf, this.off + THA); }
  get targetIp(): Ipv4Number { return readU32(this.buf, this.off + TPA); }
}

export class ArpRepr {
  constructor(
    public operation: number,
    public senderMac: MacNumber,
    public senderIp: Ipv4Number,
    public targetMac: MacNumber,
    public targetIp: Ipv4Number,
  ) {}

  static parse(p: ArpPacket): ArpRepr {
    return new ArpRepr(p.operation, p.senderMac, p.senderIp, p.targetMac, p.targetIp);
  }

  bufferLen(): number { return HEADER_LEN; }

  emit(buf: Uint8Array, off = 0): void {
    writeU16(buf, off + HTYPE, HTYPE_ETHERNET);
    writeU16(buf, off + PTYPE, PTYPE_IPV4);
    buf[off + HLEN] = 6;
    buf[off + PLEN] = 4;
    writeU16(buf, off + OPER, this.operation);
    writeMac(buf, off + SHA, this.senderMac);
    writeU32(buf, off + SPA, this.senderIp);
    writeMac(buf, off + THA, this.targetMac);
    writeU32(buf, off + TPA, this.targetIp);
  }
}
