import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv4, hex, parseIpv4, parseIpv6, parseMac } from '../wire/bytes.js';
import { icmpv6NeighborAdvertisement, icmpv6NeighborSolicitation } from '../wire/testdata/captured.js';
import * as compose from '../wire/compose.js';
import { EthernetFrame, EtherType } from '../wire/ethernet.js';
import { VlanTag } from '../wire/vlan.js';
import { Datapath, type DatapathOptions } from './datapath.js';
import { TableBuilder } from './tables.js';
import { MemoryFabric, type MemoryPort, type MemoryUnderlay } from './memory.js';
import type { FirewallRule } from './firewall.js';
import { PortSecurity } from './port-security.js';
import { Tunnels } from '../tunnel/tunnels.js';
import { generateKeyPair } from '../tunnel/noise.js';
import { cutFrames, cutFrames6, padded } from '../../test/support/cut-frames.js';

const PORT = 4789;
const GENEVE_PORT = 6081;
const H1 = parseIpv4('192.0.2.1');
const H2 = parseIpv4('192.0.2.2');
const H3 = parseIpv4('192.0.2.3');
const BROADCAST = 0xffffffffffff;
const mac = (n: number) => parseMac(`02:00:00:00:00:${n.toString(16).padStart(2, '0')}`);
const ip = (n: number) => parseIpv4(`10.0.0.${n}`);

/** Two hosts on one fabric, each with `blue` (VXLAN, VNI 100, port 4789) and `red` (Geneve,
 * VNI 200, port 6081). */
function twoHosts(options: DatapathOptions = {}) {
  const fabric = new MemoryFabric();
  let now = 1000;
  const clock = () => now;
  const hosts = [H1, H2].map((address) => {
    const dp = new Datapath(options);
    // Each network's tables, edited and swapped in as a test goes.
    const builders = new Map<string, TableBuilder>();
    const tables = (name: string, edit: (t: TableBuilder) => unknown) => {
      let b = builders.get(name);
      if (!b) builders.set(name, (b = new TableBuilder()));
      edit(b);
      dp.setTables(name, b.build());
    };
    const underlay = fabric.underlay(address, PORT);
    const geneveUnderlay = fabric.underlay(address, GENEVE_PORT);
    dp.attachUnderlay(underlay, address, PORT, 'vxlan');
    dp.attachUnderlay(geneveUnderlay, address, GENEVE_PORT, 'geneve');
    dp.startUnderlay(clock);
    for (const [name, vni, encapsulation] of [['blue', 100, 'vxlan'], ['red', 200, 'geneve']] as const) {
      dp.addNetwork({ name, vni, encapsulation });
      tables(name, (t) => t.members([{ address: address === H1 ? H2 : H1, port: encapsulation === 'vxlan' ? PORT : GENEVE_PORT }]));
    }
    return { dp, underlay, geneveUnderlay, tables };
  });
  const port = (host: 0 | 1, name: string, network: string): MemoryPort => {
    const backend = fabric.port(name);
    hosts[host].dp.addPort({ name, backend, mode: 'access', network });
    hosts[host].dp.startPort(name, clock);
    return backend;
  };
  return { fabric, hosts, port, advance: (ms: number) => (now += ms) };
}

const arpRequest = (from: number, to: number) =>
  compose.ethernet(BROADCAST, mac(from), EtherType.Arp, compose.arpRequest(mac(from), ip(from), ip(to)));
const ping = (from: number, to: number, size = 56) =>
  compose.ethernet(mac(to), mac(from), EtherType.Ipv4, compose.icmpEchoV4(ip(from), ip(to), 1, 1, new Uint8Array(size)));

