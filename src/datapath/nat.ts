/**
 * The way out and the way in, one stage of the data path: a router's external gateway on a
 * provider network, held by one host (the gateway host the controller chose).
 *
 * Out: a packet a VM sends to its gateway for somewhere no router route leads is routed to
 * the gateway host (through the tunnel of the VM's network, unchanged, when the VM is
 * elsewhere), where `egress` translates its source: to the VM's floating address if it has
 * one (1:1, stateless, every protocol), else to the router's external address and a port
 * of it (source NAT: TCP, UDP and ICMP echo, through the connection table). It then leaves
 * on the external network to the next hop's MAC (ARP-resolved here).
 *
 * In: `fromUplink` sees the external network's frames from the physical network. It answers
 * ARP for the router's addresses (external and floating, with the router's external MAC),
 * learns the MACs of its neighbours there, and translates IPv4 sent to that MAC back: a
 * reply of a known connection, a packet to a floating address, or the first packet of a
 * port forward (which opens a connection; nothing else does). ICMP errors about a translated
 * packet are translated too (path MTU discovery and unreachables keep working). Translated
 * packets are routed into the VM's network as the router does (TTL, MACs).
 *
 * Not translated (counted): fragments under source NAT (no ports to see), protocols other
 * than TCP, UDP and ICMP echo under source NAT, ICMP errors a VM sends out, a VM reaching
 * its own floating address (hairpin).
 */
import { readMac, readU16, readU32, writeMac, writeU16, writeU32, formatIpv4 } from '../wire/bytes.js';
import { finish, sumBytes } from '../wire/checksum.js';
import { EtherType } from '../wire/ethernet.js';
import { Drop, type Counters } from './counters.js';
import type { Network, Output, Port } from './model.js';
import { ICMP, NatTable, TCP, TCP_ACK, TCP_SYN, UDP } from './nat-table.js';
import { ROUTER_MAC } from './router-mac.js';

const NONE = -1;
/** ARP requests for one address at most this often. */
const ARP_RETRY_MS = 1000;
/** The next hop's MAC is asked for again this often, so a changed one is noticed. */
const ARP_REFRESH_MS = 30_000;
/** Neighbours on the external network remembered at most (their MACs). */
const ARP_LIMIT = 1024;

export interface NatSpec {
  router: string;
  /** The external (provider) network. */
  network: string;
  /** The router's external address and its prefix length. */
  address: number;
  prefixLength: number;
  mac: number;
  /** The external subnet's gateway: where packets for beyond it go (0: none). */
  nextHop: number;
  floating: Array<{ outside: number; inside: number }>;
  forwards: Array<{ protocol: 'tcp' | 'udp'; port: number; inside: number; insidePort: number }>;
  /** Most connections at once. */
  limit: number;
}

/** One router's external gateway on this host. */
export class Nat {
  readonly table: NatTable;
  readonly arp = new Map<number, number>();
  /** Address -> when its MAC was last asked for. */
  readonly asked = new Map<number, number>();
  readonly mask: number;
  readonly floatingByInside = new Map<number, number>();
  readonly floatingByOutside = new Map<number, number>();
  /** (protocol << 16 | port) -> [inside address, inside port]. */
  readonly forwards = new Map<number, [number, number]>();
  /** Where translated packets coming in go: the router's subnets, longest prefix first. */
  inside: Array<{ prefix: number; mask: number; network: Network }> = [];
  lastRefresh = 0;
  announced = false;
  /** Packets translated each way. */
  translatedOut = 0;
  translatedIn = 0;

  /** `table`: the connections of the gateway this one replaces, kept (same address). */
  constructor(
    readonly spec: NatSpec,
    readonly network: Network,
    table?: NatTable,
  ) {
    this.table = table ?? new NatTable(spec.limit);
    this.mask = spec.prefixLength === 0 ? 0 : (0xffff_ffff << (32 - spec.prefixLength)) >>> 0;
    for (const f of spec.floating) {
      this.floatingByInside.set(f.inside, f.outside);
      this.floatingByOutside.set(f.outside, f.inside);
    }
    for (const f of spec.forwards) this.forwards.set(((f.protocol === 'tcp' ? TCP : UDP) << 16) | f.port, [f.inside, f.insidePort]);
  }

