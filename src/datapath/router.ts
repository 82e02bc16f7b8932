/**
 * The distributed router, one stage of the data path: every host routes its own VMs'
 * packets between the networks a router joins, answers pings to the router's addresses,
 * and sends the ICMP errors a router owes, for IPv4 and IPv6. Called by `inside` for frames
 * sent to ROUTER_MAC; synchronous and allocation-free like the rest of the per-frame path.
 */
import { formatIpv4, readU16, readU32, writeMac, writeU16, writeU32 } from '../wire/bytes.js';
import { finish, sumBytes } from '../wire/checksum.js';
import { EtherType } from '../wire/ethernet.js';
import { Drop, type Counters } from './counters.js';
import type { Network, Output, Port } from './model.js';
import type { NatStage } from './nat.js';
import { ROUTER_LINK_LOCAL } from './ipv6.js';
import { ROUTER_MAC } from './router-mac.js';

/** ICMPv6 (RFC 4443) errors the router sends. */
const ICMP6_UNREACHABLE = 1;
const ICMP6_TOO_BIG = 2;
const ICMP6_TIME_EXCEEDED = 3;
/** An ICMPv6 error fits the minimum IPv6 MTU (RFC 4443 §2.4 c). */
const IPV6_MIN_MTU = 1280;

/** ICMP (RFC 792) types the router sends. */
const ICMP_UNREACHABLE = 3;
const ICMP_TIME_EXCEEDED = 11;
/** ICMP errors a host's router sends per second at most (RFC 1812 §4.3.2.8). */
const ICMP_ERRORS_PER_SECOND = 100;

export class Router {
  private icmpWindowStart = 0;
  private icmpSent = 0;

  constructor(
    private readonly out: Output,
    private readonly nat: NatStage,
  ) {}

