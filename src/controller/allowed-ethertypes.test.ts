/**
 * A port's allowedEtherTypes, from the API to the data path: validated and stored in one
 * form, carried in its host's view, and applied by the agent's port security.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Datapath } from '../datapath/datapath.js';
import { MemoryFabric, type MemoryPort } from '../datapath/memory.js';
import { hostStateFromView, type HostState } from '../agent/desired-state.js';
import { Reconciler } from '../agent/reconciler.js';
import { parseIpv4, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { ModelCache } from './model-cache.js';
import { inProcessApi } from '../../test/support/api.js';

async function setup() {
  const { call, store } = inProcessApi();
  assert.equal((await call('POST', '/v1/hosts', { name: 'h1', address: '192.0.2.1', tunnelKey: Buffer.alloc(32, 1).toString('base64') })).status, 201);
  await call('POST', '/v1/networks', { name: 'blue', vni: 100, encryption: 'none' });
  await call('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.10.0.0/24' });
  return { call, store };
}

test('allowedEtherTypes: hex or a number, stored as 0x and four digits; tags, IPv4/IPv6/ARP, 802.3 lengths and repeats refused by name', async () => {
  const { call } = await setup();
  const port = await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', allowedEtherTypes: ['0x88CC', 0x88b5] });
  assert.equal(port.status, 201);
  assert.deepEqual(port.body.allowedEtherTypes, ['0x88cc', '0x88b5']);
  const refused = async (types: unknown[]) => {
    const r = await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1', allowedEtherTypes: types });
    assert.equal(r.status, 400);
    return r.body.errors.map((e: { field: string; message: string }) => `${e.field}: ${e.message}`);
  };
  assert.deepEqual(await refused(['0x9100']), ['allowedEtherTypes[0]: 0x9100 is a VLAN tag: an access port never sends tags (a trunk port carries VLANs)']);
  assert.deepEqual(await refused([0x8100]), ['allowedEtherTypes[0]: 0x8100 is a VLAN tag: an access port never sends tags (a trunk port carries VLANs)']);
  assert.deepEqual(await refused(['0x86dd']), ['allowedEtherTypes[0]: 0x86dd is IPv6, which a port always sends; list only other EtherTypes']);
  assert.deepEqual(await refused([1500]), ['allowedEtherTypes[0]: 1500 is not an EtherType such as 0x88cc (0x0600 to 0xffff; below 0x0600 the field is an 802.3 length)']);
  assert.deepEqual(await refused(['lldp']), ['allowedEtherTypes[0]: "lldp" is not an EtherType such as 0x88cc (0x0600 to 0xffff; below 0x0600 the field is an 802.3 length)']);
  assert.deepEqual(await refused(['0x88cc', 35020]), ['allowedEtherTypes[1]: EtherType 0x88cc is listed twice']);
  // Changed whole by PATCH; [] leaves IPv4, IPv6 and ARP only.
  assert.deepEqual((await call('PATCH', '/v1/ports/vm1', { allowedEtherTypes: ['0x88cc'] })).body.allowedEtherTypes, ['0x88cc']);
  assert.equal((await call('PATCH', '/v1/ports/vm1', { allowedEtherTypes: [] })).body.allowedEtherTypes, undefined);
});

test('allowedEtherTypes reach the port\'s host in its view, and its port security lets them out', async () => {
  const { call, store } = await setup();
  const vm1 = (await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', allowedEtherTypes: ['0x88cc'] })).body as { mac: string };
  await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1' });
  let view = (await ModelCache.load(store)).viewFor('h1');
  assert.deepEqual(view.ports.map((p) => p.security?.etherTypes), [[0x88cc], undefined]);

  // The agent applies the view to a data path.
  const fabric = new MemoryFabric();
  const dp = new Datapath();
  dp.attachUnderlay(fabric.underlay(parseIpv4('192.0.2.1'), 4789), parseIpv4('192.0.2.1'), 4789, 'vxlan');
  const opened = new Map<string, MemoryPort>();
  const reconciler = new Reconciler(dp, (p) => {
    const backend = fabric.port(p.name);
    opened.set(p.name, backend);
    return backend;
  }, () => 0);
  const base: HostState = {
    host: 'h1', underlay: { address: '192.0.2.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 }, physicalNetworks: {},
    nat: [], securityGroups: {}, addressSets: {}, networks: [], ports: [], limits: { maxPorts: 8, fdbLimit: 64, fdbAgingSeconds: 300 },
  };
  reconciler.apply(hostStateFromView(view, base));
  const lldp = (mac: string) => compose.ethernet(0x0180c200000e, parseMac(mac), 0x88cc, new Uint8Array(46));
  const vm2mac = (await call('GET', '/v1/ports/vm2')).body.mac as string;
  opened.get('vm1')!.send(lldp(vm1.mac));
  opened.get('vm2')!.send(lldp(vm2mac));
  fabric.run();
  assert.equal(opened.get('vm2')!.take().length, 1, 'vm1 may send LLDP');
  assert.equal(opened.get('vm1')!.take().length, 0);
  assert.deepEqual(dp.portCounters('vm2').snapshot().drops, { 'ethertype-not-allowed': 1 }, 'vm2 lists none');

  // Taken away: the agent swaps vm1's port security in place.
  await call('PATCH', '/v1/ports/vm1', { allowedEtherTypes: [] });
  view = (await ModelCache.load(store)).viewFor('h1');
  assert.deepEqual(reconciler.apply(hostStateFromView(view, base)).changed, ['port vm1 (port security)']);
  opened.get('vm1')!.send(lldp(vm1.mac));
  fabric.run();
  assert.deepEqual(dp.portCounters('vm1').snapshot().drops, { 'ethertype-not-allowed': 1 });
});