test('a broadcast reaches every port of its network, local and remote, and no other', () => {
  const { fabric, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue3 = port(0, 'blue3', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  const red1 = port(0, 'red1', 'red');
  const red2 = port(1, 'red2', 'red');

  blue1.send(arpRequest(1, 2));
  fabric.run();

  assert.equal(blue2.take().length, 1, 'remote port of the same network');
  assert.equal(blue3.take().length, 1, 'local port of the same network');
  assert.equal(blue1.take().length, 0, 'never back to the sender');
  assert.equal(red1.take().length + red2.take().length, 0, 'never into another network');
});

test('after learning, unicast goes only where the destination lives', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue3 = port(0, 'blue3', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  blue1.send(arpRequest(1, 2));
  blue2.send(arpRequest(2, 1));
  fabric.run();
  blue1.take(); blue2.take(); blue3.take();

  blue1.send(ping(1, 2));
  fabric.run();
  const got = blue2.take();
  assert.equal(got.length, 1);
  assert.deepEqual(got[0], ping(1, 2), 'the frame arrives unchanged');
  assert.equal(blue3.take().length, 0, 'no flooding once the MAC is known');
  const c = hosts[0].dp.tunnelCounters(H2)!.snapshot();
  assert.equal(c.tx.frames, 2, 'the flooded ARP and the ping crossed the tunnel');
});

test('networks are isolated even when they reuse MAC addresses', () => {
  const { fabric, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const red1 = port(0, 'red1', 'red');
  const blue2 = port(1, 'blue2', 'blue');
  const red2 = port(1, 'red2', 'red');
  // The same MACs on both networks.
  blue2.send(arpRequest(2, 1));
  red2.send(arpRequest(2, 1));
  fabric.run();
  assert.equal(blue1.take().length, 1);
  assert.equal(red1.take().length, 1);
  blue1.send(ping(1, 2));
  fabric.run();
  assert.equal(blue2.take().length, 1);
  assert.equal(red2.take().length, 0, 'a blue frame never reaches red');
});

test('a trunk port carries networks by VLAN tag, untags inbound and tags outbound', () => {
  const { fabric, hosts, port } = twoHosts();
  const trunk = fabric.port('trunk1');
  hosts[0].dp.addPort({ name: 'trunk1', backend: trunk, mode: 'trunk', vlans: { 10: 'blue', 20: 'red' } });
  hosts[0].dp.startPort('trunk1', () => 0);
  const blue2 = port(1, 'blue2', 'blue');
  const red2 = port(1, 'red2', 'red');

  trunk.send(compose.ethernet(BROADCAST, mac(1), EtherType.Arp, compose.arpRequest(mac(1), ip(1), ip(2)), [{ vid: 20 }]));
  fabric.run();
  const onRed = red2.take();
  assert.equal(onRed.length, 1);
  assert.deepEqual(onRed[0], arpRequest(1, 2), 'arrives untagged on the remote access port');
  assert.equal(blue2.take().length, 0);

  blue2.send(arpRequest(2, 1));
  fabric.run();
  const back = trunk.take();
  assert.equal(back.length, 1);
  const eth = EthernetFrame.checked(back[0]) as EthernetFrame;
  assert.equal(eth.ethertype, EtherType.Vlan);
  assert.equal((VlanTag.checked(back[0], 14) as VlanTag).vid, 10, 'blue leaves the trunk tagged 10');

  trunk.send(arpRequest(1, 2)); // untagged, and no native network
  trunk.send(compose.ethernet(BROADCAST, mac(1), EtherType.Arp, compose.arpRequest(mac(1), ip(1), ip(2)), [{ vid: 30 }]));
  // VLAN hopping: a second tag inside blue's would reach blue's access ports still tagged
  // (found by the fuzz test).
  trunk.send(compose.ethernet(BROADCAST, mac(1), EtherType.Arp, compose.arpRequest(mac(1), ip(1), ip(2)), [{ vid: 10 }, { vid: 20 }]));
  fabric.run();
  assert.equal(hosts[0].dp.portCounters('trunk1').drops('vlan-not-allowed'), 3);
  assert.equal(blue2.take().length, 0);
});

test('a tagged frame on an access port is dropped and counted', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  blue1.send(compose.ethernet(BROADCAST, mac(1), EtherType.Arp, compose.arpRequest(mac(1), ip(1), ip(2)), [{ vid: 10 }]));
  fabric.run();
  assert.equal(blue2.take().length, 0);
  assert.equal(hosts[0].dp.portCounters('blue1').drops('vlan-not-allowed'), 1);
});

test('MTU: exactly the overlay MTU crosses, one byte more is dropped and counted', () => {
  const { fabric, hosts, port } = twoHosts({ underlayMtu: 1500 });
  assert.equal(hosts[0].dp.networkMtu('blue'), 1450);
  assert.equal(hosts[0].dp.networkMtu('red'), 1450);
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  // An ICMP echo of N data bytes is an IP packet of N + 28 bytes.
  blue1.send(ping(1, 2, 1450 - 28));
  blue1.send(ping(1, 2, 1450 - 27));
  fabric.run();
  const got = blue2.take();
  assert.equal(got.length, 1);
  assert.equal(got[0].length, 14 + 1450);
  assert.equal(hosts[0].dp.portCounters('blue1').drops('mtu-exceeded'), 1);
});

test('the FDB limit: a new MAC beyond it is not learned, but its frames still flow', () => {
  const { fabric, hosts, port } = twoHosts({ fdbLimit: 2 });
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  for (const n of [1, 3, 5]) blue1.send(arpRequest(n, 2));
  fabric.run();
  assert.equal(blue2.take().length, 3, 'all three were forwarded');
  const fdb = hosts[0].dp.fdbOf('blue');
  assert.equal(fdb.size, 2);
  assert.equal(fdb.learnRefused, 1);
  const net = hosts[0].dp.stats(String).networks.find((n) => n.name === 'blue')!;
  assert.deepEqual(net.fdb, { entries: 2, static: 0, limit: 2, learnRefused: 1, moves: 0 });
});

test('learned MACs age out, and traffic to them floods again', () => {
  const { fabric, hosts, port, advance } = twoHosts({ fdbAgingMs: 60_000 });
  const blue1 = port(0, 'blue1', 'blue');
  const blue3 = port(0, 'blue3', 'blue');
  blue3.send(arpRequest(3, 1));
  fabric.run();
  assert.equal(hosts[0].dp.fdbOf('blue').size, 1);
  advance(60_001);
  hosts[0].dp.age(60_001 + 1000);
  assert.equal(hosts[0].dp.fdbOf('blue').size, 0);
  blue1.take();
  blue1.send(ping(1, 3));
  fabric.run();
  assert.equal(blue3.take().length, 1, 'unknown unicast is flooded');
});

test('frames from a tunnel are not flooded to other tunnels (split horizon)', () => {
  const fabric = new MemoryFabric();
  const dps = [H1, H2, H3].map((address) => {
    const dp = new Datapath();
    dp.attachUnderlay(fabric.underlay(address, PORT), address, PORT, 'vxlan');
    dp.startUnderlay(() => 0);
    dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
    dp.setTables('blue', new TableBuilder().members([H1, H2, H3].filter((other) => other !== address).map((other) => ({ address: other, port: PORT }))).build());
    return dp;
  });
  const ports = dps.map((dp, i) => {
    const p = fabric.port(`vm${i}`);
    dp.addPort({ name: `vm${i}`, backend: p, mode: 'access', network: 'blue' });
    dp.startPort(`vm${i}`, () => 0);
    return p;
  });
  ports[0].send(arpRequest(1, 2));
  assert.ok(fabric.run(100, 100) < 10);
  assert.equal(ports[1].take().length, 1, 'exactly one copy each');
  assert.equal(ports[2].take().length, 1);
});

test('garbage from a VM is dropped with a reason; good frames still flow', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  blue1.send(new Uint8Array(5));
  blue1.send(compose.ethernet(BROADCAST, BROADCAST, EtherType.Arp, new Uint8Array(28))); // group source
  blue1.send(new Uint8Array(9000).fill(0x42)); // larger than any slot
  blue1.send(arpRequest(1, 2));
  fabric.run();
  const c = hosts[0].dp.portCounters('blue1');
  assert.equal(c.drops('runt'), 1);
  assert.equal(c.drops('invalid-src-mac'), 1);
  assert.equal(c.drops('oversize'), 1);
  assert.equal(blue2.take().length, 1);
});

test('bad datagrams from the underlay are dropped by reason; good ones still flow', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const red1 = port(0, 'red1', 'red');
  const u = hosts[0].underlay as MemoryUnderlay;
  const g = hosts[0].geneveUnderlay as MemoryUnderlay;
  const inner = arpRequest(2, 1);
  const vx = (vni: number) => compose.vxlan(vni, inner);
  u.inject(new Uint8Array(7), H2, 1234); // truncated
  u.inject(vx(999), H2, 1234); // unknown VNI
  u.inject(vx(100), H3, 1234); // unknown sender
  const noI = vx(100);
  noI[0] = 0;
  u.inject(noI, H2, 1234);
  u.inject(vx(200), H2, 1234); // the Geneve network's VNI on the VXLAN socket
  const gv = (mutate: (b: Uint8Array) => void, vni = 200) => {
    const b = compose.geneve(vni, inner);
    mutate(b);
    return b;
  };
  g.inject(gv((b) => (b[0] = 0x40)), H2, 1234); // version 1
  g.inject(gv((b) => (b[1] = 0x80)), H2, 1234); // a control (OAM) message
  g.inject(gv((b) => (b[1] = 0x40)), H2, 1234); // critical options
  g.inject(gv((b) => (b[2] = 0x08)), H2, 1234); // protocol 0x0858
  g.inject(gv((b) => (b[0] = 0x3f)), H2, 1234); // options longer than the datagram
  g.inject(gv(() => {}, 100), H2, 1234); // the VXLAN network's VNI on the Geneve socket
  u.inject(new Uint8Array(20_000), H2, 1234); // longer than the receive buffer
  u.inject(vx(100), H2, 1234); // good
  g.inject(compose.geneve(200, inner), H2, 1234); // good
  fabric.run();
  const s = hosts[0].dp.stats(formatIpv4);
  assert.deepEqual(s.underlays.map((x) => [x.encapsulation, x.drops]), [
    ['vxlan', { truncated: 1, 'unknown-vni': 1, 'unknown-vtep': 1, 'datagram-oversize': 1, 'wrong-encapsulation': 1 }],
    ['geneve', { 'wrong-encapsulation': 1 }],
  ]);
  assert.deepEqual(s.tunnels.map((t) => [t.remote, t.drops]), [
    ['192.0.2.2:4789', { 'vxlan-bad-flags': 1 }],
    ['192.0.2.2:6081', { 'geneve-bad-version': 1, 'geneve-oam': 1, 'geneve-critical-option': 1, 'geneve-bad-protocol': 1, truncated: 1 }],
  ]);
  assert.equal(blue1.take().length, 1);
  assert.equal(red1.take().length, 1);
});

