/**
 * The agent's local services, one stage of the data path: DHCP for a port with a lease,
 * ARP and IPv6 neighbor answers for addresses the controller told us about (so they are
 * not flooded to every host), and IPv6 router advertisements (RFC 4861: the network's
 * prefix for SLAAC, its MTU, DNS servers per RFC 8106) answering a VM's router
 * solicitation and sent now and then to every port. Each answers to the asking port only,
 * from a scratch buffer.
 */
import { formatIpv6, readMac, readU16, readU32, writeMac, writeU16, writeU32 } from '../wire/bytes.js';
import { finish, sumBytes } from '../wire/checksum.js';
import { EtherType } from '../wire/ethernet.js';
import { Drop } from './counters.js';
import { answerDhcp, DHCP_OUTCOMES } from './dhcp-server.js';
import { ROUTER_LINK_LOCAL } from './ipv6.js';
import type { Network, Output, Port } from './model.js';
import { ROUTER_MAC } from './router-mac.js';

/** What a router advertisement says (fixed by RFC 4861 §6.2.1 defaults where not ours). */
const RA_VALID_SECONDS = 86_400;
const RA_PREFERRED_SECONDS = 14_400;
const ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

export class LocalServices {
  constructor(private readonly out: Output) {}

  /**
   * A DHCP message from a port with a lease: answered here from the lease (never flooded to
   * the network, so no other VM or host sees it); one that cannot be answered is counted
   * under its outcome and dropped as 'dhcp-refused'.
   */
  serveDhcp(port: Port, net: Network, off: number, len: number, now: number): void {
    const mem = this.out.mem;
    const r = this.out.scratch();
    const a = answerDhcp(mem, off, len, port.dhcp!, ROUTER_MAC, net.mtu, mem, r);
    port.dhcpOutcomes[DHCP_OUTCOMES.indexOf(a.outcome)]++;
    if (a.outcome === 'malformed' || a.outcome === 'wrong-client' || a.outcome === 'not-for-us') return port.counters.drop(Drop['dhcp-refused']);
    if (a.length > 0) this.out.toPort(port, net, r, a.length, now);
  }

  /**
   * ARP suppression: a request for an address the controller told us about is answered
   * here, to the asking port only, instead of being flooded to every host. Gratuitous ARP
   * and a VM probing its own address pass through. Returns whether it answered.
   */
  answerArp(port: Port, net: Network, off: number, len: number, now: number): boolean {
    const mem = this.out.mem;
    const a = off + 14;
    if (len < 14 + 28 || readU32(mem, a) !== 0x0001_0800 || readU16(mem, a + 4) !== 0x0604 || readU16(mem, a + 6) !== 1) return false;
    const senderIp = readU32(mem, a + 14);
    const targetIp = readU32(mem, a + 24);
    if (senderIp === targetIp) return false;
    const mac = net.arp!.get(targetIp);
    if (mac === undefined || mac === readMac(mem, a + 8)) return false;
    const r = this.out.scratch();
    mem.copyWithin(r, off + 6, off + 12); // to the asker
    writeMac(mem, r + 6, mac);
    writeU16(mem, r + 12, EtherType.Arp);
    writeU32(mem, r + 14, 0x0001_0800);
    writeU16(mem, r + 18, 0x0604);
    writeU16(mem, r + 20, 2); // reply
    writeMac(mem, r + 22, mac);
    writeU32(mem, r + 28, targetIp);
    mem.copyWithin(r + 32, a + 8, a + 18); // target hardware and protocol address: the asker's
    net.arpAnswered++;
    this.out.toPort(port, net, r, 42, now);
    return true;
  }

  /**
   * Neighbor solicitation suppression (RFC 4861 §7.2.4, answered on the target's behalf): a
   * solicitation for an address the controller told us about gets a solicited, override
   * advertisement from the agent. Duplicate address detection (unspecified source) and a
   * VM asking for its own address pass through. Returns whether it answered.
   */
  answerNd(port: Port, net: Network, off: number, len: number, now: number): boolean {
    const mem = this.out.mem;
    const ip = off + 14;
    const icmp = ip + 40;
    // ICMPv6 straight after the fixed header, hop limit 255 (§7.1.1), type 135, code 0.
    if (len < 14 + 40 + 24 || mem[ip + 6] !== 58 || mem[ip + 7] !== 255 || mem[icmp] !== 135 || mem[icmp + 1] !== 0) return false;
    let unspecified = true;
    for (let i = 0; i < 16 && unspecified; i++) unspecified = mem[ip + 8 + i] === 0;
    if (unspecified) return false;
    const mac = net.nd!.get(formatIpv6(mem, icmp + 8));
    if (mac === undefined || mac === readMac(mem, off + 6)) return false;
    const r = this.out.scratch();
    const rip = r + 14;
    const ricmp = rip + 40;
    mem.copyWithin(r, off + 6, off + 12); // to the asker
    writeMac(mem, r + 6, mac);
    writeU16(mem, r + 12, EtherType.Ipv6);
    writeU32(mem, rip, 0x6000_0000);
    writeU16(mem, rip + 4, 32); // payload: NA (24) + target link-layer address option (8)
    mem[rip + 6] = 58;
    mem[rip + 7] = 255;
    mem.copyWithin(rip + 8, icmp + 8, icmp + 24); // from the target address
    mem.copyWithin(rip + 24, ip + 8, ip + 24); // to the soliciting address
    mem[ricmp] = 136;
    mem[ricmp + 1] = 0;
    writeU16(mem, ricmp + 2, 0);
    writeU32(mem, ricmp + 4, mac === ROUTER_MAC ? 0xe000_0000 : 0x6000_0000); // (router,) solicited, override
    mem.copyWithin(ricmp + 8, icmp + 8, icmp + 24);
    mem[ricmp + 24] = 2; // target link-layer address
    mem[ricmp + 25] = 1;
    writeMac(mem, ricmp + 26, mac);
    const pseudo = sumBytes(mem, rip + 8, 32, 32 + 58);
    writeU16(mem, ricmp + 2, finish(sumBytes(mem, ricmp, 32, pseudo)));
    net.ndAnswered++;
    this.out.toPort(port, net, r, 86, now);
    return true;
  }

