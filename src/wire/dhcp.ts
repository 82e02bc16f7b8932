/**
 * DHCPv4 (RFC 2131) over the BOOTP header (RFC 951), with the options of RFC 2132 and the
 * domain search list of RFC 3397.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
 * +---------------+---------------+---------------+---------------+
 * |                            xid (4)                            |
 * +-------------------------------+-------------------------------+
 * |           secs (2)            |           flags (2)           |
 * +-------------------------------+-------------------------------+
 * |                          ciaddr  (4)                          |
 * |                          yiaddr  (4)                          |
 * |                          siaddr  (4)                          |
 * |                          giaddr  (4)                          |
 * +---------------------------------------------------------------+
 * |                          chaddr  (16)                         |
 * |                          sname   (64)                         |
 * |                          file    (128)                        |
 * +---------------------------------------------------------------+
 * |                 magic cookie 99.130.83.99 (4)                 |
 * |                       options (variable)                      |
 * +---------------------------------------------------------------+
 * ```
 *
 * Options are TLV (code, length, value) after the cookie, except Pad (0) and End (255),
 * which are one byte. An option may not run past the packet; `options()` stops at End, at
 * the packet's end, or at the first option that would overrun it (reported as malformed).
 * Option overload (52) is read as policy, not here: the view never looks into sname/file.
 */
import { readU16, readU32, WireError, writeU16, writeU32, type Ipv4Number, type MacNumber, readMac, writeMac } from './bytes.js';

export const OP = 0;
export const HTYPE = 1;
export const HLEN = 2;
export const HOPS = 3;
export const XID = 4;
export const SECS = 8;
export const FLAGS = 10;
export const CIADDR = 12;
export const YIADDR = 16;
export const SIADDR = 20;
export const GIADDR = 24;
export const CHADDR = 28;
export const SNAME = 44;
export const FILE = 108;
export const COOKIE = 236;
export const OPTIONS = COOKIE + 4;
/** The fixed part, cookie included. */
export const HEADER_LEN = OPTIONS;

export const MAGIC_COOKIE = 0x6382_5363;
export const SERVER_PORT = 67;
export const CLIENT_PORT = 68;
/** The broadcast bit of `flags` (RFC 2131 §4.1): answer to 255.255.255.255. */
export const FLAG_BROADCAST = 0x8000;

export const Op = { Request: 1, Reply: 2 } as const;
export const HTYPE_ETHERNET = 1;

/** Option 53 (RFC 2132 §9.6). */
export const MessageType = {
  Discover: 1, Offer: 2, Request: 3, Decline: 4, Ack: 5, Nak: 6, Release: 7, Inform: 8,
} as const;

/** Option codes (RFC 2132; 119 from RFC 3397). */
export const Option = {
  Pad: 0,
  SubnetMask: 1,
  Router: 3,
  DnsServers: 6,
  HostName: 12,
  DomainName: 15,
  InterfaceMtu: 26,
  BroadcastAddress: 28,
  RequestedIp: 50,
  LeaseTime: 51,
  Overload: 52,
  MessageType: 53,
  ServerId: 54,
  ParameterList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  ClientId: 61,
  DomainSearch: 119,
  End: 255,
} as const;

/** Where `find` reports an option's length (one, reused: nothing allocated per lookup). */
const found = { len: 0 };

/** A zero-copy view of a DHCP message. Accessors never throw once `checked` passed. */
export class DhcpPacket {
  private constructor(
    readonly buf: Uint8Array,
    readonly off: number,
    readonly len: number,
  ) {}

  /** The view, or why these bytes are not a DHCP message (short, or no magic cookie). */
  static checked(buf: Uint8Array, off = 0, len = buf.length - off): DhcpPacket | WireError {
    if (len < HEADER_LEN) return new WireError('truncated', 'dhcp', `${len} bytes, the header needs ${HEADER_LEN}`);
    if (readU32(buf, off + COOKIE) !== MAGIC_COOKIE) return new WireError('malformed', 'dhcp', 'no DHCP magic cookie');
    return new DhcpPacket(buf, off, len);
  }

