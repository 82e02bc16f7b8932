/**
 * A capture filter for `weft capture --filter`: a small part of tcpdump's language (pcap-filter(7)),
 * read by Weft itself so the agent needs no libpcap:
 *
 *   [src|dst] host ADDRESS      IPv4 or IPv6; for ARP, its sender or target address
 *   [src|dst] net A.B.C.D/LEN   IPv4
 *   [src|dst] port N            TCP or UDP
 *   proto NAME | icmp | icmp6 | tcp | udp | arp | ip | ip6
 *   not E, E and E, E or E (also !, &&, ||), ( E )
 *
 * `and` binds tighter than `or`, as in tcpdump. A frame with one 802.1Q tag (from a trunk)
 * is read behind it. An expression that does not parse is a FilterError naming the word.
 */
import { parseIpv4, parseIpv6, readU16, readU32 } from '../wire/bytes.js';
import { EtherType } from '../wire/ethernet.js';

export class FilterError extends Error {
  readonly code = 'bad-filter';
}

/** Whether the Ethernet frame mem[off, off+len) passes. */
export type FramePredicate = (mem: Uint8Array, off: number, len: number) => boolean;

/** What a predicate reads of a frame: filled once per frame. */
interface Fields {
  ethertype: number;
  /** IP protocol (or -1). */
  protocol: number;
  /** Addresses: IPv4 as one number, IPv6 as 16 bytes of text key; ARP's sender and target. */
  src: string | null;
  dst: string | null;
  sport: number;
  dport: number;
}

type Node = (f: Fields) => boolean;

const PROTOCOLS: Record<string, { ethertype: number; protocol?: number }> = {
  ip: { ethertype: EtherType.Ipv4 },
  ip6: { ethertype: EtherType.Ipv6 },
  arp: { ethertype: EtherType.Arp },
  icmp: { ethertype: EtherType.Ipv4, protocol: 1 },
  icmp6: { ethertype: EtherType.Ipv6, protocol: 58 },
  tcp: { ethertype: -1, protocol: 6 },
  udp: { ethertype: -1, protocol: 17 },
};