test('a full output queue drops and counts instead of blocking', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue3 = port(0, 'blue3', 'blue');
  blue3.acceptPerBatch = 1;
  for (let i = 0; i < 3; i++) blue1.send(arpRequest(1, 3));
  fabric.run();
  assert.equal(blue3.take().length, 1);
  assert.equal(hosts[0].dp.portCounters('blue3').drops('tx-busy'), 2);
});

test('counters count frames and bytes both ways', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  port(1, 'blue2', 'blue');
  const f = arpRequest(1, 2);
  blue1.send(f);
  fabric.run();
  const p = hosts[0].dp.stats(String).ports.find((x) => x.name === 'blue1')!;
  assert.deepEqual(p.rx, { frames: 1, bytes: f.length });
  const t1 = hosts[0].dp.stats(String).tunnels[0];
  assert.deepEqual(t1.tx, { frames: 1, bytes: f.length + 8 });
  const p2 = hosts[1].dp.stats(String).ports.find((x) => x.name === 'blue2')!;
  assert.deepEqual(p2.tx, { frames: 1, bytes: f.length });
});

test('removing a port forgets its MACs and frees its memory; the network can then go', () => {
  const { fabric, hosts, port } = twoHosts();
  const dp = hosts[0].dp;
  const before = dp.memory.freeSlots;
  const blue1 = port(0, 'blue1', 'blue');
  blue1.send(arpRequest(1, 2));
  fabric.run();
  assert.equal(dp.fdbOf('blue').size, 1);
  assert.throws(() => dp.removeNetwork('blue'), /still has ports: blue1/);
  dp.removePort('blue1');
  assert.equal(dp.fdbOf('blue').size, 0);
  assert.equal(dp.memory.freeSlots, before);
  assert.ok(blue1.closed);
  dp.removeNetwork('blue');
});

