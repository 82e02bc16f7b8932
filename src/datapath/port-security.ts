/**
 * Port security, one stage of the data path: a VM's port sends only as that VM. Checked in
 * `inside` for every frame from a port that has it (on by default for a controller's
 * ports), before anything is learned, answered, routed or switched:
 *
 * - the source MAC is the port's (or an allowed address pair's);
 * - IPv4 comes from one of the port's addresses or allowed prefixes, or is a DHCP client's
 *   message from 0.0.0.0; ARP's sender fields are the frame's MAC and such an address (or
 *   0.0.0.0, a probe);
 * - IPv6 comes from one of its addresses, its MACs' link-local (modified EUI-64) addresses,
 *   or :: for duplicate address detection and multicast listener reports; a neighbour
 *   advertisement's target is the port's own, and its link-layer options its own MAC;
 * - a VM is not a DHCP or DHCPv6 server, nor an IPv6 router (no router advertisements).
 *
 * Other ethertypes pass with the MAC checked. Each refusal is counted under a reason of its
 * own (counters.ts). Synchronous and allocation-free, as the rest of the per-frame path.
 */
import { parseIpv4, parseIpv6, readMac, readU16, readU32, formatMac } from '../wire/bytes.js';
import { EtherType } from '../wire/ethernet.js';
import { Drop } from './counters.js';
import { eui64, Prefix6 } from './ipv6.js';

/** What a port may send as, in the data path's form. */
export class PortSecurity {
  readonly macs: number[];
  private readonly v4: Array<{ prefix: number; mask: number }>;
  private readonly v6: Prefix6[];

  /** What it allows, in words (for `weft trace`). */
  readonly allows: string;

  /** `ips`: addresses or prefixes (CIDR text), IPv4 and IPv6. */
  constructor(macs: number[], ips: string[]) {
    this.macs = macs;
    this.allows = `the port sends only as ${macs.map(formatMac).join(', ') || 'no MAC'}${ips.length ? ` from ${ips.join(', ')}` : ''}`;
    this.v4 = ips.filter((ip) => !ip.includes(':')).map((ip) => {
      const [addr, len] = ip.split('/');
      const length = len === undefined ? 32 : Number(len);
      const mask = length === 0 ? 0 : (0xffff_ffff << (32 - length)) >>> 0;
      return { prefix: (parseIpv4(addr) & mask) >>> 0, mask };
    });
    this.v6 = [
      ...ips.filter((ip) => ip.includes(':')).map((ip) => {
        const [addr, len] = ip.split('/');
        return new Prefix6(parseIpv6(addr), len === undefined ? 128 : Number(len));
      }),
      ...macs.map((m) => new Prefix6(eui64(parseIpv6('fe80::'), m), 128)),
    ];
  }

  private macAllowed(mac: number): boolean {
    for (let i = 0; i < this.macs.length; i++) if (this.macs[i] === mac) return true;
    return false;
  }

  private v4Allowed(ip: number): boolean {
    for (let i = 0; i < this.v4.length; i++) if (((ip & this.v4[i].mask) >>> 0) === this.v4[i].prefix) return true;
    return false;
  }

  private v6Allowed(mem: Uint8Array, at: number): boolean {
    for (let i = 0; i < this.v6.length; i++) if (this.v6[i].contains(mem, at)) return true;
    return false;
  }

  /** The drop reason for the untagged frame at (off, len), or -1 when it may go on. */
  check(mem: Uint8Array, off: number, len: number): number {
    const src = readMac(mem, off + 6);
    if (!this.macAllowed(src)) return Drop['spoofed-mac'];
    const type = readU16(mem, off + 12);
    if (type === EtherType.Arp) {
      const a = off + 14;
      if (len < 14 + 28) return Drop['spoofed-arp'];
      const senderIp = readU32(mem, a + 14);
      if (readMac(mem, a + 8) !== src || (senderIp !== 0 && !this.v4Allowed(senderIp))) return Drop['spoofed-arp'];
      return -1;
    }
    if (type === EtherType.Ipv4) return this.checkIpv4(mem, off + 14, len - 14);
    if (type === EtherType.Ipv6) return this.checkIpv6(mem, off + 14, len - 14, src);
    return -1;
  }

  private checkIpv4(mem: Uint8Array, ip: number, len: number): number {
    if (len < 20) return Drop['spoofed-ip'];
    const ihl = (mem[ip] & 0x0f) * 4;
    const udp = mem[ip + 9] === 17 && len >= ihl + 8 && (readU16(mem, ip + 6) & 0x1fff) === 0;
    const src = readU32(mem, ip + 12);
    if (udp && readU16(mem, ip + ihl) === 67) return Drop['dhcp-server'];
    if (this.v4Allowed(src)) return -1;
    // A DHCP client before it has an address.
    if (src === 0 && udp && readU16(mem, ip + ihl) === 68 && readU16(mem, ip + ihl + 2) === 67) return -1;
    return Drop['spoofed-ip'];
  }

  private checkIpv6(mem: Uint8Array, ip: number, len: number, srcMac: number): number {
    if (len < 40) return Drop['spoofed-ip'];
    let next = mem[ip + 6];
    let l4 = ip + 40;
    // MLD travels behind a hop-by-hop header carrying Router Alert (RFC 3810 §5): look past it.
    if (next === 0 && len >= 40 + 8) {
      next = mem[l4];
      l4 += (mem[l4 + 1] + 1) * 8;
    }
    const icmp = next === 58 && len >= l4 - ip + 4 ? mem[l4] : -1;
    if (icmp === 134) return Drop['router-advertisement'];
    if (next === 17 && len >= 40 + 8 && readU16(mem, l4) === 547) return Drop['dhcp-server'];
    let unspecified = true;
    for (let i = 0; i < 16 && unspecified; i++) unspecified = mem[ip + 8 + i] === 0;
    if (unspecified) {
      // Duplicate address detection (a solicitation) and listener reports (MLDv2, and v1's
      // for old stacks) come from :: (RFC 4862 §5.4.2, RFC 3810 §5.2.13).
      if (icmp === 135 || icmp === 143 || icmp === 131) return icmp === 135 ? this.checkNdOptions(mem, l4 + 24, len - 64, srcMac) : -1;
      return Drop['spoofed-ip'];
    }
    if (!this.v6Allowed(mem, ip + 8)) return Drop['spoofed-ip'];
    if (icmp === 136) {
      // An advertisement speaks for its target: it must be one of the port's addresses.
      if (len < 40 + 24 || !this.v6Allowed(mem, l4 + 8)) return Drop['spoofed-nd'];
      return this.checkNdOptions(mem, l4 + 24, len - 64, srcMac);
    }
    if (icmp === 135 && len >= 40 + 24) return this.checkNdOptions(mem, l4 + 24, len - 64, srcMac);
    return -1;
  }

  /** Neighbour discovery's link-layer address options must name the frame's own MAC. */
  private checkNdOptions(mem: Uint8Array, at: number, len: number, srcMac: number): number {
    let o = at;
    const end = at + Math.max(0, len);
    while (o + 2 <= end) {
      const size = mem[o + 1] * 8;
      if (size === 0 || o + size > end) return Drop['spoofed-nd'];
      if ((mem[o] === 1 || mem[o] === 2) && (size < 8 || readMac(mem, o + 2) !== srcMac)) return Drop['spoofed-nd'];
      o += size;
    }
    return -1;
  }
}
