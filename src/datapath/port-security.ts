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
 * - a VM is not a DHCP or DHCPv6 server, nor an IPv6 router (no router advertisements);
 * - it sends IPv4, IPv6 and ARP, and other EtherTypes only where the port's
 *   `allowedEtherTypes` list them (LLDP's 0x88cc, say), with the MAC checked. An 802.3
 *   frame (a length where the EtherType would be: LLC, STP) is refused too. Tags never get
 *   here: `inside` refuses every tag EtherType on an access port ('vlan-not-allowed').
 *
 * The frame was parsed once, by `inside` (flow.ts): its headers are whole, and this stage
 * reads its flow key for where they are. Each refusal is counted under a reason of its own
 * (counters.ts). Synchronous and allocation-free, as the rest of the per-frame path.
 */
import { parseIpv4, parseIpv6, readMac, readU16, readU32, formatMac } from '../wire/bytes.js';
import { EtherType } from '../wire/ethernet.js';
import { Drop } from './counters.js';
import type { Flow } from './flow.js';
import { eui64, Prefix6 } from './ipv6.js';

/** What a port may send as, in the data path's form. */
export class PortSecurity {
  readonly macs: number[];
  private readonly v4: Array<{ prefix: number; mask: number }>;
  private readonly v6: Prefix6[];
  /** EtherTypes the port may send besides IPv4, IPv6 and ARP. */
  private readonly etherTypes: number[];

  /** What it allows, in words (for `weft trace`): the addresses, and the EtherTypes. */
  readonly allows: string;
  readonly allowsTypes: string;

  /** `ips`: addresses or prefixes (CIDR text), IPv4 and IPv6; `etherTypes`: what it may
   * send besides IPv4, IPv6 and ARP. */
  constructor(macs: number[], ips: string[], etherTypes: number[] = []) {
    this.macs = macs;
    this.etherTypes = etherTypes;
    const types = etherTypes.map((t) => `0x${t.toString(16).padStart(4, '0')}`);
    this.allows = `the port sends only as ${macs.map(formatMac).join(', ') || 'no MAC'}${ips.length ? ` from ${ips.join(', ')}` : ''}`;
    this.allowsTypes = `the port sends IPv4, IPv6 and ARP${types.length ? `, and EtherType ${types.join(', ')}` : ' only (its allowedEtherTypes list no other)'}`;
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

  /** Why `check` refused a frame, in words (for `weft trace`). */
  explain(refused: number): string {
    return refused === Drop['ethertype-not-allowed'] ? this.allowsTypes : this.allows;
  }

  private etherTypeAllowed(type: number): boolean {
    for (let i = 0; i < this.etherTypes.length; i++) if (this.etherTypes[i] === type) return true;
    return false;
  }

  /** The drop reason for the untagged frame at `off` whose flow key is `flow` (its headers
   * checked whole), or -1 when it may go on. */
  check(mem: Uint8Array, off: number, flow: Flow): number {
    const src = readMac(mem, off + 6);
    if (!this.macAllowed(src)) return Drop['spoofed-mac'];
    const type = flow.type;
    if (type === EtherType.Arp) {
      const a = flow.l3;
      const senderIp = readU32(mem, a + 14);
      if (readMac(mem, a + 8) !== src || (senderIp !== 0 && !this.v4Allowed(senderIp))) return Drop['spoofed-arp'];
      return -1;
    }
    if (type === EtherType.Ipv4) return this.checkIpv4(mem, flow);
    if (type === EtherType.Ipv6) return this.checkIpv6(mem, flow, src);
    return this.etherTypeAllowed(type) ? -1 : Drop['ethertype-not-allowed'];
  }

  private checkIpv4(mem: Uint8Array, flow: Flow): number {
    const l4 = flow.l4;
    const udp = flow.protocol === 17 && !flow.laterFragment;
    const src = readU32(mem, flow.l3 + 12);
    if (udp && readU16(mem, l4) === 67) return Drop['dhcp-server'];
    if (this.v4Allowed(src)) return -1;
    // A DHCP client before it has an address.
    if (src === 0 && udp && readU16(mem, l4) === 68 && readU16(mem, l4 + 2) === 67) return -1;
    return Drop['spoofed-ip'];
  }

  private checkIpv6(mem: Uint8Array, flow: Flow, srcMac: number): number {
    const ip = flow.l3;
    const l4 = flow.l4;
    const len = flow.l4Len;
    const whole = !flow.laterFragment;
    // After any extension headers: a router advertisement is one behind a hop-by-hop or
    // destination options header too (RFC 7113 §3).
    const icmp = flow.protocol === 58 && whole ? mem[l4] : -1;
    if (icmp === 134) return Drop['router-advertisement'];
    if (flow.protocol === 17 && whole && readU16(mem, l4) === 547) return Drop['dhcp-server'];
    let unspecified = true;
    for (let i = 0; i < 16 && unspecified; i++) unspecified = mem[ip + 8 + i] === 0;
    if (unspecified) {
      // Duplicate address detection (a solicitation) and listener reports (MLDv2, and v1's
      // for old stacks) come from :: (RFC 4862 §5.4.2, RFC 3810 §5.2.13).
      if (icmp === 135 || icmp === 143 || icmp === 131) return icmp === 135 ? this.checkNdOptions(mem, l4 + 24, len - 24, srcMac) : -1;
      return Drop['spoofed-ip'];
    }
    if (!this.v6Allowed(mem, ip + 8)) return Drop['spoofed-ip'];
    if (icmp === 136) {
      // An advertisement speaks for its target: it must be one of the port's addresses.
      if (len < 24 || !this.v6Allowed(mem, l4 + 8)) return Drop['spoofed-nd'];
      return this.checkNdOptions(mem, l4 + 24, len - 24, srcMac);
    }
    if (icmp === 135 && len >= 24) return this.checkNdOptions(mem, l4 + 24, len - 24, srcMac);
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