test('ARP suppression: a request for a known address is answered on the host, not flooded', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  hosts[0].tables('blue', (t) => t.arp(ip(2), mac(2)));
  blue1.send(arpRequest(1, 2));
  blue1.send(arpRequest(1, 9)); // unknown: flooded as usual
  fabric.run();
  const [reply] = blue1.take();
  const expected = compose.ethernet(mac(1), mac(2), EtherType.Arp, compose.arp(2, mac(2), ip(2), mac(1), ip(1)));
  assert.deepEqual(reply, expected);
  assert.equal(blue2.take().length, 1, 'only the unknown address was flooded');
  assert.equal(hosts[0].dp.stats(String).networks.find((n) => n.name === 'blue')!.arpAnswered, 1);
});

test('ND suppression answers a real Linux solicitation exactly as Linux answered it', () => {
  const { fabric, hosts, port } = twoHosts();
  const vm = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  // The captured exchange: fd00::1 (02:..:0a) asks for fd00::2, which is 02:..:0b.
  hosts[0].tables('blue', (t) => t.ndp('fd00::2', parseMac('02:00:00:00:00:0b')));
  vm.send(hex(icmpv6NeighborSolicitation));
  fabric.run();
  assert.deepEqual(vm.take(), [hex(icmpv6NeighborAdvertisement)]);
  assert.equal(blue2.take().length, 0, 'nothing crossed to the other host');
  // Duplicate address detection (source ::) is not answered: it must reach the others.
  const dad = hex(icmpv6NeighborSolicitation);
  dad.fill(0, 22, 38);
  vm.send(dad);
  fabric.run();
  assert.equal(vm.take().length, 0);
  assert.equal(blue2.take().length, 1);
});

