/**
 * A data path under generated input, and the rules every outcome must obey. Shared by the
 * bounded fuzz test in `npm test` (test/datapath-fuzz.test.ts) and `npm run bench:fuzz`,
 * which runs millions of cases.
 *
 * The host under test has every stage a frame can meet:
 * - blue (VXLAN, VNI 100, 10.0.0.0/24, fd00:1::/64) and red (Geneve, VNI 200, 10.1.0.0/24,
 *   fd00:2::/64), joined by a router, and ext, a provider network on the host's uplink
 *   where the router's external gateway (source NAT, a floating address, two port forwards)
 *   lives; blue goes out through it;
 * - an access port on blue (blue1, with port security: its MAC, 10.0.0.1 and fd00:1::1),
 *   one on red (red1, with a security group: tcp/80 and ICMP in, everything out), a trunk
 *   t1 carrying all three (VLAN 10 blue, 20 red, 30 ext; no native network), and the uplink
 *   (ext untagged);
 * - one remote host H2 sharing blue and red, with a VM on each whose MAC the controller
 *   pushed; the local VMs' MACs are pinned; ARP and ND are answered for every VM and router
 *   solicitations on blue. What H2 receives is kept, not run.
 *
 * The inputs are mostly well-formed frames from the VMs' own addresses (IPv4 and IPv6 with
 * correct lengths and checksums; TCP, UDP, ICMP, ICMPv6 neighbour discovery, ARP; tags where
 * the port wants them) to each other, to the router, to the outside and from it, so that
 * they get past the checks of what arrived and reach port security, the groups, routing and
 * NAT; then a fraction are spoiled: cut, wrong lengths, flipped bits, wrong tags. Inputs
 * also come as datagrams from H2 (and from a host that is no remote).
 *
 * The rules, for every single input:
 * - no exception;
 * - an outcome: at least one frame or datagram leaves, or a drop is counted;
 * - where it came in (its port; for a datagram, the underlay and its tunnel) it is counted
 *   under one reason at most: or two, the router's and the refusal by the sender's own
 *   groups of the ICMP error the router sent it; anywhere else only as refused on delivery
 *   (groups, the output full);
 * - counted where it came in, what leaves is only the host's own answer: an ICMP error back
 *   to the sender, or the NAT's ARP request for its next hop; a port that refused it on
 *   delivery gets no copy;
 * - nothing leaves where its network, VLAN and MTU exclude it: a port gets only its own
 *   networks' frames (a trunk tagged with the network's VLAN ID, the uplink untagged, an
 *   access port untagged), no larger than the network's MTU; the underlay only frames that
 *   came from a port, each in its network's encapsulation and VNI. A frame reaches another
 *   network only when it was sent to the router (or the NAT) and leaves from it, with a
 *   valid IPv4 header checksum.
 *
 * `summary()` says how far the inputs got (delivered, routed, translated, the drops by
 * reason): the test checks that most of them pass the malformed check and reach the
 * stages after it, so that a generator gone back to garbage fails.
 */
import fc from 'fast-check';
import { DROP_REASONS, type DropReason } from '../../src/datapath/counters.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { TableBuilder } from '../../src/datapath/tables.js';
import { MemoryFabric, type MemoryPort, type MemoryUnderlay } from '../../src/datapath/memory.js';
import { PortSecurity } from '../../src/datapath/port-security.js';
import { ROUTER_MAC } from '../../src/datapath/router-mac.js';
import type { FirewallRule } from '../../src/datapath/firewall.js';
import { formatIpv6, parseIpv4, parseIpv6, parseMac, readMac, readU16, readU24, writeMac, writeU16 } from '../../src/wire/bytes.js';
import { finish, sumBytes } from '../../src/wire/checksum.js';
import * as compose from '../../src/wire/compose.js';
import type { VlanSpec } from '../../src/wire/compose.js';
import { EtherType } from '../../src/wire/ethernet.js';
import { Icmpv4Repr } from '../../src/wire/icmpv4.js';
import { Icmpv6Repr } from '../../src/wire/icmpv6.js';
import { TcpRepr } from '../../src/wire/tcp.js';
import { GENEVE_PORT, VXLAN_PORT } from '../../src/wire/udp.js';

export const H1 = parseIpv4('192.0.2.1');
export const H2 = parseIpv4('192.0.2.2');
export const H3 = parseIpv4('192.0.2.3');
const mac = (n: number) => parseMac(`02:00:00:00:00:${n.toString(16).padStart(2, '0')}`);
const NAT_MAC = parseMac('02:57:47:00:00:01');
const UPSTREAM_MAC = parseMac('02:aa:00:00:00:01');
const BROADCAST = 0xffff_ffff_ffff;
const EXTERNAL = parseIpv4('203.0.113.5');
const FLOATING = parseIpv4('203.0.113.9');
const UPSTREAM = parseIpv4('203.0.113.1');
/** A host on the Internet, beyond the upstream router. */
const REMOTE = parseIpv4('198.51.100.7');

type Net = 'blue' | 'red' | 'ext';
type PortName = 'blue1' | 'red1' | 't1' | 'uplink';
const PORTS: readonly PortName[] = ['blue1', 'red1', 't1', 'uplink'];
const VLANS: Record<number, Net> = { 10: 'blue', 20: 'red', 30: 'ext' };
const VID: Record<Net, number> = { blue: 10, red: 20, ext: 30 };

/** `arpIp`: the address it answers ARP for, when not `ip` (the upstream router, which
 * speaks for the Internet host `ip` behind it). */
interface Station { mac: number; ip: number; ip6: Uint8Array; arpIp?: number }
const station = (n: number, ip: string, ip6: string): Station => ({ mac: mac(n), ip: parseIpv4(ip), ip6: parseIpv6(ip6) });
/** Each network's VMs (or neighbours, on ext), and its router address. Which one is where
 * is in SOURCES. */
