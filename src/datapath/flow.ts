/**
 * The flow key: what the data path learns of a frame when it first parses it, in `inside`
 * (from a port) and in `fromTunnel` (from a remote host), and the one check that the
 * headers it reads are whole. Every later stage (port security, security groups) reads
 * the key instead of parsing the bytes again, so no stage can take the packet for
 * something other than what the first one did.
 *
 * A frame is `malformed` (dropped and counted before any policy looks at it) when
 *
 * - IPv4: the header is shorter than 20 bytes or its IHL says so (a zero-length header),
 *   the version is not 4, or the total length is below the header's or beyond what arrived;
 * - IPv6: the fixed header is cut, the version is not 6, the payload length is beyond what
 *   arrived, an extension header runs past the payload, or the chain is longer than
 *   MAX_EXTENSION_HEADERS;
 * - the upper-layer header of a packet that carries one is cut: TCP shorter than 20 bytes
 *   or than its data offset (or an offset under 5 words), UDP shorter than 8 bytes or,
 *   unfragmented, than its length field says, ICMP shorter than 8 (RFC 792), ICMPv6 than 4
 *   (RFC 4443 §2.1). The first fragment of a fragmented packet must carry the whole
 *   upper-layer header too (RFC 1858 §3, RFC 7112 §5);
 * - an IPv4 TCP fragment starts at offset 1 (8 bytes): it can only be meant to overwrite the
 *   first fragment's TCP header (RFC 1858 §4);
 * - ARP: shorter than 28 bytes, the Ethernet/IPv4 ARP port security and the local ARP
 *   answers read (the address lengths are not checked: a receiver drops ARP whose lengths
 *   are not its own, and port security reads the fields where Ethernet/IPv4 has them).
 *
 * A fragment other than the first has no upper-layer header: `laterFragment` is set and
 * it carries no ports (security groups take it for a packet without ports: see
 * firewall.ts). Bytes after the IP packet are Ethernet padding: `len` leaves them out, and
 * the data path carries the frame without them. Other EtherTypes are not looked into.
 *
 * Frames from a TAP with offloads were cut into proper segments at the I/O edge (the
 * backend), so each is checked here like any other frame. Synchronous and allocation-free.
 */
import { readU16 } from '../wire/bytes.js';
import { EtherType } from '../wire/ethernet.js';
import { IpProtocol } from '../wire/ipv4.js';
import { Drop } from './counters.js';

/** IPv6 extension headers (RFC 8200 §4, RFC 4302 for AH). */
const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const AUTHENTICATION = 51;
const DESTINATION_OPTIONS = 60;
/** Implementation limit (ours): more extension headers than this before the upper layer
 * is refused (RFC 7112 lets a middlebox drop a chain it cannot follow). */
export const MAX_EXTENSION_HEADERS = 8;

/** One frame's flow key. One instance is filled per frame and read until the next. */
export class Flow {
  /** The EtherType of the (untagged) frame. */
  type = 0;
  /** The frame's length without Ethernet padding: for IP, 14 + the IP packet's length. */
  len = 0;
  /** IPv6 (else IPv4, when `protocol` >= 0). */
  ipv6 = false;
  /** Where the IP (or ARP) header starts. */
  l3 = 0;
  /** The upper-layer protocol (IPv4's protocol field, IPv6's last next header); -1: the
   * frame is not IP. */
  protocol = -1;
  /** Where the upper-layer header starts (for a later fragment: its data), and how many
   * bytes of the IP packet are from there on. */
  l4 = 0;
  l4Len = 0;
  /** A fragment other than the first: no upper-layer header, so no ports. */
  laterFragment = false;
  /** Part of a fragmented packet (the first fragment or a later one). */
  fragmented = false;
}

/**
 * Parses the untagged frame at (off, len) into `f`. Returns Drop.malformed when a header
 * it reads is cut or says more than arrived, else -1 (then `f.len` <= len is the frame's
 * length without padding). Precondition: len >= 14.
 */