  get op(): number { return this.buf[this.off + OP]; }
  get htype(): number { return this.buf[this.off + HTYPE]; }
  get hlen(): number { return this.buf[this.off + HLEN]; }
  get hops(): number { return this.buf[this.off + HOPS]; }
  get xid(): number { return readU32(this.buf, this.off + XID); }
  get secs(): number { return readU16(this.buf, this.off + SECS); }
  get flags(): number { return readU16(this.buf, this.off + FLAGS); }
  get ciaddr(): Ipv4Number { return readU32(this.buf, this.off + CIADDR); }
  get yiaddr(): Ipv4Number { return readU32(this.buf, this.off + YIADDR); }
  get siaddr(): Ipv4Number { return readU32(this.buf, this.off + SIADDR); }
  get giaddr(): Ipv4Number { return readU32(this.buf, this.off + GIADDR); }
  /** The client's hardware address, for Ethernet (htype 1, hlen 6). */
  get chaddr(): MacNumber { return readMac(this.buf, this.off + CHADDR); }

  /**
   * Finds option `code`: returns the offset of its value and sets `found.len`, or -1 when
   * it is absent. -2 when the options are malformed before it is found (one runs past the
   * end). Allocates nothing.
   */
  find(code: number, found: { len: number }): number {
    const end = this.off + this.len;
    let i = this.off + OPTIONS;
    while (i < end) {
      const c = this.buf[i];
      if (c === Option.End) return -1;
      if (c === Option.Pad) {
        i++;
        continue;
      }
      if (i + 1 >= end) return -2;
      const l = this.buf[i + 1];
      if (i + 2 + l > end) return -2;
      if (c === code) {
        found.len = l;
        return i + 2;
      }
      i += 2 + l;
    }
    return -1;
  }

  /** Option 53, or -1 when absent or not one byte; -2 when the options are malformed. */
  messageType(): number {
    const at = this.find(Option.MessageType, found);
    if (at < 0) return at;
    return found.len === 1 ? this.buf[at] : -1;
  }

  /** A four-byte address option (50 requested IP, 54 server id), or -1 when absent. */
  addressOption(code: number): number {
    const at = this.find(code, found);
    return at >= 0 && found.len === 4 ? readU32(this.buf, at) : -1;
  }
}

/** What Weft writes in a reply: the options it offers, in the order RFC 2132 lists them. */
export interface DhcpReplyOptions {
  messageType: number;
  serverId: Ipv4Number;
  leaseSeconds?: number;
  subnetMask?: Ipv4Number;
  routers?: Ipv4Number[];
  dnsServers?: Ipv4Number[];
  hostName?: string;
  domainName?: string;
  /** Domain search list (RFC 3397), written in DNS wire format without compression. */
  search?: string[];
  mtu?: number;
  /** A NAK's reason, for a person reading a capture. */
  message?: string;
}

/** A DHCP message to emit: the header fields and the reply options. */
export class DhcpRepr {
  constructor(
    public op: number,
    public xid: number,
    public flags: number,
    public ciaddr: Ipv4Number,
    public yiaddr: Ipv4Number,
    public siaddr: Ipv4Number,
    public giaddr: Ipv4Number,
    public chaddr: MacNumber,
    public options: DhcpReplyOptions,
  ) {}

  /** Parses the header and the options Weft reads. */
  static parse(p: DhcpPacket): DhcpRepr | WireError {
    const type = p.messageType();
    if (type === -2) return new WireError('malformed', 'dhcp', 'an option runs past the end');
    if (type < 0) return new WireError('malformed', 'dhcp', 'no message type (option 53)');
    return new DhcpRepr(p.op, p.xid, p.flags, p.ciaddr, p.yiaddr, p.siaddr, p.giaddr, p.chaddr, { messageType: type, serverId: Math.max(0, p.addressOption(Option.ServerId)) });
  }