const STATIONS: Record<Net, Station[]> = {
  blue: [station(1, '10.0.0.1', 'fd00:1::1'), station(2, '10.0.0.2', 'fd00:1::2'), station(5, '10.0.0.5', 'fd00:1::5')],
  red: [station(3, '10.1.0.1', 'fd00:2::1'), station(4, '10.1.0.2', 'fd00:2::2'), station(6, '10.1.0.3', 'fd00:2::3')],
  ext: [{ mac: UPSTREAM_MAC, ip: REMOTE, ip6: parseIpv6('2001:db8::1'), arpIp: UPSTREAM }, station(7, '203.0.113.20', '2001:db8::20')],
};
const GATEWAY: Record<Net, number> = { blue: parseIpv4('10.0.0.254'), red: parseIpv4('10.1.0.254'), ext: EXTERNAL };
/** In a subnet, but no VM's. */
const NOBODY: Record<Net, number> = { blue: parseIpv4('10.0.0.77'), red: parseIpv4('10.1.0.77'), ext: parseIpv4('203.0.113.77') };

/** Where an input comes in, the network it is on there, and the station it speaks for. */
const SOURCES = {
  blue1: { port: 'blue1', net: 'blue', own: STATIONS.blue[0] },
  red1: { port: 'red1', net: 'red', own: STATIONS.red[0] },
  't1.10': { port: 't1', net: 'blue', own: STATIONS.blue[2] },
  't1.20': { port: 't1', net: 'red', own: STATIONS.red[1] },
  't1.30': { port: 't1', net: 'ext', own: STATIONS.ext[1] },
  uplink: { port: 'uplink', net: 'ext', own: STATIONS.ext[0] },
  'h2.blue': { from: H2, net: 'blue', own: STATIONS.blue[1] },
  'h2.red': { from: H2, net: 'red', own: STATIONS.red[2] },
  'h3.blue': { from: H3, net: 'blue', own: STATIONS.blue[1] },
} as const satisfies Record<string, { net: Net; own: Station } & ({ port: PortName } | { from: number })>;
type SourceName = keyof typeof SOURCES;

export type Input =
  | { kind: 'port'; port: PortName; frame: Uint8Array }
  | { kind: 'datagram'; socket: 'vxlan' | 'geneve'; from: number; data: Uint8Array };

interface Output {
  where: PortName | 'vxlan' | 'geneve';
  bytes: Uint8Array;
}

/** The reasons a frame is counted under where it is delivered, not where it came in. */
const DELIVERY: ReadonlySet<string> = new Set<DropReason>(['sg-refused', 'sg-revoked', 'conntrack-full', 'listener-report', 'malformed', 'tx-busy', 'tx-error']);
/** The router's drops that come with an ICMP error to the sender. */
const ROUTER_ERRORS: ReadonlySet<string> = new Set<DropReason>(['no-route', 'ttl-exceeded', 'mtu-exceeded', 'no-neighbor']);
/** What is checked before and in the parse of what arrived (`inside`/`outside`, flow.ts):
 * an input dropped for one of these did not get to port security, groups, routing or NAT. */
const BEFORE_PARSE: ReadonlySet<string> = new Set<DropReason>(['runt', 'oversize', 'invalid-src-mac', 'src-mac-pinned', 'vlan-not-allowed', 'mtu-exceeded', 'malformed',
  'truncated', 'datagram-oversize', 'vxlan-bad-flags', 'geneve-bad-version', 'geneve-oam', 'geneve-bad-protocol', 'geneve-critical-option', 'unknown-vni', 'wrong-encapsulation', 'unknown-vtep']);

/** How far the inputs got. */
export interface FuzzSummary {
  inputs: number;
  /** Inputs of which some frame or datagram left. */
  delivered: number;
  /** Inputs not dropped before or in the parse of what arrived. */
  pastParse: number;
  /** Inputs of which a frame left on another network (routed or translated). */
  crossed: number;
  /** Drops by reason, wherever counted. */
  drops: Partial<Record<DropReason, number>>;
  translatedOut: number;
  translatedIn: number;
}

type DropCounts = Map<string, Partial<Record<DropReason, number>>>;

export class FuzzHost {
  private readonly fabric = new MemoryFabric();
  private readonly dp = new Datapath();
  private readonly ports: Record<PortName, MemoryPort>;
  private readonly own: Record<'vxlan' | 'geneve', MemoryUnderlay>;
  private readonly remote: Record<'vxlan' | 'geneve', MemoryUnderlay>;
  private readonly mtu: Record<Net, number>;
  private now = 1000;
  /** The drops after the last input: the next one's before, unless time passed between. */
  private last: DropCounts | null = null;
  private readonly tally: FuzzSummary = { inputs: 0, delivered: 0, pastParse: 0, crossed: 0, drops: {}, translatedOut: 0, translatedIn: 0 };