export function parseFlow(mem: Uint8Array, off: number, len: number, f: Flow): number {
  const type = readU16(mem, off + 12);
  const l3 = off + 14;
  const available = len - 14;
  f.type = type;
  f.len = len;
  f.l3 = l3;
  f.protocol = -1;
  f.ipv6 = false;
  f.l4 = l3;
  f.l4Len = 0;
  f.laterFragment = false;
  f.fragmented = false;
  if (type === EtherType.Ipv4) return parseIpv4(mem, l3, available, f);
  if (type === EtherType.Ipv6) return parseIpv6(mem, l3, available, f);
  if (type === EtherType.Arp) {
    if (available < 28) return Drop.malformed;
  }
  return -1;
}

function parseIpv4(mem: Uint8Array, ip: number, available: number, f: Flow): number {
  if (available < 20 || mem[ip] >>> 4 !== 4) return Drop.malformed;
  const ihl = (mem[ip] & 0x0f) * 4;
  const total = readU16(mem, ip + 2);
  if (ihl < 20 || total < ihl || total > available) return Drop.malformed;
  f.len = 14 + total;
  f.protocol = mem[ip + 9];
  f.l4 = ip + ihl;
  f.l4Len = total - ihl;
  const flags = readU16(mem, ip + 6);
  const offset = flags & 0x1fff;
  f.fragmented = (flags & 0x2000) !== 0 || offset !== 0;
  if (offset !== 0) {
    f.laterFragment = true;
    return offset === 1 && f.protocol === IpProtocol.Tcp ? Drop.malformed : -1;
  }
  return checkUpperLayer(mem, f);
}

function parseIpv6(mem: Uint8Array, ip: number, available: number, f: Flow): number {
  if (available < 40 || mem[ip] >>> 4 !== 6) return Drop.malformed;
  const payload = readU16(mem, ip + 4);
  if (40 + payload > available) return Drop.malformed;
  f.ipv6 = true;
  f.len = 14 + 40 + payload;
  const end = ip + 40 + payload;
  let next = mem[ip + 6];
  let at = ip + 40;
  for (let n = 0; ; n++) {
    if (next !== HOP_BY_HOP && next !== ROUTING && next !== FRAGMENT && next !== AUTHENTICATION && next !== DESTINATION_OPTIONS) break;
    if (n === MAX_EXTENSION_HEADERS || at + 8 > end) return Drop.malformed;
    const size = next === FRAGMENT ? 8 : next === AUTHENTICATION ? (mem[at + 1] + 2) * 4 : (mem[at + 1] + 1) * 8;
    if (at + size > end) return Drop.malformed;
    if (next === FRAGMENT) {
      f.fragmented = true;
      if ((readU16(mem, at + 2) & 0xfff8) !== 0) f.laterFragment = true;
    }
    next = mem[at];
    at += size;
    if (f.laterFragment) break;
  }
  f.protocol = next;
  f.l4 = at;
  f.l4Len = end - at;
  return f.laterFragment ? -1 : checkUpperLayer(mem, f);
}

/** The upper-layer header of an unfragmented packet or a first fragment is whole. */
function checkUpperLayer(mem: Uint8Array, f: Flow): number {
  const l4Len = f.l4Len;
  switch (f.protocol) {
    case IpProtocol.Tcp: {
      if (l4Len < 20) return Drop.malformed;
      const dataOffset = (mem[f.l4 + 12] >>> 4) * 4;
      return dataOffset < 20 || dataOffset > l4Len ? Drop.malformed : -1;
    }
    case IpProtocol.Udp:
      // A first fragment's UDP length covers the whole datagram, beyond this fragment.
      return l4Len < 8 || (!f.fragmented && readU16(mem, f.l4 + 4) > l4Len) ? Drop.malformed : -1;
    case IpProtocol.Icmp:
      return !f.ipv6 && l4Len < 8 ? Drop.malformed : -1;
    case IpProtocol.Icmpv6:
      return f.ipv6 && l4Len < 4 ? Drop.malformed : -1;
    default:
      return -1;
  }
}