  /**
   * The distributed router: a frame a VM sent to its gateway (ROUTER_MAC) is routed here,
   * on the VM's own host, straight into the destination's network: TTL decremented, the
   * header checksum updated incrementally (RFC 1624), MACs rewritten (from the router, to
   * the destination port's MAC the controller gave), then switched there, so a packet
   * between VMs on two hosts crosses the underlay once.
   *
   * A packet for beyond every subnet goes to the router's external gateway: translated here
   * if this host holds it, else sent unchanged through the network's tunnel to the host that
   * does, which routes it (`port` is then null: from a tunnel, and ICMP errors are not sent
   * back across it).
   */
  route(port: Port | null, net: Network, off: number, len: number, from: number, c: Counters, now: number): void {
    const mem = this.out.mem;
    const ip = off + 14;
    if (readU16(mem, off + 12) === EtherType.Ipv6) return this.route6(port, net, off, len, from, c, now);
    if (readU16(mem, off + 12) !== EtherType.Ipv4 || len < 14 + 20 || mem[ip] >>> 4 !== 4 || (mem[ip] & 0x0f) < 5) return c.drop(Drop['no-route']);
    const ihl = (mem[ip] & 0x0f) * 4;
    const total = readU16(mem, ip + 2);
    if (len < 14 + ihl || total < ihl || total > len - 14 || finish(sumBytes(mem, ip, ihl, 0)) !== 0) return c.drop(Drop['bad-ip-header']);
    const dst = readU32(mem, ip + 16);
    const routes = net.routes;
    let target: Network | null = null;
    let hop = dst;
    // To the sender's own subnet through the router (a VM with a stale or odd route): back
    // into the same network, as a router forwards on the interface a packet came in on.
    const g = net.gateways;
    for (let i = 0; i < g.length; i++) if (((dst ^ g[i].address) & g[i].mask) === 0 && dst !== g[i].address) target = net;
    for (let i = 0; i < routes.length && target === null; i++) {
      if (((dst & routes[i].mask) >>> 0) === routes[i].prefix) {
        target = routes[i].network;
        if (routes[i].nextHop !== 0) hop = routes[i].nextHop;
        break;
      }
    }
    const tracer = this.out.tracer;
    if (target === null) {
      if (port !== null && this.gatewayOf(net, dst) === dst) return this.answerGatewayPing(port, net, off, len, c, now);
      const nat = net.external;
      if (tracer.active) {
        tracer.step('route', 'pass', `${formatIpv4(dst)} is beyond every subnet: ${nat !== null ? 'to the external gateway, on this host' : net.externalVtep !== null && port !== null ? `to the external gateway, on host ${formatIpv4(net.externalVtep.address)}` : 'no way out'}`);
      }
      if (nat !== null) {
        if (mem[ip + 8] <= 1) {
          this.icmpError(port, net, off, len, ICMP_TIME_EXCEEDED, 0, 0, now);
          return c.drop(Drop['ttl-exceeded']);
        }
        if (len - 14 > nat.network.mtu) {
          if ((mem[ip + 6] & 0x40) !== 0) this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 4, nat.network.mtu, now);
          if (tracer.active) tracer.because(`${len - 14} bytes, network ${nat.network.name}'s MTU is ${nat.network.mtu}`);
          return c.drop(Drop['mtu-exceeded']);
        }
        return this.nat.egress(nat, net, off, len, from, c, now);
      }
      if (net.externalVtep !== null && port !== null) return this.out.toTunnel(net.externalVtep, net, off, len, c, now);
      this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 0 /* net unreachable */, 0, now);
      if (tracer.active) tracer.because(`network ${net.name} has no route to ${formatIpv4(dst)} and no way out`);
      return c.drop(Drop['no-route']);
    }
    if (tracer.active) tracer.step('route', 'pass', `${formatIpv4(dst)} via network ${target.name}${hop !== dst ? ` (next hop ${formatIpv4(hop)})` : ''}, TTL ${mem[ip + 8]}`);
    if (mem[ip + 8] <= 1) {
      this.icmpError(port, net, off, len, ICMP_TIME_EXCEEDED, 0, 0, now);
      return c.drop(Drop['ttl-exceeded']);
    }
    if (len - 14 > target.mtu) {
      // RFC 1191: with DF set, say which MTU fits; Weft does not fragment either way.
      if ((mem[ip + 6] & 0x40) !== 0) this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 4 /* fragmentation needed */, target.mtu, now);
      if (tracer.active) tracer.because(`${len - 14} bytes, network ${target.name}'s MTU is ${target.mtu}`);
      return c.drop(Drop['mtu-exceeded']);
    }
    const mac = target.arp?.get(hop);
    if (mac === undefined) {
      this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 1 /* host unreachable */, 0, now);
      if (tracer.active) tracer.because(`no port on network ${target.name} has ${formatIpv4(hop)}`);
      return c.drop(Drop['no-neighbor']);
    }
    const before = readU16(mem, ip + 8);
    mem[ip + 8]--;
    let sum = (~readU16(mem, ip + 10) & 0xffff) + (~before & 0xffff) + readU16(mem, ip + 8);
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    writeU16(mem, ip + 10, ~sum & 0xffff);
    writeMac(mem, off, mac);
    writeMac(mem, off + 6, ROUTER_MAC);
    this.out.forward(target, off, len, from, c, now, net);
  }

  /**
   * IPv6, as IPv4: the longest matching prefix of the router's networks picks the next one,
   * the hop limit goes down by one (no header checksum in IPv6), MACs are rewritten, and the
   * frame is switched there. The router never fragments: a packet over the next network's
   * MTU gets a Packet Too Big (RFC 8200 §5), so path MTU discovery finds it.
   */
  private route6(port: Port | null, net: Network, off: number, len: number, from: number, c: Counters, now: number): void {
    const mem = this.out.mem;
    const ip = off + 14;
    if (len < 14 + 40 || mem[ip] >>> 4 !== 6) return c.drop(Drop['no-route']);
    const dst = ip + 24;
    const routes = net.routes6;
    let target: Network | null = null;
    for (let i = 0; i < routes.length; i++) {
      if (routes[i].prefix.contains(mem, dst)) {
        target = routes[i].network;
        break;
      }
    }
    if (target === null) {
      this.icmp6Error(port, net, off, len, ICMP6_UNREACHABLE, 0 /* no route */, 0, now);
      return c.drop(Drop['no-route']);
    }
    if (mem[ip + 7] <= 1) {
      this.icmp6Error(port, net, off, len, ICMP6_TIME_EXCEEDED, 0, 0, now);
      return c.drop(Drop['ttl-exceeded']);
    }
    if (len - 14 > target.mtu) {
      this.icmp6Error(port, net, off, len, ICMP6_TOO_BIG, 0, target.mtu, now);
      return c.drop(Drop['mtu-exceeded']);
    }
    const mac = target.nd6?.get(mem, dst);
    if (mac === undefined) {
      this.icmp6Error(port, net, off, len, ICMP6_UNREACHABLE, 3 /* address unreachable */, 0, now);
      return c.drop(Drop['no-neighbor']);
    }
    mem[ip + 7]--;
    writeMac(mem, off, mac);
    writeMac(mem, off + 6, ROUTER_MAC);
    this.out.forward(target, off, len, from, c, now, net);
  }

  /** ICMPv6 errors owed by the router (RFC 4443 §2.4: never about an ICMPv6 error or to a
   * multicast or unspecified source), from its link-local address, at most
   * ICMP_ERRORS_PER_SECOND per host (shared with IPv4). */
  private icmp6Error(port: Port | null, net: Network, off: number, len: number, type: number, code: number, param: number, now: number): void {
    if (port === null) return;
    const mem = this.out.mem;
    const ip = off + 14;
    const src = ip + 8;
    if (mem[src] === 0xff) return;
    let unspecified = true;
    for (let i = 0; i < 16 && unspecified; i++) unspecified = mem[src + i] === 0;
    if (unspecified) return;
    // An ICMPv6 error (types below 128) right after the header is not answered.
    if (mem[ip + 6] === 58 && len >= 14 + 40 + 1 && mem[ip + 40] < 128) return;
    if (!this.icmpAllowed(now)) return;
    const quoted = Math.min(len - 14, IPV6_MIN_MTU - 40 - 8);
    const r = this.out.scratch();
    const rip = r + 14;
    const icmp = rip + 40;
    mem.copyWithin(icmp + 8, ip, ip + quoted); // as much of the packet as fits (RFC 4443)
    mem.copyWithin(r, off + 6, off + 12);
    writeMac(mem, r + 6, ROUTER_MAC);
    writeU16(mem, r + 12, EtherType.Ipv6);
    writeU32(mem, rip, 0x6000_0000);
    writeU16(mem, rip + 4, 8 + quoted);
    mem[rip + 6] = 58;
    mem[rip + 7] = 255;
    mem.set(ROUTER_LINK_LOCAL, rip + 8);
    mem.copyWithin(rip + 24, icmp + 8 + 8, icmp + 8 + 24); // to the packet's source
    mem[icmp] = type;
    mem[icmp + 1] = code;
    writeU16(mem, icmp + 2, 0);
    writeU32(mem, icmp + 4, param);
    writeU16(mem, icmp + 2, finish(sumBytes(mem, icmp, 8 + quoted, sumBytes(mem, rip + 8, 32, 8 + quoted + 58))));
    this.out.toPort(port, net, r, 14 + 40 + 8 + quoted, now);
  }

  /** Whether one more ICMP error fits this second's budget (counted when it does). */
  private icmpAllowed(now: number): boolean {
    if (now - this.icmpWindowStart >= 1000) {
      this.icmpWindowStart = now;
      this.icmpSent = 0;
    }
    if (this.icmpSent >= ICMP_ERRORS_PER_SECOND) return false;
    this.icmpSent++;
    return true;
  }

  /** The router's address on `net` for the subnet holding `ip`, else its first, else 0. */
  private gatewayOf(net: Network, ip: number): number {
    const g = net.gateways;
    for (let i = 0; i < g.length; i++) if (((ip ^ g[i].address) & g[i].mask) === 0) return g[i].address;
    return g.length > 0 ? g[0].address : 0;
  }

  /** ICMP errors owed by the router (RFC 1812 §4.3.2.7: never about an ICMP error, a
   * fragment other than the first, or a packet to or from a group or zero address), at
   * most ICMP_ERRORS_PER_SECOND per host; the packet itself is dropped by the caller. */
  private icmpError(port: Port | null, net: Network, off: number, len: number, type: number, code: number, mtu: number, now: number): void {
    const tracer = this.out.tracer;
    if (!tracer.active) return this.sendIcmpError(port, net, off, len, type, code, mtu, now);
    // The error is not the traced probe: its own way back is not part of the path.
    tracer.pause();
    this.sendIcmpError(port, net, off, len, type, code, mtu, now);
    tracer.resume();
    if (port !== null) tracer.step('route', 'pass', `ICMP ${type === ICMP_UNREACHABLE ? 'destination unreachable' : 'time exceeded'} (code ${code}${mtu ? `, MTU ${mtu}` : ''}) sent back to port ${port.name}`);
  }

  private sendIcmpError(port: Port | null, net: Network, off: number, len: number, type: number, code: number, mtu: number, now: number): void {
    if (port === null) return;
    const mem = this.out.mem;
    const ip = off + 14;
    const ihl = (mem[ip] & 0x0f) * 4;
    const src = readU32(mem, ip + 12);
    const from = this.gatewayOf(net, src);
    if (from === 0 || len < 14 + ihl || (readU16(mem, ip + 6) & 0x1fff) !== 0 || src === 0 || src >>> 28 === 14 || src === 0xffffffff) return;
    if (mem[ip + 9] === 1 && len >= 14 + ihl + 1 && (mem[ip + ihl] === ICMP_UNREACHABLE || mem[ip + ihl] === ICMP_TIME_EXCEEDED)) return;
    if (!this.icmpAllowed(now)) return;
    const quoted = Math.min(len - 14, ihl + 8);
    const r = this.out.scratch();
    const rip = r + 14;
    const icmp = rip + 20;
    mem.copyWithin(r, off + 6, off + 12); // back to the sender's MAC
    writeMac(mem, r + 6, ROUTER_MAC);
    writeU16(mem, r + 12, EtherType.Ipv4);
    mem.copyWithin(icmp + 8, ip, ip + quoted); // the original header and 8 bytes (RFC 792)
    mem[icmp] = type;
    mem[icmp + 1] = code;
    writeU16(mem, icmp + 2, 0);
    writeU16(mem, icmp + 4, 0);
    writeU16(mem, icmp + 6, mtu);
    writeU16(mem, icmp + 2, finish(sumBytes(mem, icmp, 8 + quoted, 0)));
    writeIpv4Header(mem, rip, 20 + 8 + quoted, 1, from, src);
    this.out.toPort(port, net, r, 14 + 20 + 8 + quoted, now);
  }

  /** An echo request to the router's own address on the network: answered in place. */
  private answerGatewayPing(port: Port, net: Network, off: number, len: number, c: Counters, now: number): void {
    const mem = this.out.mem;
    const ip = off + 14;
    const ihl = (mem[ip] & 0x0f) * 4;
    const icmp = ip + ihl;
    const total = readU16(mem, ip + 2);
    if (mem[ip + 9] !== 1 || len < 14 + ihl + 8 || mem[icmp] !== 8 || total > len - 14 || total < ihl + 8) return c.drop(Drop['no-route']);
    const gateway = readU32(mem, ip + 16);
    mem.copyWithin(off, off + 6, off + 12);
    writeMac(mem, off + 6, ROUTER_MAC);
    writeIpv4Header(mem, ip, total, 1, gateway, readU32(mem, ip + 12));
    if (ihl > 20) mem.copyWithin(ip + 20, icmp, ip + total); // options are not echoed
    const reply = ip + 20;
    mem[reply] = 0; // echo reply
    writeU16(mem, reply + 2, 0);
    writeU16(mem, reply + 2, finish(sumBytes(mem, reply, total - ihl, 0)));
    writeU16(mem, ip + 2, 20 + total - ihl);
    this.out.toPort(port, net, off, 14 + 20 + total - ihl, now);
  }
}

/** Writes a 20-byte IPv4 header (no options, TTL 64, DF clear) with its checksum. */
export function writeIpv4Header(mem: Uint8Array, at: number, totalLen: number, protocol: number, src: number, dst: number): void {
  mem[at] = 0x45;
  mem[at + 1] = 0;
  writeU16(mem, at + 2, totalLen);
  writeU32(mem, at + 4, 0);
  mem[at + 8] = 64;
  mem[at + 9] = protocol;
  writeU16(mem, at + 10, 0);
  writeU32(mem, at + 12, src);
  writeU32(mem, at + 16, dst);
  writeU16(mem, at + 10, finish(sumBytes(mem, at, 20, 0)));
}