  constructor() {
    const { fabric, dp } = this;
    const clock = () => this.now;
    this.own = { vxlan: fabric.underlay(H1, VXLAN_PORT), geneve: fabric.underlay(H1, GENEVE_PORT) };
    // H2's sockets only collect what is sent to them.
    this.remote = { vxlan: fabric.underlay(H2, VXLAN_PORT), geneve: fabric.underlay(H2, GENEVE_PORT) };
    dp.attachUnderlay(this.own.vxlan, H1, VXLAN_PORT, 'vxlan');
    dp.attachUnderlay(this.own.geneve, H1, GENEVE_PORT, 'geneve');
    dp.startUnderlay(clock);
    dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
    dp.addNetwork({ name: 'red', vni: 200, encapsulation: 'geneve' });
    dp.addNetwork({ name: 'ext', vni: 300, encapsulation: 'vxlan', provider: true });
    this.ports = { blue1: fabric.port('blue1'), red1: fabric.port('red1'), t1: fabric.port('t1'), uplink: fabric.port('uplink') };
    dp.addPort({ name: 'blue1', backend: this.ports.blue1, mode: 'access', network: 'blue' });
    dp.addPort({ name: 'red1', backend: this.ports.red1, mode: 'access', network: 'red' });
    dp.addPort({ name: 't1', backend: this.ports.t1, mode: 'trunk', vlans: { 10: 'blue', 20: 'red', 30: 'ext' } });
    dp.addPort({ name: 'uplink', backend: this.ports.uplink, mode: 'trunk', vlans: {}, nativeNetwork: 'ext', uplink: true });
    for (const p of PORTS) dp.startPort(p, clock);
    this.mtu = { blue: dp.networkMtu('blue'), red: dp.networkMtu('red'), ext: dp.networkMtu('ext') };

    // What the controller would say: where each VM is, and the router.
    const [b, r] = [STATIONS.blue, STATIONS.red];
    const tables = {
      blue: new TableBuilder().members([{ address: H2, port: VXLAN_PORT }]).pinLocal(b[0].mac, 'blue1').pinLocal(b[2].mac, 't1')
        .gateways(['10.0.0.254/24']).routes([{ cidr: '10.1.0.0/24', network: 'red' }, { cidr: 'fd00:2::/64', network: 'red' }])
        .ipv6({ prefix: 'fd00:1::/64', dns: [], routed: true }),
      red: new TableBuilder().members([{ address: H2, port: GENEVE_PORT }]).pinLocal(r[0].mac, 'red1').pinLocal(r[1].mac, 't1')
        .gateways(['10.1.0.254/24']).routes([{ cidr: '10.0.0.0/24', network: 'blue' }, { cidr: 'fd00:1::/64', network: 'blue' }]),
    };
    tables.blue.pinRemote(b[1].mac, H2, VXLAN_PORT);
    tables.red.pinRemote(r[2].mac, H2, GENEVE_PORT);
    for (const net of ['blue', 'red'] as const) {
      for (const s of STATIONS[net]) tables[net].arp(s.ip, s.mac).ndp(formatIpv6(s.ip6), s.mac);
      tables[net].arp(GATEWAY[net], ROUTER_MAC).ndp('fe80::57:46ff:feff:fffe', ROUTER_MAC);
    }
    dp.setTables('red', tables.red.build());
    dp.setNat('r1', {
      router: 'r1', network: 'ext', address: EXTERNAL, prefixLength: 24, mac: NAT_MAC, nextHop: UPSTREAM,
      floating: [{ outside: FLOATING, inside: b[0].ip }],
      forwards: [{ protocol: 'udp', port: 53, inside: b[1].ip, insidePort: 5353 }, { protocol: 'tcp', port: 8080, inside: b[2].ip, insidePort: 80 }],
      limit: 256,
    }, [{ cidr: '10.0.0.0/24', network: 'blue' }]);
    tables.blue.external({ router: 'r1' });
    dp.setTables('blue', tables.blue.build());
    dp.setPortSecurity('blue1', new PortSecurity([b[0].mac], ['10.0.0.1', 'fd00:1::1']));
    const rule = (direction: 'ingress' | 'egress', ipv6: boolean, protocol: number, ports = -1): FirewallRule =>
      ({ direction, ipv6, protocol, portMin: ports, portMax: ports, icmpType: -1, icmpCode: -1, remote: null, remoteSet: null });
    dp.setPortFirewall('red1', [rule('ingress', false, 6, 80), rule('ingress', true, 6, 80), rule('ingress', false, 1), rule('ingress', true, 58),
      rule('egress', false, -1), rule('egress', true, -1)], 1024);
    // The upstream router answers the NAT's ARP, so that translated packets can leave.
    this.ports.uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
    this.settle();
  }

  /** Runs what waits and forgets what left (what the host sends of its own accord). */
  private settle(): void {
    this.fabric.run(100, 1000);
    for (const p of PORTS) this.ports[p].take();
    for (const s of ['vxlan', 'geneve'] as const) this.remote[s].inbox.splice(0);
  }

  /** Every element's drops by reason: ports by name, underlays and tunnels by theirs. */
  private dropCounts(): DropCounts {
    const s = this.dp.stats(String);
    const m: DropCounts = new Map();
    for (const p of s.ports) m.set(`port ${p.name}`, p.drops);
    for (const u of s.underlays) m.set(`underlay ${u.encapsulation}`, u.drops);
    for (const t of s.tunnels) m.set(`tunnel ${t.remote}`, t.drops);
    return m;
  }