  bufferLen(): number {
    const o = this.options;
    let n = OPTIONS + 3 + 6; // message type, server id
    if (o.leaseSeconds !== undefined) n += 6 * 3; // lease, T1, T2
    if (o.subnetMask !== undefined) n += 6;
    if (o.routers?.length) n += 2 + 4 * o.routers.length;
    if (o.dnsServers?.length) n += 2 + 4 * o.dnsServers.length;
    if (o.hostName) n += 2 + Buffer.byteLength(o.hostName);
    if (o.domainName) n += 2 + Buffer.byteLength(o.domainName);
    if (o.search?.length) n += 2 + searchListLen(o.search);
    if (o.mtu !== undefined) n += 4;
    if (o.message) n += 2 + Buffer.byteLength(o.message);
    return Math.max(n + 1, 300); // End; BOOTP's minimum message (RFC 951) is 300 bytes
  }

  /** Writes the message at `off`; returns its length (bufferLen()). Pads with zeros. */
  emit(buf: Uint8Array, off: number): number {
    const total = this.bufferLen();
    buf.fill(0, off, off + total);
    buf[off + OP] = this.op;
    buf[off + HTYPE] = HTYPE_ETHERNET;
    buf[off + HLEN] = 6;
    writeU32(buf, off + XID, this.xid);
    writeU16(buf, off + FLAGS, this.flags);
    writeU32(buf, off + CIADDR, this.ciaddr);
    writeU32(buf, off + YIADDR, this.yiaddr);
    writeU32(buf, off + SIADDR, this.siaddr);
    writeU32(buf, off + GIADDR, this.giaddr);
    writeMac(buf, off + CHADDR, this.chaddr);
    writeU32(buf, off + COOKIE, MAGIC_COOKIE);
    let i = off + OPTIONS;
    const o = this.options;
    const put = (code: number, bytes: number, write: (at: number) => void) => {
      buf[i] = code;
      buf[i + 1] = bytes;
      write(i + 2);
      i += 2 + bytes;
    };
    const u32 = (code: number, v: number) => put(code, 4, (at) => writeU32(buf, at, v));
    const addresses = (code: number, list: number[]) => put(code, 4 * list.length, (at) => list.forEach((a, k) => writeU32(buf, at + 4 * k, a)));
    const text = (code: number, s: string) => put(code, Buffer.byteLength(s), (at) => buf.set(Buffer.from(s), at));
    put(Option.MessageType, 1, (at) => (buf[at] = o.messageType));
    u32(Option.ServerId, o.serverId);
    if (o.leaseSeconds !== undefined) {
      u32(Option.LeaseTime, o.leaseSeconds);
      // RFC 2131 §4.4.5: T1 defaults to half the lease, T2 to 7/8 of it.
      u32(Option.RenewalTime, Math.floor(o.leaseSeconds / 2));
      u32(Option.RebindingTime, Math.floor((o.leaseSeconds * 7) / 8));
    }
    if (o.subnetMask !== undefined) u32(Option.SubnetMask, o.subnetMask);
    if (o.routers?.length) addresses(Option.Router, o.routers);
    if (o.dnsServers?.length) addresses(Option.DnsServers, o.dnsServers);
    if (o.hostName) text(Option.HostName, o.hostName);
    if (o.domainName) text(Option.DomainName, o.domainName);
    if (o.search?.length) put(Option.DomainSearch, searchListLen(o.search), (at) => writeSearchList(buf, at, o.search!));
    if (o.mtu !== undefined) put(Option.InterfaceMtu, 2, (at) => writeU16(buf, at, o.mtu!));
    if (o.message) text(Option.Message, o.message);
    buf[i] = Option.End;
    return total;
  }
}

function searchListLen(names: string[]): number {
  return names.reduce((n, name) => n + name.split('.').filter(Boolean).reduce((m, label) => m + 1 + Buffer.byteLength(label), 0) + 1, 0);
}

/** DNS names as length-prefixed labels, each ended by a zero byte (RFC 1035 §3.1). */
function writeSearchList(buf: Uint8Array, at: number, names: string[]): void {
  for (const name of names) {
    for (const label of name.split('.').filter(Boolean)) {
      const bytes = Buffer.from(label);
      buf[at++] = bytes.length;
      buf.set(bytes, at);
      at += bytes.length;
    }
    buf[at++] = 0;
  }
}