  /** Whether `ip` is one of the router's addresses on the external network. */
  owns(ip: number): boolean {
    return ip === this.spec.address || this.floatingByOutside.has(ip);
  }

  /** The uplink port its network leaves on (null while it has none). */
  uplink(): Port | null {
    const ports = this.network.ports;
    for (let i = 0; i < ports.length; i++) if (ports[i].uplink) return ports[i];
    return null;
  }
}

export class NatStage {
  constructor(private readonly out: Output) {}

  /** A packet routed to the outside (its IPv4 header checked by the router, TTL > 1), sent
   * from `from` (a port's index, or -(vtep + 1)) on the VM's network `net`. */
  egress(nat: Nat, net: Network, off: number, len: number, from: number, c: Counters, now: number): void {
    const mem = this.out.mem;
    const ip = off + 14;
    const ihl = (mem[ip] & 0x0f) * 4;
    const total = readU16(mem, ip + 2);
    const src = readU32(mem, ip + 12);
    const dst = readU32(mem, ip + 16);
    const proto = mem[ip + 9];
    const fragment = (readU16(mem, ip + 6) & 0x3fff) !== 0;
    const l4 = ip + ihl;
    const floating = nat.floatingByInside.get(src);
    if (floating !== undefined) {
      // 1:1: the address only, so fragments and every protocol pass.
      const first = (readU16(mem, ip + 6) & 0x1fff) === 0;
      rewriteAddress(mem, ip, l4, total - ihl, proto, first, 12, floating);
    } else {
      if (fragment) return c.drop(Drop['nat-unsupported']);
      let insidePort: number;
      let remotePort: number;
      let flags = 0;
      if (proto === TCP || proto === UDP) {
        if (total - ihl < (proto === TCP ? 20 : 8)) return c.drop(Drop.truncated);
        insidePort = readU16(mem, l4);
        remotePort = readU16(mem, l4 + 2);
        if (proto === TCP) flags = mem[l4 + 13];
      } else if (proto === ICMP) {
        if (total - ihl < 8) return c.drop(Drop.truncated);
        if (mem[l4] !== 8) return c.drop(Drop['nat-unsupported']); // only echo requests open
        insidePort = readU16(mem, l4 + 4);
        remotePort = 0;
      } else {
        return c.drop(Drop['nat-unsupported']);
      }
      let i = nat.table.findOut(proto, src, insidePort, dst, remotePort);
      if (i === NONE) {
        // A TCP connection opens with a SYN: a stray segment opens nothing.
        if (proto === TCP && (flags & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return c.drop(Drop['nat-no-mapping']);
        i = nat.table.openOut(proto, src, insidePort, dst, remotePort, nat.spec.address, now);
        if (i === NONE) return c.drop(Drop['nat-table-full']);
      }
      nat.table.touch(i, false, flags, now);
      const outsidePort = nat.table.outsidePort[i];
      rewriteAddress(mem, ip, l4, total - ihl, proto, true, 12, nat.spec.address);
      rewritePort(mem, l4, proto, proto === ICMP ? 4 : 0, outsidePort);
    }
    decrementTtl(mem, ip);
    if (this.out.tracer.active) {
      this.out.tracer.step('nat', 'pass', floating !== undefined ? `source ${formatIpv4(src)} -> floating ${formatIpv4(floating)}`
        : `source ${formatIpv4(src)} -> ${formatIpv4(nat.spec.address)}${proto === ICMP ? '' : `:${readU16(mem, l4)}`} (router ${nat.spec.router}, network ${nat.network.name})`);
    }
    const hop = ((dst ^ nat.spec.address) & nat.mask) === 0 || nat.spec.nextHop === 0 ? dst : nat.spec.nextHop;
    const mac = nat.arp.get(hop);
    if (mac === undefined) {
      this.ask(nat, hop, now);
      return c.drop(Drop['nat-arp-pending']);
    }
    writeMac(mem, off, mac);
    writeMac(mem, off + 6, nat.spec.mac);
    nat.translatedOut++;
    // Switched on the external network as a frame from `net`: `from` is a port there, so a
    // trunk carrying both networks is not where this one came from (no hairpin).
    this.out.forward(nat.network, off, len, from, c, now, net);
  }

  /**
   * A frame from the physical network on an external network with NATs: ARP is answered or
   * learned from, IPv4 to a NAT's MAC is translated in. Returns whether it was consumed.
   */
  fromUplink(nats: Nat[], port: Port, net: Network, off: number, len: number, c: Counters, now: number): boolean {
    const mem = this.out.mem;
    const type = readU16(mem, off + 12);
    if (type === EtherType.Arp) return this.arp(nats, port, net, off, len, now);
    if (type !== EtherType.Ipv4) return false;
    const dmac = readMac(mem, off);
    for (let n = 0; n < nats.length; n++) {
      if (nats[n].spec.mac === dmac) {
        this.ingress(nats[n], port, off, len, c, now);
        return true;
      }
    }
    return false;
  }

  private ingress(nat: Nat, port: Port, off: number, len: number, c: Counters, now: number): void {
    const mem = this.out.mem;
    const ip = off + 14;
    if (len < 14 + 20 || mem[ip] >>> 4 !== 4 || (mem[ip] & 0x0f) < 5) return c.drop(Drop.truncated);
    const ihl = (mem[ip] & 0x0f) * 4;
    const total = readU16(mem, ip + 2);
    if (len < 14 + ihl || total < ihl || total > len - 14 || finish(sumBytes(mem, ip, ihl, 0)) !== 0) return c.drop(Drop['bad-ip-header']);
    const src = readU32(mem, ip + 12);
    const dst = readU32(mem, ip + 16);
    const proto = mem[ip + 9];
    const l4 = ip + ihl;
    let inside = nat.floatingByOutside.get(dst);
    if (inside !== undefined) {
      rewriteAddress(mem, ip, l4, total - ihl, proto, (readU16(mem, ip + 6) & 0x1fff) === 0, 16, inside);
    } else if (dst === nat.spec.address) {
      if ((readU16(mem, ip + 6) & 0x3fff) !== 0) return c.drop(Drop['nat-unsupported']);
      if (proto === TCP || proto === UDP) {
        if (total - ihl < (proto === TCP ? 20 : 8)) return c.drop(Drop.truncated);
        const remotePort = readU16(mem, l4);
        const outsidePort = readU16(mem, l4 + 2);
        const flags = proto === TCP ? mem[l4 + 13] : 0;
        let i = nat.table.findIn(proto, dst, outsidePort, src, remotePort);
        if (i === NONE) {
          const fwd = nat.forwards.get((proto << 16) | outsidePort);
          if (fwd === undefined || (proto === TCP && (flags & (TCP_SYN | TCP_ACK)) !== TCP_SYN)) return c.drop(Drop['nat-no-mapping']);
          i = nat.table.openIn(proto, fwd[0], fwd[1], dst, outsidePort, src, remotePort, now);
          if (i === NONE) return c.drop(Drop['nat-table-full']);
        }
        nat.table.touch(i, true, flags, now);
        inside = nat.table.insideIp[i];
        rewriteAddress(mem, ip, l4, total - ihl, proto, true, 16, inside);
        rewritePort(mem, l4, proto, 2, nat.table.insidePort[i]);
      } else if (proto === ICMP && total - ihl >= 8 && mem[l4] === 0) {
        const i = nat.table.findIn(ICMP, dst, readU16(mem, l4 + 4), src, 0);
        if (i === NONE) return c.drop(Drop['nat-no-mapping']);
        nat.table.touch(i, true, 0, now);
        inside = nat.table.insideIp[i];
        rewriteAddress(mem, ip, l4, total - ihl, proto, true, 16, inside);
        rewritePort(mem, l4, ICMP, 4, nat.table.insidePort[i]);
      } else if (proto === ICMP && total - ihl >= 8 + 20 && (mem[l4] === 3 || mem[l4] === 11)) {
        inside = this.icmpErrorIn(nat, mem, ip, l4, total - ihl, now);
        if (inside === NONE) return c.drop(Drop['nat-no-mapping']);
      } else {
        return c.drop(Drop['nat-no-mapping']);
      }
    } else {
      return c.drop(Drop['nat-no-mapping']);
    }
    // Routed into the VM's network, as the router does.
    if (mem[ip + 8] <= 1) return c.drop(Drop['ttl-exceeded']);
    let target: Network | null = null;
    for (let k = 0; k < nat.inside.length; k++) {
      if (((inside & nat.inside[k].mask) >>> 0) === nat.inside[k].prefix) {
        target = nat.inside[k].network;
        break;
      }
    }
    if (target === null) return c.drop(Drop['no-route']);
    if (len - 14 > target.mtu) return c.drop(Drop['mtu-exceeded']);
    const mac = target.arp?.get(inside);
    if (mac === undefined) return c.drop(Drop['no-neighbor']);
    decrementTtl(mem, ip);
    writeMac(mem, off, mac);
    writeMac(mem, off + 6, ROUTER_MAC);
    nat.translatedIn++;
    this.out.forward(target, off, len, port.index, c, now, nat.network);
  }

  /**
   * An ICMP error about a packet this NAT sent out: the quoted packet's source (the router's
   * address and port) and the outer destination become the VM's again; the quoted header's
   * checksum is updated and the ICMP checksum computed anew. Returns the VM's address, or -1.
   */
  private icmpErrorIn(nat: Nat, mem: Uint8Array, ip: number, l4: number, icmpLen: number, now: number): number {
    const q = l4 + 8;
    const qihl = (mem[q] & 0x0f) * 4;
    if (mem[q] >>> 4 !== 4 || qihl < 20 || icmpLen < 8 + qihl + 8) return NONE;
    const qproto = mem[q + 9];
    const qsrc = readU32(mem, q + 12);
    const qdst = readU32(mem, q + 16);
    const ql4 = q + qihl;
    if (qsrc !== nat.spec.address) return NONE;
    let i: number;
    if (qproto === TCP || qproto === UDP) i = nat.table.findIn(qproto, qsrc, readU16(mem, ql4), qdst, readU16(mem, ql4 + 2));
    else if (qproto === ICMP && mem[ql4] === 8) i = nat.table.findIn(ICMP, qsrc, readU16(mem, ql4 + 4), qdst, 0);
    else return NONE;
    if (i === NONE) return NONE;
    nat.table.touch(i, true, 0, now);
    const inside = nat.table.insideIp[i];
    adjustChecksum32(mem, q + 10, qsrc, inside);
    writeU32(mem, q + 12, inside);
    writeU16(mem, qproto === ICMP ? ql4 + 4 : ql4, nat.table.insidePort[i]);
    adjustChecksum32(mem, ip + 10, readU32(mem, ip + 16), inside);
    writeU32(mem, ip + 16, inside);
    writeU16(mem, l4 + 2, 0);
    writeU16(mem, l4 + 2, finish(sumBytes(mem, l4, icmpLen, 0)));
    return inside;
  }

  /** ARP on the external network: answer for the NAT's addresses, learn the sender. */
  private arp(nats: Nat[], port: Port, net: Network, off: number, len: number, now: number): boolean {
    const mem = this.out.mem;
    const a = off + 14;
    if (len < 14 + 28 || readU32(mem, a) !== 0x0001_0800 || readU16(mem, a + 4) !== 0x0604) return false;
    const op = readU16(mem, a + 6);
    const senderMac = readMac(mem, a + 8);
    const senderIp = readU32(mem, a + 14);
    const targetIp = readU32(mem, a + 24);
    let answered = false;
    for (let n = 0; n < nats.length; n++) {
      const nat = nats[n];
      if (senderIp !== 0 && ((senderIp ^ nat.spec.address) & nat.mask) === 0 && !nat.owns(senderIp) && (nat.arp.has(senderIp) || nat.arp.size < ARP_LIMIT)) {
        nat.arp.set(senderIp, senderMac);
      }
      if (op === 1 && !answered && nat.owns(targetIp) && senderIp !== targetIp) {
        const r = this.out.scratch();
        mem.copyWithin(r, off + 6, off + 12);
        writeMac(mem, r + 6, nat.spec.mac);
        writeU16(mem, r + 12, EtherType.Arp);
        writeU32(mem, r + 14, 0x0001_0800);
        writeU16(mem, r + 18, 0x0604);
        writeU16(mem, r + 20, 2);
        writeMac(mem, r + 22, nat.spec.mac);
        writeU32(mem, r + 28, targetIp);
        mem.copyWithin(r + 32, a + 8, a + 18);
        this.out.toPort(port, net, r, 42, now);
        answered = true;
      }
    }
    return answered;
  }

  /** Asks the external network for `ip`'s MAC (at most once a second per address). */
  ask(nat: Nat, ip: number, now: number): void {
    const last = nat.asked.get(ip);
    if (last !== undefined && now - last < ARP_RETRY_MS) return;
    if (last === undefined && nat.asked.size >= ARP_LIMIT) nat.asked.clear();
    nat.asked.set(ip, now);
    this.sendArp(nat, 1, ip, now);
  }

  /** Gratuitous ARP for every address the NAT holds: the physical network learns where
   * they are now (after the gateway moved to this host, say). */
  announce(nat: Nat, now: number): void {
    this.sendArp(nat, 1, nat.spec.address, now);
    for (const f of nat.floatingByOutside.keys()) this.sendArp(nat, 1, f, now, f);
    nat.announced = true;
  }

  /** Once a second: connections expire, the next hop's MAC is asked for now and then. */
  tick(nat: Nat, now: number): void {
    nat.table.expire(now);
    if (!nat.announced) this.announce(nat, now);
    if (now - nat.lastRefresh >= ARP_REFRESH_MS && nat.spec.nextHop !== 0) {
      nat.lastRefresh = now;
      this.sendArp(nat, 1, nat.spec.nextHop, now);
    }
  }

  private sendArp(nat: Nat, op: number, target: number, now: number, sender = nat.spec.address): void {
    const uplink = nat.uplink();
    if (uplink === null) return;
    const mem = this.out.mem;
    const r = this.out.scratch();
    writeMac(mem, r, 0xffff_ffff_ffff);
    writeMac(mem, r + 6, nat.spec.mac);
    writeU16(mem, r + 12, EtherType.Arp);
    writeU32(mem, r + 14, 0x0001_0800);
    writeU16(mem, r + 18, 0x0604);
    writeU16(mem, r + 20, op);
    writeMac(mem, r + 22, nat.spec.mac);
    writeU32(mem, r + 28, sender);
    writeMac(mem, r + 32, 0);
    writeU32(mem, r + 38, target);
    this.out.toPort(uplink, nat.network, r, 42, now);
  }
}

/**
 * Replaces the source (at = 12) or destination (at = 16) address of the IPv4 packet at `ip`,
 * updating the header checksum and, in the first fragment, the TCP or UDP checksum (its
 * pseudo-header holds the address) incrementally (RFC 1624).
 */
function rewriteAddress(mem: Uint8Array, ip: number, l4: number, l4Len: number, proto: number, first: boolean, at: number, address: number): void {
  const old = readU32(mem, ip + at);
  adjustChecksum32(mem, ip + 10, old, address);
  if (first && proto === TCP && l4Len >= 20) adjustChecksum32(mem, l4 + 16, old, address);
  if (first && proto === UDP && l4Len >= 8 && readU16(mem, l4 + 6) !== 0) {
    adjustChecksum32(mem, l4 + 6, old, address);
    if (readU16(mem, l4 + 6) === 0) writeU16(mem, l4 + 6, 0xffff);
  }
  writeU32(mem, ip + at, address);
}

/** Replaces a port (TCP/UDP at `at` 0 or 2) or an ICMP echo identifier (at 4). */
function rewritePort(mem: Uint8Array, l4: number, proto: number, at: number, value: number): void {
  const old = readU16(mem, l4 + at);
  const sumAt = proto === TCP ? l4 + 16 : proto === UDP ? l4 + 6 : l4 + 2;
  if (proto === UDP && readU16(mem, sumAt) === 0) {
    writeU16(mem, l4 + at, value);
    return;
  }
  adjustChecksum16(mem, sumAt, old, value);
  if (proto === UDP && readU16(mem, sumAt) === 0) writeU16(mem, sumAt, 0xffff);
  writeU16(mem, l4 + at, value);
}

function decrementTtl(mem: Uint8Array, ip: number): void {
  const before = readU16(mem, ip + 8);
  mem[ip + 8]--;
  adjustChecksum16(mem, ip + 10, before, readU16(mem, ip + 8));
}

/** RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). */
function adjustChecksum16(mem: Uint8Array, at: number, old: number, value: number): void {
  let sum = (~readU16(mem, at) & 0xffff) + (~old & 0xffff) + value;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  writeU16(mem, at, ~sum & 0xffff);
}

function adjustChecksum32(mem: Uint8Array, at: number, old: number, value: number): void {
  adjustChecksum16(mem, at, old >>> 16, value >>> 16);
  adjustChecksum16(mem, at, old & 0xffff, value & 0xffff);
}