  /** Feeds one input; returns the rules it broke (none, if all is well). */
  check(input: Input): string[] {
    // Time passes: a millisecond an input, and every 256 inputs a minute, with the aging
    // (learned MACs, connections, the NAT's ARP) a host does every second or so.
    this.now += 1;
    if (++this.tally.inputs % 256 === 0) {
      this.now += 60_000;
      this.dp.age(this.now);
      this.settle();
      this.last = null;
    }
    const before = this.last ?? this.dropCounts();
    if (input.kind === 'port') this.ports[input.port].send(input.frame);
    else this.own[input.socket].inject(input.data, input.from, 40000);
    this.fabric.run(100, 1000);
    const after = this.dropCounts();
    this.last = after;
    const outputs: Output[] = [];
    for (const p of PORTS) for (const bytes of this.ports[p].take()) outputs.push({ where: p, bytes });
    for (const s of ['vxlan', 'geneve'] as const) {
      for (const d of this.remote[s].inbox.splice(0)) outputs.push({ where: s, bytes: d.data });
    }
    // Where it came in, and elsewhere.
    const ingress = (key: string) => (input.kind === 'port' ? key === `port ${input.port}` : !key.startsWith('port '));
    const atIngress: string[] = [];
    const elsewhere: string[] = [];
    /** The ports that refused it on delivery. */
    const refusedAt = new Set<string>();
    for (const [key, drops] of after) {
      const was = before.get(key) ?? {};
      for (const r of DROP_REASONS) {
        const n = (drops[r] ?? 0) - (was[r] ?? 0);
        for (let i = 0; i < n; i++) (ingress(key) ? atIngress : elsewhere).push(r);
        if (n > 0 && DELIVERY.has(r) && key.startsWith('port ')) refusedAt.add(key.slice(5));
      }
    }
    const problems = violations(input, atIngress, elsewhere, outputs, this.mtu);
    for (const o of outputs) if (refusedAt.has(o.where)) problems.push(`counted as refused on delivery to ${o.where}, yet a copy left there`);
    this.count(input, atIngress, elsewhere, outputs);
    return problems;
  }

  private count(input: Input, atIngress: string[], elsewhere: string[], outputs: Output[]): void {
    const t = this.tally;
    for (const r of [...atIngress, ...elsewhere]) t.drops[r as DropReason] = (t.drops[r as DropReason] ?? 0) + 1;
    if (outputs.length > 0) t.delivered++;
    if (!atIngress.some((r) => BEFORE_PARSE.has(r))) t.pastParse++;
    const from = networkOf(input);
    if (outputs.some((o) => { const n = outputNetwork(o); return n !== null && n !== from; })) t.crossed++;
  }

  summary(): FuzzSummary {
    const nat = this.dp.stats(String).nats[0];
    return { ...this.tally, drops: { ...this.tally.drops }, translatedOut: nat.translatedOut, translatedIn: nat.translatedIn };
  }
}

/** The inner frame of an input (a datagram's, after its encapsulation header), if whole enough. */
function innerFrame(input: Input): Uint8Array | null {
  if (input.kind === 'port') return input.frame;
  const d = input.data;
  const header = input.socket === 'vxlan' ? 8 : d.length >= 8 ? 8 + (d[0] & 0x3f) * 4 : 8;
  return d.length >= header + 14 ? d.subarray(header) : null;
}

/** The network an input belongs to, if it is to be forwarded at all. */
function networkOf(input: Input): Net | null {
  if (input.kind === 'port') {
    if (input.port === 'blue1') return 'blue';
    if (input.port === 'red1') return 'red';
    if (input.port === 'uplink') return 'ext';
    const f = input.frame;
    if (f.length < 18 || readU16(f, 12) !== EtherType.Vlan) return null;
    return VLANS[readU16(f, 14) & 0x0fff] ?? null;
  }
  if (input.data.length < 8) return null;
  const vni = readU24(input.data, 4);
  if (input.socket === 'vxlan' && vni === 100) return 'blue';
  if (input.socket === 'geneve' && vni === 200) return 'red';
  return null;
}

/** The network an output is on, by where it left and its tag or VNI (null: none of ours). */
function outputNetwork(o: Output): Net | null {
  const b = o.bytes;
  if (o.where === 'blue1') return 'blue';
  if (o.where === 'red1') return 'red';
  if (o.where === 'uplink') return 'ext';
  if (o.where === 't1') return b.length >= 18 && readU16(b, 12) === EtherType.Vlan ? VLANS[readU16(b, 14) & 0x0fff] ?? null : null;
  if (b.length < 8) return null;
  const vni = readU24(b, 4);
  return o.where === 'vxlan' && vni === 100 ? 'blue' : o.where === 'geneve' && vni === 200 ? 'red' : null;
}

/** An output's Ethernet frame, without its encapsulation header or its VLAN tag. */
function untagged(o: Output): Uint8Array {
  if (o.where === 'vxlan' || o.where === 'geneve') return o.bytes.subarray(o.where === 'vxlan' ? 8 : 8 + (o.bytes[0] & 0x3f) * 4);
  if (o.where === 't1' && o.bytes.length >= 18) {
    const f = new Uint8Array(o.bytes.length - 4);
    f.set(o.bytes.subarray(0, 12));
    f.set(o.bytes.subarray(16), 12);
    return f;
  }
  return o.bytes;
}

const isHostMac = (m: number) => m === ROUTER_MAC || m === NAT_MAC;

/** What the host sends of its own when it drops an input: an ICMP error back to the sender's
 * port from the router, or the NAT's ARP request on the uplink. */
function isOwnAnswer(input: Input, o: Output): boolean {
  const f = untagged(o);
  if (f.length < 14) return false;
  const type = readU16(f, 12);
  if (input.kind === 'port' && o.where === input.port && readMac(f, 6) === ROUTER_MAC) {
    return (type === EtherType.Ipv4 && f.length >= 34 && f[23] === 1) || (type === EtherType.Ipv6 && f.length >= 54 && f[20] === 58);
  }
  return o.where === 'uplink' && readMac(f, 6) === NAT_MAC && type === EtherType.Arp;
}