/** Compiles `expression` (empty: every frame). Throws FilterError. */
export function compileFilter(expression: string): FramePredicate {
  const words = expression.match(/\(|\)|!|&&|\|\||[^\s()!]+/g) ?? [];
  if (words.length === 0) return () => true;
  let i = 0;
  const peek = () => words[i];
  const take = () => words[i++];
  const fail = (why: string): never => {
    throw new FilterError(`filter ${JSON.stringify(expression)}: ${why}`);
  };

  const primary = (): Node => {
    const w = take();
    if (w === undefined) return fail('it ends where a condition should follow');
    if (w === '(') {
      const e = or();
      if (take() !== ')') fail('a "(" is not closed');
      return e;
    }
    if (w === 'not' || w === '!') {
      const e = primary();
      return (f) => !e(f);
    }
    let side: 'src' | 'dst' | 'either' = 'either';
    let kind = w;
    if (w === 'src' || w === 'dst') {
      side = w;
      kind = take() ?? fail(`"${w}" must be followed by host, net or port`);
    }
    if (kind === 'proto') {
      const name = take() ?? fail('"proto" must be followed by icmp, icmp6, tcp, udp, arp, ip or ip6');
      return protocol(name);
    }
    if (side === 'either' && kind in PROTOCOLS) return protocol(kind);
    if (kind !== 'host' && kind !== 'net' && kind !== 'port') fail(`"${kind}" is not a condition this filter knows (host, net, port, proto, icmp, tcp, udp, arp, ip, ip6)`);
    const value = take() ?? fail(`"${kind}" must be followed by a value`);
    const match = (test: (a: string | null) => boolean): Node => (f) => (side !== 'dst' && test(f.src)) || (side !== 'src' && test(f.dst));
    if (kind === 'host') {
      const key = addressKey(value) ?? fail(`"${value}" is not an IPv4 or IPv6 address`);
      return match((a) => a === key);
    }
    if (kind === 'net') {
      const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(value);
      const length = m ? Number(m[2]) : -1;
      if (!m || length > 32) fail(`"${value}" is not an IPv4 prefix such as 10.10.0.0/24`);
      let prefix = 0;
      try {
        prefix = parseIpv4(m![1]);
      } catch {
        fail(`"${value}" is not an IPv4 prefix such as 10.10.0.0/24`);
      }
      const mask = length === 0 ? 0 : (0xffff_ffff << (32 - length)) >>> 0;
      const want = (prefix & mask) >>> 0;
      return match((a) => a !== null && !a.includes(':') && ((Number(a) & mask) >>> 0) === want);
    }
    const port = Number(value);
    if (!/^\d+$/.test(value) || port > 65535) fail(`"${value}" is not a port number`);
    return (f) => (f.protocol === 6 || f.protocol === 17) && ((side !== 'dst' && f.sport === port) || (side !== 'src' && f.dport === port));
  };
  const protocol = (name: string): Node => {
    const p = PROTOCOLS[name] ?? fail(`"${name}" is not a protocol this filter knows (icmp, icmp6, tcp, udp, arp, ip, ip6)`);
    return (f) => (p.ethertype < 0 || f.ethertype === p.ethertype) && (p.protocol === undefined || f.protocol === p.protocol);
  };
  /** One level of a binary operator: `operand` (op `operand`)*, joined left to right. */
  const chain = (op: readonly string[], operand: () => Node, join: (l: Node, r: Node) => Node) => (): Node => {
    let left = operand();
    while (op.includes(peek())) {
      take();
      left = join(left, operand());
    }
    return left;
  };
  const and = chain(['and', '&&'], primary, (l, r) => (f) => l(f) && r(f));
  const or = chain(['or', '||'], and, (l, r) => (f) => l(f) || r(f));
  const root = or();
  if (i < words.length) fail(`"${words[i]}" is not expected here (join conditions with and, or)`);
  const f: Fields = { ethertype: 0, protocol: -1, src: null, dst: null, sport: 0, dport: 0 };
  return (mem, off, len) => {
    read(mem, off, len, f);
    return root(f);
  };
}

/** An address as the filter compares it: IPv4 as its number's text, IPv6 normalized. */
function addressKey(text: string): string | null {
  try {
    return text.includes(':') ? v6Key(parseIpv6(text), 0) : String(parseIpv4(text));
  } catch {
    return null;
  }
}

function v6Key(b: Uint8Array, at: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[at + i] << 8) | b[at + i + 1]).toString(16));
  return parts.join(':');
}

function read(mem: Uint8Array, off: number, len: number, f: Fields): void {
  f.protocol = -1;
  f.src = f.dst = null;
  f.sport = f.dport = 0;
  let l3 = off + 14;
  f.ethertype = len >= 14 ? readU16(mem, off + 12) : -1;
  if (f.ethertype === EtherType.Vlan && len >= 18) {
    f.ethertype = readU16(mem, off + 16);
    l3 += 4;
  }
  const end = off + len;
  let l4 = -1;
  if (f.ethertype === EtherType.Ipv4 && l3 + 20 <= end) {
    f.protocol = mem[l3 + 9];
    f.src = String(readU32(mem, l3 + 12));
    f.dst = String(readU32(mem, l3 + 16));
    if ((readU16(mem, l3 + 6) & 0x1fff) === 0) l4 = l3 + (mem[l3] & 0x0f) * 4;
  } else if (f.ethertype === EtherType.Ipv6 && l3 + 40 <= end) {
    f.protocol = mem[l3 + 6];
    f.src = v6Key(mem, l3 + 8);
    f.dst = v6Key(mem, l3 + 24);
    l4 = l3 + 40;
  } else if (f.ethertype === EtherType.Arp && l3 + 28 <= end) {
    f.src = String(readU32(mem, l3 + 14));
    f.dst = String(readU32(mem, l3 + 24));
  }
  if ((f.protocol === 6 || f.protocol === 17) && l4 >= 0 && l4 + 4 <= end) {
    f.sport = readU16(mem, l4);
    f.dport = readU16(mem, l4 + 2);
  }
}