test('a MAC the controller gave a local port stays there: spoofed frames from a tunnel or another port are dropped', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue3 = port(0, 'blue3', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  hosts[0].tables('blue', (t) => t.pinLocal(mac(1), 'blue1').pinLocal(mac(3), 'blue3'));
  // A datagram from blue2's host (a real remote of blue) with blue1's MAC; blue3 sends with it too.
  (hosts[0].underlay as MemoryUnderlay).inject(compose.vxlan(100, arpRequest(1, 9)), H2, 40000);
  blue3.send(arpRequest(1, 9));
  fabric.run();
  const s = hosts[0].dp.stats(formatIpv4);
  assert.deepEqual(s.tunnels.find((t) => t.remote === '192.0.2.2:4789')!.drops, { 'src-mac-pinned': 1 });
  assert.deepEqual(s.ports.find((p) => p.name === 'blue3')!.drops, { 'src-mac-pinned': 1 });
  assert.equal(blue1.take().length, 0, 'the spoofed broadcasts reached no one');
  // blue1 is still reachable from the remote host, and blue3 from blue1.
  blue2.send(ping(2, 1));
  blue1.send(ping(1, 3));
  fabric.run();
  assert.deepEqual(blue1.take(), [ping(2, 1)]);
  assert.deepEqual(blue3.take(), [ping(1, 3)]);
  // When the port goes, its MAC is free to be learned elsewhere.
  hosts[0].tables('blue', (t) => t.unpin(mac(1)));
  blue3.send(arpRequest(1, 9));
  fabric.run();
  assert.deepEqual(hosts[0].dp.portCounters('blue3').snapshot().drops, { 'src-mac-pinned': 1 }, 'no new drop');
});

test('inside and outside apply the same rules to the frame: source MAC, tags, MTU', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  port(1, 'blue2', 'blue');
  const zero = compose.ethernet(BROADCAST, 0, EtherType.Arp, new Uint8Array(28));
  const tagged = compose.ethernet(BROADCAST, mac(2), EtherType.Arp, new Uint8Array(28), [{ vid: 7 }]);
  const big = compose.ethernet(mac(1), mac(2), EtherType.Ipv4, new Uint8Array(1451));
  for (const f of [zero, tagged, big]) (hosts[0].underlay as MemoryUnderlay).inject(compose.vxlan(100, f), H2, 40000);
  for (const f of [zero, tagged, compose.ethernet(mac(2), mac(1), EtherType.Ipv4, new Uint8Array(1451))]) blue1.send(f);
  fabric.run();
  const s = hosts[0].dp.stats(formatIpv4);
  const expected = { 'invalid-src-mac': 1, 'vlan-not-allowed': 1, 'mtu-exceeded': 1 };
  assert.deepEqual(s.tunnels.find((t) => t.remote === '192.0.2.2:4789')!.drops, expected);
  assert.deepEqual(s.ports.find((p) => p.name === 'blue1')!.drops, expected);
  assert.equal(blue1.take().length, 0);
});

test('the router: a frame to ROUTER_MAC is routed into the destination network with TTL - 1, a valid checksum and rewritten MACs', async () => {
  const { ROUTER_MAC } = await import('./router-mac.js');
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const red2 = port(1, 'red2', 'red');
  const red1 = port(0, 'red1', 'red');
  const dp = hosts[0].dp;
  hosts[0].tables('blue', (t) => t.routes([{ cidr: '10.20.0.0/24', network: 'red' }]));
  hosts[0].tables('red', (t) => t.pinRemote(mac(0x22), H2, GENEVE_PORT) && t.arp(parseIpv4('10.20.0.2'), mac(0x22)).arp(parseIpv4('10.20.0.1'), mac(0x21)));
  const toGateway = (dst: string, ttl = 64) => compose.ethernet(ROUTER_MAC, mac(1), EtherType.Ipv4, compose.ipv4(ip(1), parseIpv4(dst), 1, new Uint8Array(16), ttl));
  blue1.send(toGateway('10.20.0.2'));
  fabric.run();
  const got = red2.take();
  assert.equal(got.length, 1, 'crossed to h2 on red');
  const f = Buffer.from(got[0]);
  assert.equal(f.readUIntBE(0, 6), mac(0x22));
  assert.equal(f.readUIntBE(6, 6), ROUTER_MAC);
  assert.equal(f[14 + 8], 63);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'the header checksum still verifies');
  assert.equal(red1.take().length, 0, 'switched to its owner only');

  blue1.send(toGateway('10.30.0.1'));
  blue1.send(toGateway('10.20.0.2', 1));
  blue1.send(toGateway('10.20.0.9'));
  fabric.run();
  assert.deepEqual(dp.portCounters('blue1').snapshot().drops, { 'no-route': 1, 'ttl-exceeded': 1, 'no-neighbor': 1 });
});