function violations(input: Input, atIngress: string[], elsewhere: string[], outputs: Output[], mtu: Record<Net, number>): string[] {
  const problems: string[] = [];
  if (atIngress.length === 0 && elsewhere.length === 0 && outputs.length === 0) problems.push('neither forwarded nor counted');
  const icmpRefused = atIngress.length === 2 && atIngress.some((r) => ROUTER_ERRORS.has(r)) && atIngress.some((r) => DELIVERY.has(r));
  if (atIngress.length > 1 && !icmpRefused) problems.push(`counted where it came in under ${atIngress.length} reasons: ${atIngress.join(', ')}`);
  for (const r of elsewhere) if (!DELIVERY.has(r)) problems.push(`counted away from where it came in as ${r}`);
  if (atIngress.length > 0) {
    const other = outputs.filter((o) => !isOwnAnswer(input, o));
    if (other.length > 0) problems.push(`counted as dropped (${atIngress.join(', ')}), yet ${other.length} copies left (on ${other.map((o) => o.where).join(', ')})`);
  }
  const net = networkOf(input);
  const inner = innerFrame(input);
  const toRouter = inner !== null && isHostMac(readMac(inner, 0));
  for (const o of outputs) {
    if (net === null) {
      problems.push(`an input of no network left on ${o.where}`);
      continue;
    }
    const on = outputNetwork(o);
    const f = untagged(o);
    if (on === null) {
      problems.push(`a ${net} frame left on ${o.where} with no network's ${o.where === 't1' ? 'VLAN' : 'VNI'}`);
      continue;
    }
    if (on !== net) {
      if (!toRouter) problems.push(`a ${net} frame not sent to the router left on ${on} (${o.where})`);
      if (f.length < 14 || !isHostMac(readMac(f, 6))) problems.push(`a ${net} frame left on ${on} (${o.where}) not from the router`);
      else if (readU16(f, 12) === EtherType.Ipv4 && (f.length < 34 || finish(sumBytes(f, 14, (f[14] & 0x0f) * 4)) !== 0)) problems.push(`routed from ${net} to ${on} with a bad IPv4 header checksum`);
    }
    if (f.length - 14 > mtu[on]) problems.push(`a ${f.length}-byte frame left on ${on} (${o.where}), over its MTU ${mtu[on]}`);
    if (o.where === 'blue1' || o.where === 'red1' || o.where === 'uplink') {
      if (o.bytes.length >= 14 && (readU16(o.bytes, 12) === EtherType.Vlan || readU16(o.bytes, 12) === EtherType.QinQ)) problems.push(`a tagged frame left on ${o.where}`);
    } else if (o.where === 'vxlan' || o.where === 'geneve') {
      if (input.kind === 'datagram') problems.push('a datagram from the underlay went back to the underlay');
      if (on === 'ext') problems.push('the provider network left through a tunnel');
    }
  }
  return problems;
}

// ---- generated inputs ------------------------------------------------------------------

/** What a VM (or a host behind the uplink, or H2) might send, before it is spoiled. */
interface Plan {
  source: SourceName;
  /** Where it goes, as a stack addresses it (MAC and IP agreeing): a peer on its network,
   * one on another through the router, the outside, the router itself, everyone, an
   * address no VM has behind the router; or `mixed`, any MAC with any address. */
  dest: 'peer' | 'routed' | 'outside' | 'gateway' | 'broadcast' | 'nobody' | 'mixed';
  dstMac: { to: 'router' | 'nat' | 'broadcast' | 'multicast' | 'station' | 'random'; n: number };
  srcMac: { as: 'own' | 'station' | 'router' | 'group' | 'zero' | 'random'; n: number };
  kind: 'tcp' | 'udp' | 'icmp' | 'icmp-error' | 'ip-other' | 'tcp6' | 'udp6' | 'icmp6' | 'ns' | 'na' | 'rs' | 'ra' | 'mld' | 'arp' | 'arp-reply' | 'other-type';
  srcIp: { as: 'own' | 'station' | 'zero' | 'random'; n: number };
  dstIp: { to: 'station' | 'gateway' | 'other-net' | 'remote' | 'external' | 'floating' | 'nobody' | 'broadcast' | 'random'; n: number };
  sport: number;
  dport: number;
  tcpFlags: number;
  ttl: number;
  /** 0: whole; 1: a first fragment (MF); 2: a later one. */
  fragment: 0 | 1 | 2;
  /** IPv4 option bytes (a multiple of 4). */
  options: number;
  payload: number;
  /** Padded to the Ethernet minimum of 60 bytes, as a NIC sends it. */
  pad: boolean;
  tag: 'as-is' | 'none' | 'wrong-vid' | 'double' | 'tpid-9100' | 'extra';
  spoil: { how: 'none' | 'cut' | 'ip-length' | 'l4-length' | 'flip' | 'ihl' | 'ip-checksum'; at: number; value: number };
  /** For a datagram: the VNI (else its network's), bytes of the header changed, a cut. */
  vni: number | null;
  headerFlips: Array<[number, number]>;
  headerCut: number | null;
}

const n8 = fc.integer({ min: 0, max: 255 });
const portNumber = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(80, 53, 443, 8080, 5353, 40000, 68, 67, 547) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 65535 }) });

