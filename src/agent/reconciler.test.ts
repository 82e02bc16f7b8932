import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../datapath/datapath.js';
import { MemoryFabric, type MemoryPort } from '../datapath/memory.js';
import { formatIpv4, parseIpv4, parseMac } from '../wire/bytes.js';
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