test('the router owes ICMP errors, from its address on the sender\'s subnet, at most 100 a second, never about an ICMP error', async () => {
  const { ROUTER_MAC } = await import('./router-mac.js');
  const { fabric, hosts, port, advance } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const dp = hosts[0].dp;
  hosts[0].tables('blue', (t) => t.routes([{ cidr: '10.20.0.0/24', network: 'red' }]).gateways(['10.0.0.254/24']));
  const packet = (ttl: number, protocol = 17, payload = new Uint8Array(16)) => compose.ethernet(ROUTER_MAC, mac(1), EtherType.Ipv4, compose.ipv4(ip(1), parseIpv4('10.20.0.2'), protocol, payload, ttl));
  blue1.send(packet(1));
  fabric.run();
  const [err] = blue1.take();
  const e = Buffer.from(err);
  assert.equal(e.readUIntBE(0, 6), mac(1));
  assert.equal(e.readUInt32BE(14 + 12), parseIpv4('10.0.0.254'), 'from the gateway of the sender\'s subnet');
  assert.deepEqual([e[34], e[35]], [11, 0], 'time exceeded in transit');
  assert.deepEqual([...e.subarray(42, 42 + 20)], [...packet(1).subarray(14, 34)], 'quotes the original header');
  // An ICMP error about an ICMP error: none.
  blue1.send(packet(1, 1, Uint8Array.of(3, 1, 0, 0, 0, 0, 0, 0)));
  fabric.run();
  assert.equal(blue1.take().length, 0);
  // At most 100 a second.
  for (let i = 0; i < 150; i++) blue1.send(packet(1));
  fabric.run();
  assert.equal(blue1.take().length, 99, 'the one above plus 99 fill the second');
  advance(1000);
  blue1.send(packet(1));
  fabric.run();
  assert.equal(blue1.take().length, 1);
});

// ---- frames whose headers are cut (flow.ts), tags and EtherTypes, the router on a trunk --

const webRule = (direction: 'ingress' | 'egress', ipv6 = false): FirewallRule => ({ direction, ipv6, protocol: 6, portMin: 80, portMax: 80, icmpType: -1, icmpCode: -1, remote: null, remoteSet: null });
const ip6 = (n: number) => parseIpv6(`fd00::${n}`);
/** IPv4 and IPv6 frames from `from` to `to`: a SYN to port 80, and the ways one is cut. */
function webFrames(from: number, to: number, srcIp = ip(from)) {
  const v4 = cutFrames({ dstMac: mac(to), srcMac: mac(from), src: srcIp, dst: ip(to) });
  const v6 = cutFrames6({ dstMac: mac(to), srcMac: mac(from), src: ip6(from), dst: ip6(to) });
  return { ...v4, cutTcp6: v6.cutTcp, fragment6: v6.fragment };
}

test('a frame whose IP or TCP/UDP header is cut is dropped as malformed, from a tunnel and from a port, before port security and groups look; a group allowing only tcp/80 lets no fragment through', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  const dp = hosts[1].dp;
  // blue2 takes tcp/80 only, and sends tcp/80 only, as itself.
  dp.setPortFirewall('blue2', [webRule('ingress'), webRule('ingress', true), webRule('egress'), webRule('egress', true)]);
  const toBlue2 = webFrames(1, 2);
  const fromTunnel = (f: Uint8Array) => (hosts[1].underlay as MemoryUnderlay).inject(compose.vxlan(100, f), H1, 40000);

  // In through the tunnel: a whole SYN to 80, padded to the minimum frame, arrives without its padding.
  fromTunnel(padded(toBlue2.syn));
  fabric.run();
  assert.deepEqual(blue2.take(), [toBlue2.syn]);
  for (const f of [toBlue2.cutTcp, toBlue2.shortOfTotal, toBlue2.zeroHeader, toBlue2.cutUdp, toBlue2.cutTcp6]) fromTunnel(f);
  fabric.run();
  assert.deepEqual(blue2.take(), [], 'nothing cut reaches the VM');
  assert.deepEqual(dp.tunnelCounters(H1)!.snapshot().drops, { malformed: 5 }, 'counted on the tunnel, before any group');
  // A fragment carries no ports: a group allowing tcp/80 does not let it in.
  fromTunnel(toBlue2.fragment);
  fromTunnel(toBlue2.fragment6);
  fabric.run();
  assert.deepEqual(blue2.take(), []);
  assert.deepEqual(dp.portCounters('blue2').snapshot().drops, { 'sg-refused': 2 });

  // Out of a port with port security: cut frames are malformed, whatever they claim to be
  // from (port security never reads a cut header).
  dp.setPortSecurity('blue2', new PortSecurity([mac(2)], [`${formatIpv4(ip(2))}`, 'fd00::2']));
  const spoofed = webFrames(2, 1, ip(99));
  for (const f of [spoofed.cutTcp, spoofed.shortOfTotal, spoofed.zeroHeader, spoofed.cutUdp]) blue2.send(f);
  const own = webFrames(2, 1);
  blue2.send(own.cutTcp6);
  blue2.send(own.fragment);
  blue2.send(own.fragment6);
  blue2.send(own.syn);
  fabric.run();
  assert.deepEqual(dp.portCounters('blue2').snapshot().drops, { 'sg-refused': 4, malformed: 5 });
  assert.deepEqual(blue1.take(), [own.syn], 'only the whole SYN to port 80 left');
});