const plan: fc.Arbitrary<Plan> = fc.record({
  source: fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom<SourceName>('blue1', 'red1', 'uplink') },
    { weight: 3, arbitrary: fc.constantFrom<SourceName>('t1.10', 't1.20', 't1.30') },
    { weight: 2, arbitrary: fc.constantFrom<SourceName>('h2.blue', 'h2.red', 'h2.blue', 'h2.red', 'h2.blue', 'h2.red', 'h3.blue') },
  ),
  dest: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('peer' as const, 'routed' as const, 'outside' as const) },
    { weight: 1, arbitrary: fc.constantFrom('gateway' as const, 'broadcast' as const, 'nobody' as const) },
    { weight: 2, arbitrary: fc.constant('mixed' as const) },
  ),
  dstMac: fc.record({
    to: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('router' as const, 'station' as const) },
      { weight: 1, arbitrary: fc.constantFrom('nat' as const, 'broadcast' as const, 'multicast' as const, 'random' as const) },
    ),
    n: n8,
  }),
  srcMac: fc.record({
    as: fc.oneof({ weight: 12, arbitrary: fc.constant('own' as const) }, { weight: 1, arbitrary: fc.constantFrom('station' as const, 'router' as const, 'group' as const, 'zero' as const, 'random' as const) }),
    n: n8,
  }),
  kind: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('tcp' as const, 'udp' as const, 'icmp' as const) },
    { weight: 1, arbitrary: fc.constantFrom('icmp-error' as const, 'ip-other' as const) },
    { weight: 3, arbitrary: fc.constantFrom('tcp6' as const, 'udp6' as const, 'icmp6' as const) },
    { weight: 2, arbitrary: fc.constantFrom('ns' as const, 'na' as const, 'rs' as const, 'ra' as const, 'mld' as const) },
    { weight: 3, arbitrary: fc.constantFrom('arp' as const, 'arp-reply' as const) },
    { weight: 1, arbitrary: fc.constant('other-type' as const) },
  ),
  srcIp: fc.record({
    as: fc.oneof({ weight: 12, arbitrary: fc.constant('own' as const) }, { weight: 1, arbitrary: fc.constantFrom('station' as const, 'zero' as const, 'random' as const) }),
    n: n8,
  }),
  dstIp: fc.record({
    to: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('station' as const, 'other-net' as const, 'remote' as const) },
      { weight: 1, arbitrary: fc.constantFrom('gateway' as const, 'external' as const, 'floating' as const, 'nobody' as const, 'broadcast' as const, 'random' as const) },
    ),
    n: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  }),
  sport: portNumber,
  dport: portNumber,
  tcpFlags: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0x02, 0x12, 0x10, 0x18, 0x11, 0x04) }, { weight: 1, arbitrary: n8 }),
  ttl: fc.oneof({ weight: 8, arbitrary: fc.constant(64) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 255) }),
  fragment: fc.oneof({ weight: 10, arbitrary: fc.constant(0 as const) }, { weight: 1, arbitrary: fc.constantFrom(1 as const, 2 as const) }),
  options: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(4, 8, 40) }),
  payload: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 1380, max: 1500 }) }),
  pad: fc.boolean(),
  tag: fc.oneof({ weight: 16, arbitrary: fc.constant('as-is' as const) }, { weight: 1, arbitrary: fc.constantFrom('none' as const, 'wrong-vid' as const, 'double' as const, 'tpid-9100' as const, 'extra' as const) }),
  spoil: fc.record({
    how: fc.oneof({ weight: 7, arbitrary: fc.constant('none' as const) }, { weight: 1, arbitrary: fc.constantFrom('cut' as const, 'ip-length' as const, 'l4-length' as const, 'flip' as const, 'ihl' as const, 'ip-checksum' as const) }),
    at: fc.integer({ min: 0, max: 2 ** 16 - 1 }),
    value: fc.integer({ min: 0, max: 2 ** 16 - 1 }),
  }),
  // (fc.option's freq is how often it is null: 1 in freq.)
  vni: fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(100, 200, 300, 999, 0) }),
  headerFlips: fc.oneof({ weight: 12, arbitrary: fc.constant([] as Array<[number, number]>) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), n8), { minLength: 1, maxLength: 2 }) }),
  headerCut: fc.oneof({ weight: 20, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }) }),
});

/** The station `n` of `net` (mod how many it has). */
const pick = <T>(list: readonly T[], n: number): T => list[n % list.length];
const OTHER: Record<Net, Net> = { blue: 'red', red: 'blue', ext: 'blue' };
/** The stations of `net` other than `own`. */
const peers = (net: Net, own: Station) => STATIONS[net].filter((s) => s !== own);

/** A plan's destination MAC and address choices, as `dest` says (or as drawn, if mixed). */
function destination(p: Plan): Pick<Plan, 'dstMac' | 'dstIp'> {
  const n = p.dstIp.n;
  const as = (mac: Plan['dstMac']['to'], ip: Plan['dstIp']['to']) => ({ dstMac: { to: mac, n }, dstIp: { to: ip, n } });
  switch (p.dest) {
    case 'peer': return as('station', 'station');
    case 'routed': return as('router', 'other-net');
    case 'outside': return as('router', 'remote');
    case 'gateway': return as('router', 'gateway');
    case 'broadcast': return as('broadcast', 'broadcast');
    case 'nobody': return as('router', 'nobody');
    case 'mixed': return { dstMac: p.dstMac, dstIp: p.dstIp };
  }
}

function ipv4Addresses(p: Plan, net: Net, own: Station): [number, number] {
  const src = p.srcIp.as === 'own' ? own.ip : p.srcIp.as === 'station' ? pick(STATIONS[net], p.srcIp.n).ip : p.srcIp.as === 'zero' ? 0 : (p.srcIp.n * 2654435761) >>> 0;
  const d = destination(p).dstIp;
  const dst = d.to === 'station' ? pick(peers(net, own), d.n).ip
    : d.to === 'other-net' ? pick(STATIONS[OTHER[net]], d.n).ip
    : d.to === 'remote' ? (net === 'ext' ? (d.n % 2 === 0 ? EXTERNAL : FLOATING) : REMOTE)
    : d.to === 'gateway' ? GATEWAY[net]
    : d.to === 'external' ? EXTERNAL
    : d.to === 'floating' ? FLOATING
    : d.to === 'nobody' ? NOBODY[d.n % 2 === 0 ? net : OTHER[net]]
    : d.to === 'broadcast' ? 0xffff_ffff
    : d.n;
  return [src, dst];
}

