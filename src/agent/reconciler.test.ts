import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../datapath/datapath.js';
import { MemoryFabric, type MemoryPort } from '../datapath/memory.js';
import { formatIpv4, formatMac, parseIpv4, parseMac, readU16, readU32 } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import type { HostState, PortState } from './desired-state.js';
import { Reconciler } from './reconciler.js';

function setup() {
  const fabric = new MemoryFabric();
  const dp = new Datapath();
  dp.attachUnderlay(fabric.underlay(parseIpv4('192.0.2.1'), 4789), parseIpv4('192.0.2.1'), 4789, 'vxlan');
  dp.attachUnderlay(fabric.underlay(parseIpv4('192.0.2.1'), 6081), parseIpv4('192.0.2.1'), 6081, 'geneve');
  const opened = new Map<string, MemoryPort>();
  let failNext = '';
  const reconciler = new Reconciler(dp, (port) => {
    if (failNext === port.name) throw new Error(`namespace of ${port.name} not there yet`);
    const p = fabric.port(port.name);
    opened.set(port.name, p);
    return p;
  }, () => 0);
  return { fabric, dp, reconciler, opened, failOpen: (name: string) => (failNext = name) };
}

const port = (name: string, network: string): PortState => ({ name, mode: 'access', network, backend: { type: 'memory' } });
const state = (networks: HostState['networks'], ports: PortState[]): HostState => ({
  host: 'h1',
  underlay: { address: '192.0.2.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 },
  physicalNetworks: {},
  nat: [],
  securityGroups: {},
  addressSets: {},
  networks,
  ports,
  limits: { maxPorts: 8, fdbLimit: 64, fdbAgingSeconds: 300 },
});
const blue = { name: 'blue', vni: 100, encapsulation: 'vxlan' as const, remotes: [{ address: '192.0.2.2', port: 4789 }] };
const red = { name: 'red', vni: 200, encapsulation: 'geneve' as const, remotes: [] };

test('a reload changes only what differs; untouched ports keep counters and learned MACs', () => {
  const { fabric, dp, reconciler, opened } = setup();
  let r = reconciler.apply(state([blue], [port('vm1', 'blue'), port('vm2', 'blue')]));
  assert.deepEqual(r.added, ['network blue', 'port vm1', 'port vm2']);
  opened.get('vm1')!.send(compose.ethernet(0xffffffffffff, parseMac('02:00:00:00:00:01'), EtherType.Arp, new Uint8Array(28)));
  fabric.run();
  const vm1Counters = dp.portCounters('vm1');

  r = reconciler.apply(state([{ ...blue, remotes: [{ address: '192.0.2.3', port: 4789 }] }, red], [port('vm1', 'blue'), port('vm3', 'red')]));
  assert.deepEqual(r.removed, ['port vm2']);
  assert.deepEqual(r.added, ['network red', 'port vm3']);
  assert.deepEqual(r.changed, ['network blue']);
  assert.equal(dp.portCounters('vm1'), vm1Counters, 'vm1 was not rebuilt');
  assert.equal(dp.fdbOf('blue').size, 1, 'its learned MAC is still there');
  assert.ok(opened.get('vm2')!.closed, 'the removed port was closed');
  assert.deepEqual(dp.stats(formatIpv4).tunnels.map((t) => t.remote), ['192.0.2.3:4789']);
});

test('a network whose VNI changes is rebuilt with its ports', () => {
  const { dp, reconciler } = setup();
  reconciler.apply(state([blue], [port('vm1', 'blue')]));
  const before = dp.portCounters('vm1');
  const r = reconciler.apply(state([{ ...blue, vni: 101 }], [port('vm1', 'blue')]));
  assert.deepEqual(r.changed, ['port vm1', 'network blue']);
  assert.notEqual(dp.portCounters('vm1'), before);
  assert.equal(dp.stats(String).networks[0].vni, 101);
});

test('a port that cannot be opened yet is pending, and attached on a later apply', () => {
  const { dp, reconciler, failOpen } = setup();
  failOpen('vm1');
  const desired = state([blue], [port('vm1', 'blue')]);
  assert.deepEqual(reconciler.apply(desired).pending, { vm1: 'namespace of vm1 not there yet' });
  assert.equal(dp.hasPort('vm1'), false);
  failOpen('');
  const r = reconciler.apply(desired);
  assert.deepEqual(r.pending, {});
  assert.deepEqual(r.added, ['port vm1']);
  assert.ok(dp.hasPort('vm1'));
});

/** A whole IPv4 datagram: the data path drops cut ones as malformed. */
const UDP_PACKET = compose.udpV4(parseIpv4('10.0.0.1'), parseIpv4('10.0.0.2'), 1000, 2000, new Uint8Array(18));

test('a network of 10,000 remote ports: every MAC is pinned to its host, none floods, and learning stays bounded', () => {
  const { fabric, dp, reconciler, opened } = setup();
  // 100 remote hosts with 100 ports each: far past the learning limit (4,096 per network).
  const hosts = Array.from({ length: 100 }, (_, h) => ({ address: `10.9.${h >> 8}.${(h & 0xff) + 1}`, port: 4789 }));
  const remoteUnderlays = hosts.map((r) => fabric.underlay(parseIpv4(r.address), r.port));
  const macOf = (i: number) => 0x02aa_0000_0000 + i;
  const neighbors = Array.from({ length: 10_000 }, (_, i) => ({
    mac: formatMac(macOf(i)), ips: [`10.${i >> 16}.${(i >> 8) & 0xff}.${i & 0xff}`], remote: hosts[i % 100],
  }));
  const r = reconciler.apply(state([{ ...blue, remotes: hosts, neighbors }], [port('vm1', 'blue')]));
  const fdb = dp.fdbOf('blue');
  assert.equal(fdb.limit, 4096);

  // vm1 sends one frame to each port: each reaches that port's host, and only it.
  const vm1 = opened.get('vm1')!;
  const me = parseMac('02:00:00:00:00:01');
  for (let i = 0; i < 10_000; i++) vm1.send(compose.ethernet(macOf(i), me, EtherType.Ipv4, UDP_PACKET));
  fabric.run();
  for (const [h, u] of remoteUnderlays.entries()) {
    assert.equal(u.inbox.length, 100, `host ${hosts[h].address} gets its 100 ports' frames`);
    for (const d of u.inbox) {
      const innerDst = readU16(d.data, 8) * 2 ** 32 + readU32(d.data, 10);
      assert.equal((innerDst - macOf(0)) % 100, h, 'each frame to the host of its MAC');
    }
    u.inbox.length = 0;
  }
  assert.deepEqual(r.failed, []);
  assert.equal(dp.tablesOf('blue').pins.size, 10_000);

  // 5,000 VMs' worth of source MACs behind vm1: learned up to the limit, not past it, and
  // the pins are all still there.
  for (let i = 0; i < 5000; i++) vm1.send(compose.ethernet(macOf(i), 0x0200_0100_0000 + i, EtherType.Ipv4, UDP_PACKET));
  fabric.run();
  assert.equal(fdb.size, 4096, 'learned entries stop at the limit');
  assert.equal(fdb.learnRefused, 5001 - 4096, 'vm1\'s own MAC and 5,000 more; the rest refused');
  assert.equal(dp.tablesOf('blue').pins.size, 10_000);
  assert.equal(remoteUnderlays.reduce((n, u) => n + u.inbox.length, 0), 5000, 'one datagram per frame: nothing flooded');
  const { fdb: shown } = dp.stats(formatIpv4).networks[0];
  assert.deepEqual([shown.entries, shown.static, shown.limit], [14_096, 10_000, 4096], 'weft stats tells the pinned from the learned');
});

test('a remote MAC that cannot be installed fails the view, the rest is installed, and it is tried again', () => {
  const { dp, reconciler } = setup();
  const good = { mac: '02:aa:00:00:00:01', ips: ['10.0.0.1'], remote: { address: '192.0.2.2', port: 4789 } };
  const stray = { mac: '02:aa:00:00:00:02', ips: ['10.0.0.2'], remote: { address: '192.0.2.9', port: 4789 } };
  const desired = state([{ ...blue, neighbors: [good, stray] }], [port('vm1', 'blue')]);
  const r = reconciler.apply(desired);
  assert.deepEqual(r.failed, ['network blue has no remote host 192.0.2.9:4789: 02:aa:00:00:00:02 not installed']);
  assert.deepEqual(r.added, ['network blue', 'port vm1'], 'the rest went ahead');
  assert.equal(dp.tablesOf('blue').pins.size, 1);
  assert.deepEqual(reconciler.apply(desired).failed, ['network blue has no remote host 192.0.2.9:4789: 02:aa:00:00:00:02 not installed'], 'the same view fails again: it is not taken as applied');
  const fixed = state([{ ...blue, remotes: [...blue.remotes, stray.remote], neighbors: [good, stray] }], [port('vm1', 'blue')]);
  assert.deepEqual(reconciler.apply(fixed).failed, []);
  assert.equal(dp.tablesOf('blue').pins.size, 2);
});

test('a network handed again as a new object with the same neighbours, then without one: that neighbour\'s pin and ARP answer go', () => {
  const { dp, reconciler } = setup();
  const a = { mac: '02:aa:00:00:00:01', ips: ['10.0.0.1'], remote: { address: '192.0.2.2', port: 4789 } };
  const b = { mac: '02:aa:00:00:00:02', ips: ['10.0.0.2'], remote: { address: '192.0.2.2', port: 4789 } };
  const neighbors = [a, b];
  const first = { ...blue, neighbors };
  reconciler.apply(state([first], []));
  // What a delta that changed nothing of blue's neighbours gives: a new network object, the
  // same neighbour objects (found unchanged, and still known as compiled).
  reconciler.apply(state([{ ...first }], []));
  reconciler.apply(state([{ ...blue, neighbors: [a] }], []));
  const t = dp.tablesOf('blue');
  assert.equal(t.pins.size, 1);
  assert.equal(t.arp?.get(parseIpv4('10.0.0.2')), undefined, 'the removed neighbour is not answered');
  assert.equal(t.arp?.get(parseIpv4('10.0.0.1')), parseMac(a.mac));
});