test('without groups or port security, cut frames are still dropped and counted on both sides', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  const f = webFrames(1, 2);
  for (const frame of [f.cutTcp, f.shortOfTotal, f.zeroHeader, f.cutUdp, f.cutTcp6]) {
    blue1.send(frame);
    (hosts[1].underlay as MemoryUnderlay).inject(compose.vxlan(100, frame), H1, 40000);
  }
  // ARP too short for its addresses.
  blue1.send(compose.ethernet(BROADCAST, mac(1), EtherType.Arp, compose.arpRequest(mac(1), ip(1), ip(2)).subarray(0, 20)));
  fabric.run();
  assert.deepEqual(blue2.take(), []);
  assert.deepEqual(hosts[0].dp.portCounters('blue1').snapshot().drops, { malformed: 6 });
  assert.deepEqual(hosts[1].dp.tunnelCounters(H1)!.snapshot().drops, { malformed: 5 });
  assert.equal(hosts[0].dp.tunnelCounters(H2)!.snapshot().tx.frames, 0, 'nothing crossed the tunnel');
});

test('every tag EtherType (0x8100, 0x88a8, 0x9100, 0x9200) is a tag where none belongs: on an access port, a trunk\'s native network, inside a tag, from a tunnel', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  const trunk = fabric.port('trunk1');
  hosts[0].dp.addPort({ name: 'trunk1', backend: trunk, mode: 'trunk', vlans: { 20: 'red' }, nativeNetwork: 'blue' });
  hosts[0].dp.startPort('trunk1', () => 0);
  const arp = compose.arpRequest(mac(1), ip(1), ip(2));
  const tagged = (tpid: number) => compose.ethernet(BROADCAST, mac(1), EtherType.Arp, arp, [{ vid: 10, tpid }]);
  for (const tpid of [0x8100, 0x88a8, 0x9100, 0x9200]) {
    blue1.send(tagged(tpid));
    (hosts[1].underlay as MemoryUnderlay).inject(compose.vxlan(100, tagged(tpid)), H1, 40000);
  }
  for (const tpid of [0x88a8, 0x9100, 0x9200]) {
    trunk.send(tagged(tpid)); // not a VLAN of the trunk: and not its native network's either
    trunk.send(compose.ethernet(BROADCAST, mac(1), EtherType.Arp, arp, [{ vid: 20 }, { vid: 10, tpid }]));
  }
  fabric.run();
  assert.deepEqual(blue2.take(), []);
  assert.deepEqual(hosts[0].dp.portCounters('blue1').snapshot().drops, { 'vlan-not-allowed': 4 });
  assert.deepEqual(hosts[1].dp.tunnelCounters(H1)!.snapshot().drops, { 'vlan-not-allowed': 4 });
  assert.deepEqual(hosts[0].dp.portCounters('trunk1').snapshot().drops, { 'vlan-not-allowed': 6 });
});

test('port security: a port sends IPv4, IPv6 and ARP, and other EtherTypes only when it lists them', () => {
  const { fabric, hosts, port } = twoHosts();
  const blue1 = port(0, 'blue1', 'blue');
  const blue2 = port(1, 'blue2', 'blue');
  const dp = hosts[0].dp;
  const lldp = compose.ethernet(0x0180c200000e, mac(1), 0x88cc, new Uint8Array(46));
  dp.setPortSecurity('blue1', new PortSecurity([mac(1)], [formatIpv4(ip(1))]));
  blue1.send(lldp);
  blue1.send(arpRequest(1, 2));
  fabric.run();
  assert.deepEqual(blue2.take(), [arpRequest(1, 2)]);
  assert.deepEqual(dp.portCounters('blue1').snapshot().drops, { 'ethertype-not-allowed': 1 });
  dp.setPortSecurity('blue1', new PortSecurity([mac(1)], [formatIpv4(ip(1))], [0x88cc]));
  blue1.send(lldp);
  fabric.run();
  assert.deepEqual(blue2.take(), [lldp], 'listed: it goes');
});