function ipv6Addresses(p: Plan, net: Net, own: Station): [Uint8Array, Uint8Array] {
  const src = p.srcIp.as === 'own' ? own.ip6 : p.srcIp.as === 'station' ? pick(STATIONS[net], p.srcIp.n).ip6 : p.srcIp.as === 'zero' ? new Uint8Array(16) : parseIpv6(`fd00:9::${(p.srcIp.n & 0xffff).toString(16)}`);
  const d = destination(p).dstIp;
  const dst = d.to === 'station' ? pick(peers(net, own), d.n).ip6
    : d.to === 'other-net' ? pick(STATIONS[OTHER[net]], d.n).ip6
    : d.to === 'gateway' ? parseIpv6('fe80::57:46ff:feff:fffe')
    : d.to === 'broadcast' ? parseIpv6('ff02::1')
    : d.to === 'nobody' ? parseIpv6(net === 'red' ? 'fd00:2::77' : 'fd00:1::77')
    : parseIpv6(`2001:db8:${(d.n & 0xffff).toString(16)}::1`);
  return [src, dst];
}

/** The IPv4 header checksum of the packet at `ip`, computed anew. */
function fixIpv4Checksum(b: Uint8Array, ip: number): void {
  writeU16(b, ip + 10, 0);
  writeU16(b, ip + 10, finish(sumBytes(b, ip, (b[ip] & 0x0f) * 4)));
}

/** An IPv4 packet with `options` bytes of options (NOPs, then end of list) inserted. */
function withOptions(packet: Uint8Array, options: number): Uint8Array {
  if (options === 0) return packet;
  const b = new Uint8Array(packet.length + options);
  b.set(packet.subarray(0, 20));
  b.fill(1, 20, 20 + options - 1);
  b.set(packet.subarray(20), 20 + options);
  b[0] = 0x40 | ((20 + options) / 4);
  writeU16(b, 2, b.length);
  fixIpv4Checksum(b, 0);
  return b;
}

function icmpv6(src: Uint8Array, dst: Uint8Array, type: number, body: number, data: Uint8Array): Uint8Array {
  return compose.icmpv6(src, dst, new Icmpv6Repr(type, 0, body >>> 0, data));
}

/** A link-layer address option (RFC 4861 §4.6.1) of `kind` (1 source, 2 target). */
function lla(kind: number, m: number): Uint8Array {
  const o = new Uint8Array(8);
  o[0] = kind;
  o[1] = 1;
  writeMac(o, 2, m);
  return o;
}

/** The EtherType and the payload of the frame a plan describes. */
function l3(p: Plan, net: Net, own: Station, srcMac: number): [number, Uint8Array] {
  const data = new Uint8Array(p.payload);
  const [src, dst] = ipv4Addresses(p, net, own);
  const [src6, dst6] = ipv6Addresses(p, net, own);
  const v4 = (bytes: Uint8Array): [number, Uint8Array] => {
    const b = withOptions(bytes.slice(), p.options);
    b[8] = p.ttl;
    if (p.fragment !== 0) writeU16(b, 6, p.fragment === 1 ? 0x2000 : 0x2000 | 185);
    fixIpv4Checksum(b, 0);
    return [EtherType.Ipv4, b];
  };
  switch (p.kind) {
    case 'tcp': return v4(compose.tcpV4(src, dst, new TcpRepr(p.sport, p.dport, 1, p.tcpFlags & 0x10 ? 1 : 0, p.tcpFlags, 1000, new Uint8Array(0), data)));
    case 'udp': return v4(compose.udpV4(src, dst, p.sport, p.dport, data));
    case 'icmp': {
      const b = compose.icmpEchoV4(src, dst, p.sport, 1, data);
      if (p.tcpFlags & 1) { // an echo reply
        b[20] = 0;
        writeU16(b, 22, 0);
        writeU16(b, 22, finish(sumBytes(b, 20, b.length - 20)));
      }
      return v4(b);
    }
    case 'icmp-error': {
      // About a packet the other way: from the router's outside address when it comes from
      // the outside (a reply to a translated packet), else from this destination.
      const quoted = compose.udpV4(net === 'ext' ? EXTERNAL : dst, src, p.dport, p.sport, new Uint8Array(0)).subarray(0, 28);
      const repr = new Icmpv4Repr(p.tcpFlags & 1 ? 11 : 3, p.tcpFlags & 1 ? 0 : 4, 1400, quoted);
      const icmp = new Uint8Array(repr.bufferLen());
      repr.emit(icmp, 0);
      return v4(compose.ipv4(src, dst, 1, icmp));
    }
    case 'ip-other': return v4(compose.ipv4(src, dst, 47, data));
    case 'tcp6': return [EtherType.Ipv6, compose.tcpV6(src6, dst6, new TcpRepr(p.sport, p.dport, 1, 0, p.tcpFlags, 1000, new Uint8Array(0), data))];
    case 'udp6': return [EtherType.Ipv6, compose.udpV6(src6, dst6, p.sport, p.dport, data)];
    case 'icmp6': return [EtherType.Ipv6, icmpv6(src6, dst6, p.tcpFlags & 1 ? 129 : 128, (p.sport << 16) | 1, data)];
    case 'ns': {
      // For a neighbour's address, to its solicited-node group (RFC 4861 §4.3).
      const target = pick(peers(net, own), p.dstIp.n).ip6;
      const group = parseIpv6('ff02::1:ff00:0');
      group.set(target.subarray(13), 13);
      return [EtherType.Ipv6, icmpv6(src6, group, 135, 0, new Uint8Array([...target, ...lla(1, srcMac)]))];
    }
    case 'na': return [EtherType.Ipv6, icmpv6(src6, dst6, 136, 0x6000_0000, new Uint8Array([...src6, ...lla(2, srcMac)]))];
    case 'rs': return [EtherType.Ipv6, icmpv6(src6, parseIpv6('ff02::2'), 133, 0, lla(1, srcMac))];
    case 'ra': return [EtherType.Ipv6, icmpv6(src6, parseIpv6('ff02::1'), 134, 0x4000_0708, new Uint8Array(8))];
    case 'mld': return [EtherType.Ipv6, icmpv6(src6, parseIpv6('ff02::16'), 143, 1, new Uint8Array([4, 0, 0, 0, ...parseIpv6('ff02::1:ff00:1')]))];
    case 'arp': return [EtherType.Arp, compose.arpRequest(srcMac, p.srcIp.as === 'own' ? own.arpIp ?? src : src, dst)];
    case 'arp-reply': return [EtherType.Arp, compose.arp(2, srcMac, p.srcIp.as === 'own' ? own.arpIp ?? src : src, BROADCAST, dst)];
    case 'other-type': return [p.sport % 3 === 0 ? 0x0026 : p.sport % 3 === 1 ? 0x88cc : 0x88b5, new Uint8Array(Math.max(46, p.payload))];
  }
}