  /** A router solicitation (RFC 4861 §6.1.1 checks) on a network with IPv6: answered with
   * an advertisement, to the soliciting address (or all nodes, from an unspecified one). */
  answerRs(port: Port, net: Network, off: number, len: number, now: number): boolean {
    const mem = this.out.mem;
    const ip = off + 14;
    const icmp = ip + 40;
    if (len < 14 + 40 + 8 || mem[ip + 6] !== 58 || mem[ip + 7] !== 255 || mem[icmp] !== 133 || mem[icmp + 1] !== 0) return false;
    let unspecified = true;
    for (let i = 0; i < 16 && unspecified; i++) unspecified = mem[ip + 8 + i] === 0;
    this.sendRa(port, net, unspecified ? -1 : off, now);
    return true;
  }

  /**
   * Sends `net`'s router advertisement to `port`: to the sender of the solicitation at
   * `solicitation` (an offset in memory), or with -1 to all nodes. From the router's
   * link-local address and MAC; a router lifetime only where a router serves the network.
   */
  sendRa(port: Port, net: Network, solicitation: number, now: number): void {
    const ra = net.ra!;
    const mem = this.out.mem;
    const r = this.out.scratch();
    const rip = r + 14;
    const icmp = rip + 40;
    if (solicitation < 0) {
      writeMac(mem, r, 0x3333_0000_0001);
      mem.set(ALL_NODES, rip + 24);
    } else {
      mem.copyWithin(r, solicitation + 6, solicitation + 12);
      mem.copyWithin(rip + 24, solicitation + 14 + 8, solicitation + 14 + 24);
    }
    writeMac(mem, r + 6, ROUTER_MAC);
    writeU16(mem, r + 12, EtherType.Ipv6);
    mem.set(ROUTER_LINK_LOCAL, rip + 8);
    // The advertisement: hop limit 64, no flags (addresses by SLAAC), then options.
    mem[icmp] = 134;
    mem[icmp + 1] = 0;
    writeU16(mem, icmp + 2, 0);
    mem[icmp + 4] = 64;
    mem[icmp + 5] = 0;
    writeU16(mem, icmp + 6, ra.routerLifetime);
    writeU32(mem, icmp + 8, 0);
    writeU32(mem, icmp + 12, 0);
    let o = icmp + 16;
    mem[o] = 1; // source link-layer address
    mem[o + 1] = 1;
    writeMac(mem, o + 2, ROUTER_MAC);
    o += 8;
    mem[o] = 5; // MTU
    mem[o + 1] = 1;
    writeU16(mem, o + 2, 0);
    writeU32(mem, o + 4, net.mtu);
    o += 8;
    mem[o] = 3; // prefix information: on-link, autonomous (SLAAC)
    mem[o + 1] = 4;
    mem[o + 2] = ra.prefixLength;
    mem[o + 3] = 0xc0;
    writeU32(mem, o + 4, RA_VALID_SECONDS);
    writeU32(mem, o + 8, RA_PREFERRED_SECONDS);
    writeU32(mem, o + 12, 0);
    mem.set(ra.prefix, o + 16);
    o += 32;
    if (ra.dns.length > 0) {
      mem[o] = 25; // recursive DNS servers (RFC 8106)
      mem[o + 1] = 1 + 2 * ra.dns.length;
      writeU16(mem, o + 2, 0);
      writeU32(mem, o + 4, Math.max(ra.routerLifetime, RA_PREFERRED_SECONDS));
      for (let i = 0; i < ra.dns.length; i++) mem.set(ra.dns[i], o + 8 + 16 * i);
      o += 8 + 16 * ra.dns.length;
    }
    const payload = o - icmp;
    writeU32(mem, rip, 0x6000_0000);
    writeU16(mem, rip + 4, payload);
    mem[rip + 6] = 58;
    mem[rip + 7] = 255;
    writeU16(mem, icmp + 2, finish(sumBytes(mem, icmp, payload, sumBytes(mem, rip + 8, 32, payload + 58))));
    port.raSent = now;
    this.out.toPort(port, net, r, 14 + 40 + payload, now);
  }
}