test('the router between two VLANs of one trunk port: routed back out of the trunk, tagged with the other VLAN', async () => {
  const { ROUTER_MAC } = await import('./router-mac.js');
  const { fabric, hosts } = twoHosts();
  const dp = hosts[0].dp;
  const trunk = fabric.port('trunk1');
  dp.addPort({ name: 'trunk1', backend: trunk, mode: 'trunk', vlans: { 10: 'blue', 20: 'red' } });
  dp.startPort('trunk1', () => 0);
  hosts[0].tables('blue', (t) => t.routes([{ cidr: '10.20.0.0/24', network: 'red' }]));
  const peer = parseIpv4('10.20.0.5');
  hosts[0].tables('red', (t) => t.arp(peer, mac(5)));
  const toGateway = compose.ethernet(ROUTER_MAC, mac(1), EtherType.Ipv4, compose.icmpEchoV4(ip(1), peer, 1, 1, new Uint8Array(8)), [{ vid: 10 }]);
  // The VM behind VLAN 20 is unknown yet (flooded on red), then learned at the trunk.
  for (const learned of [false, true]) {
    trunk.send(toGateway);
    fabric.run();
    const out = trunk.take();
    assert.equal(out.length, 1, learned ? 'switched to where mac(5) was learned' : 'flooded on red, the trunk included');
    assert.equal((VlanTag.checked(out[0], 14) as VlanTag).vid, 20, 'tagged with red\'s VLAN');
    assert.equal(Buffer.from(out[0]).readUIntBE(0, 6), mac(5));
    if (!learned) trunk.send(compose.ethernet(BROADCAST, mac(5), EtherType.Arp, compose.arpRequest(mac(5), peer, ip(1)), [{ vid: 20 }]));
    fabric.run();
  }
  assert.deepEqual(dp.portCounters('trunk1').snapshot().drops, {}, 'no hairpin');
  // Within one network, a frame back to where it came from is still a hairpin.
  trunk.send(compose.ethernet(mac(5), mac(6), EtherType.Arp, compose.arpRequest(mac(6), peer, ip(1)), [{ vid: 20 }]));
  fabric.run();
  assert.deepEqual(dp.portCounters('trunk1').snapshot().drops, { hairpin: 1 });
});

test('removing a network removes the IPv6 routes to it too', async () => {
  const { ROUTER_MAC } = await import('./router-mac.js');
  const { fabric, hosts, port } = twoHosts();
  const dp = hosts[0].dp;
  const blue1 = port(0, 'blue1', 'blue');
  dp.addNetwork({ name: 'green', vni: 300, encapsulation: 'vxlan' });
  hosts[0].tables('blue', (t) => t.routes([{ cidr: '10.30.0.0/24', network: 'green' }, { cidr: 'fd30::/64', network: 'green' }]));
  hosts[0].tables('green', (t) => t.ndp('fd30::5', mac(5)));
  dp.removeNetwork('green');
  const toGateway = compose.ethernet(ROUTER_MAC, mac(1), EtherType.Ipv6, compose.udpV6(ip6(1), parseIpv6('fd30::5'), 5000, 53, new Uint8Array(8)));
  blue1.send(toGateway);
  fabric.run();
  assert.deepEqual(dp.portCounters('blue1').snapshot().drops, { 'no-route': 1 }, 'not routed into the network that is gone');
});

test('the encrypted tunnels\' socket may be attached before the VXLAN one, and is counted apart from it', () => {
  const fabric = new MemoryFabric();
  const dp = new Datapath();
  const tunnels = new Tunnels({ privateKey: generateKeyPair().privateKey, maxPlaintext: 2048 });
  dp.attachTunnels(fabric.underlay(H1, 4793), H1, 4793, tunnels);
  const vxlan = fabric.underlay(H1, PORT);
  dp.attachUnderlay(vxlan, H1, PORT, 'vxlan');
  assert.throws(() => dp.attachUnderlay(fabric.underlay(H1, 4790), H1, 4790, 'vxlan'), /an underlay for vxlan is attached already/);
  dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
  dp.startUnderlay(() => 0);
  vxlan.inject(new Uint8Array(3), H2, 40000);
  fabric.run();
  assert.deepEqual(dp.underlayCounters('vxlan')!.snapshot().drops, { truncated: 1 }, 'the VXLAN socket\'s own counters');
  assert.deepEqual(dp.stats(formatIpv4).underlays.map((u) => u.encapsulation), ['encrypted', 'vxlan']);
});