/** The frame (tagged as the source port wants, then spoiled as the plan says). */
function frameOf(p: Plan): Uint8Array {
  const s = SOURCES[p.source];
  const net: Net = s.net;
  const own = s.own;
  const srcMac = p.srcMac.as === 'own' ? own.mac : p.srcMac.as === 'station' ? pick(STATIONS[net], p.srcMac.n).mac
    : p.srcMac.as === 'router' ? ROUTER_MAC : p.srcMac.as === 'group' ? 0x0100_5e00_0001 : p.srcMac.as === 'zero' ? 0 : p.srcMac.n * 0x0101_0101 + 0x0200_0000_0000;
  const [type, payload] = l3(p, net, own, srcMac);
  const v6 = type === EtherType.Ipv6;
  const d = destination(p).dstMac;
  let dstMac = d.to === 'router' ? (net === 'ext' ? NAT_MAC : ROUTER_MAC) : d.to === 'nat' ? NAT_MAC : d.to === 'broadcast' ? BROADCAST
    : d.to === 'multicast' ? (v6 ? 0x3333_0000_0001 : 0x0100_5e00_0001) : d.to === 'station' ? pick(peers(net, own), d.n).mac : (d.n * 0x0100_0001 + 0x0200_0000_0000) % 2 ** 48;
  // Neighbour discovery and ARP requests go to groups, as a stack sends them.
  if (p.kind === 'ns') dstMac = 0x3333_ff00_0000 + (payload[40 + 8 + 13] << 16) + (payload[40 + 8 + 14] << 8) + payload[40 + 8 + 15];
  if (p.kind === 'rs' || p.kind === 'mld' || p.kind === 'ra') dstMac = 0x3333_0000_0002;
  if (p.kind === 'arp' && d.to !== 'random') dstMac = BROADCAST;
  let tags: VlanSpec[] = 'port' in s && s.port === 't1' ? [{ vid: VID[net] }] : [];
  if (p.tag === 'none') tags = [];
  else if (p.tag === 'wrong-vid') tags = [{ vid: [1, 4095, 0, 40][p.spoil.value % 4] }];
  else if (p.tag === 'double') tags = [...tags, { vid: VID[OTHER[net]] }];
  else if (p.tag === 'tpid-9100') tags = [{ vid: VID[net], tpid: 0x9100 }];
  else if (p.tag === 'extra') tags = [{ vid: VID[net], tpid: EtherType.QinQ }, ...tags];
  let f = compose.ethernet(dstMac, srcMac, type, payload, tags);
  const l3At = 14 + tags.length * 4;
  const sp = p.spoil;
  switch (sp.how) {
    case 'cut': f = f.slice(0, sp.at % (f.length + 1)); break;
    case 'ip-length': if (f.length >= l3At + 6) writeU16(f, l3At + (v6 ? 4 : 2), sp.value % 1600); break;
    case 'l4-length': {
      const l4 = l3At + (v6 ? 40 : (f[l3At] & 0x0f) * 4);
      if (f.length >= l4 + 14) {
        if (payload[v6 ? 6 : 9] === 6) f[l4 + 12] = (sp.value & 0x0f) << 4; // TCP data offset
        else writeU16(f, l4 + 4, sp.value % 1600); // UDP length (for ICMP, its identifier)
      }
      break;
    }
    case 'flip': if (f.length > 0) f[sp.at % f.length] ^= 1 << (sp.value % 8); break;
    case 'ihl': if (f.length > l3At) f[l3At] = (f[l3At] & 0xf0) | (sp.value % 16); break;
    case 'ip-checksum': if (!v6 && f.length >= l3At + 12) f[l3At + 10] ^= 0xff; break;
    case 'none': break;
  }
  if (p.pad && f.length < 60) {
    const padded = new Uint8Array(60);
    padded.set(f);
    f = padded;
  }
  return f;
}

/** A generated input: a frame from a port, or a datagram from a remote host (or not one). */
export const input: fc.Arbitrary<Input> = plan.map((p): Input => {
  const s = SOURCES[p.source];
  const frame = frameOf(p);
  if ('port' in s) return { kind: 'port', port: s.port, frame };
  const socket = s.net === 'blue' ? 'vxlan' : 'geneve';
  const vni = p.vni ?? (s.net === 'blue' ? 100 : 200);
  let data = socket === 'vxlan' ? compose.vxlan(vni, frame) : compose.geneve(vni, frame);
  for (const [at, value] of p.headerFlips) data[at] = value;
  if (p.headerCut !== null) data = data.subarray(0, p.headerCut);
  return { kind: 'datagram', socket, from: s.from, data };
});
