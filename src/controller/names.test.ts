/**
 * Names as hostile clients choose them: every property name of Object.prototype (and
 * `__proto__`) as a network, host, physical network, security group and port, through the
 * API and the agent's config parser; and names in upper case, which are refused with their
 * lower-case form suggested. A name is either refused with the field named, or an ordinary
 * name: `constructor` never finds what Object.prototype has.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelCache } from './model-cache.js';
import { Keys } from './model.js';
import { inProcessApi } from '../../test/support/api.js';
import { ConfigError, hostStateFrom, loadConfig } from '../agent/config.js';
import { NAME_PATTERN } from '../config/fields.js';

const BUILTINS = [...new Set([...Object.getOwnPropertyNames(Object.prototype), '__proto__'])];

/** The fields a refusal names. */
const fields = (r: { body: { errors?: Array<{ field: string }> } }) => (r.body.errors ?? []).map((e) => e.field);

test('every Object.prototype name as a network, host, physical network, group and port: an ordinary name, or refused naming the field', async () => {
  assert.ok(BUILTINS.includes('constructor') && BUILTINS.includes('__proto__') && BUILTINS.includes('toString'));
  for (const [i, n] of BUILTINS.entries()) {
    const { call, store } = inProcessApi();
    const valid = NAME_PATTERN.test(n);
    const q = JSON.stringify(n);
    const expect = async (r: Promise<{ status: number; body: any }>, field: string, status = 201) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const got = await r;
      if (valid) assert.equal(got.status, status, `${n} as ${field}: ${JSON.stringify(got.body)}`);
      else {
        assert.equal(got.status, 400, `${n} as ${field}: ${JSON.stringify(got.body)}`);
        assert.ok(fields(got).includes(field), `${n} as ${field}: refused naming ${fields(got).join(', ')}`);
      }
      return got;
    };
    // A host without the physical network, and (with the name as a key, sent as such) one with it.
    assert.equal((await call('POST', '/v1/hosts', { name: 'h1', address: '192.0.2.1', physicalNetworks: { other: 'eth9' } })).status, 201);
    await expect(call('POST', '/v1/hosts', `{"name":"hw","address":"192.0.2.2","physicalNetworks":{${q}:"eth1"}}`), `physicalNetworks.${n}`);
    await expect(call('POST', '/v1/hosts', { name: n, address: '192.0.2.3' }), 'name');
    await expect(call('POST', '/v1/networks', { name: n }), 'name');
    await expect(call('POST', '/v1/security-groups', { name: n }), 'name');
    const provider = await expect(call('POST', '/v1/networks', { name: 'ext', provider: { physicalNetwork: n } }), 'provider.physicalNetwork');
    if (!valid) {
      assert.equal((await call('GET', '/v1/hosts/hw')).status, 404, `${n}: a host with a refused key is not half made`);
      continue;
    }
    assert.equal(provider.body.provider.physicalNetwork, n);
    assert.deepEqual((await call('GET', '/v1/hosts/hw')).body.physicalNetworks, JSON.parse(`{${q}:"eth1"}`));
    // h1 has no interface on it: refused; hw has.
    const noUplink = await call('POST', '/v1/ports', { name: 'p1', network: 'ext', host: 'h1' });
    assert.equal(noUplink.status, 422, `${n}: ${JSON.stringify(noUplink.body)}`);
    assert.match(noUplink.body.detail, new RegExp(`host h1 has no interface on physical network ${n}`));
    assert.equal((await call('POST', '/v1/ports', { name: 'p2', network: 'ext', host: 'hw' })).status, 201);
    await expect(call('POST', '/v1/ports', { name: n, network: n, host: 'h1', securityGroups: [n] }), 'name');
    // A router's way out on it goes to the host that has it, never to h1.
    assert.equal((await call('POST', '/v1/subnets', { name: 'ext4', network: 'ext', cidr: '203.0.113.0/24' })).status, 201);
    assert.equal((await call('POST', '/v1/routers', { name: 'r1', externalGateway: { network: 'ext' } })).status, 201);
    const pinned = await call('PATCH', '/v1/routers/r1', { externalGateway: { network: 'ext', host: 'h1' } });
    assert.equal(pinned.status, 422, `${n}: pinned to a host without it`);
    const model = await ModelCache.load(store);
    assert.equal(model.gatewayHost(model.routers.get('r1')!), 'hw', `${n} (#${i})`);
    const uplinks = (h: string) => model.viewFor(h).ports.filter((p) => p.name.startsWith('uplink:'));
    assert.deepEqual(uplinks('h1'), []);
    assert.deepEqual(uplinks('hw').map((p) => p.backend), [{ type: 'uplink', interface: 'eth1' }]);
  }
});

test('every Object.prototype name in what was stored before names were checked as now: never found on Object.prototype', async () => {
  for (const n of BUILTINS) {
    const { call, store } = inProcessApi();
    // Stored as an older controller may have stored it: straight into the store.
    const host = (name: string, address: string, physicalNetworks: Record<string, string>) => ({ name, address, port: 4789, mtu: 1500, physicalNetworks, joinedAt: '2026-01-01T00:00:00.000Z' });
    await store.commit([], [
      { type: 'put', key: Keys.host('h1'), value: host('h1', '192.0.2.1', {}) },
      { type: 'put', key: Keys.host('hw'), value: host('hw', '192.0.2.2', JSON.parse(`{${JSON.stringify(n)}:"eth1"}`)) },
      { type: 'put', key: Keys.network('ext'), value: { name: 'ext', vni: 7, encapsulation: 'vxlan', provider: { physicalNetwork: n }, encryption: 'none' } },
      { type: 'put', key: Keys.vni(7), value: 'ext' },
    ]);
    const r = await call('POST', '/v1/ports', { name: 'p1', network: 'ext', host: 'h1' });
    assert.equal(r.status, 422, `${n}: ${JSON.stringify(r.body)}`);
    assert.equal((await call('POST', '/v1/ports', { name: 'p2', network: 'ext', host: 'hw' })).status, 201, n);
    await call('POST', '/v1/subnets', { name: 'ext4', network: 'ext', cidr: '203.0.113.0/24' });
    assert.equal((await call('POST', '/v1/routers', { name: 'r1', externalGateway: { network: 'ext' } })).status, 201);
    const model = await ModelCache.load(store);
    assert.equal(model.gatewayHost(model.routers.get('r1')!), 'hw', n);
    assert.deepEqual(model.viewFor('h1').ports.filter((p) => p.name.startsWith('uplink:')), [], n);
    assert.deepEqual(model.viewFor('hw').ports.filter((p) => p.name.startsWith('uplink:')).map((p) => p.backend), [{ type: 'uplink', interface: 'eth1' }], n);
  }
});

test('every Object.prototype name in an agent\'s config file: an ordinary name, or refused naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-names-'));
  try {
    for (const n of BUILTINS) {
      const q = JSON.stringify(n);
      const file = join(dir, 'h.yaml');
      writeFileSync(file, [
        `host: ${q}`,
        'underlay: { address: 10.0.0.1 }',
        `networks: [{ name: ${q}, vni: 100 }]`,
        `ports: [{ name: ${q}, network: ${q}, backend: { type: memory } }, { name: t1, trunk: { vlans: { "10": ${q} } }, backend: { type: memory } }]`,
        `physicalNetworks: { ${q}: eth1 }`,
        '',
      ].join('\n'));
      if (NAME_PATTERN.test(n)) {
        const s = loadConfig(file);
        assert.equal(s.host, n);
        assert.deepEqual(s.ports.map((p) => p.name), [n, 't1']);
        assert.ok(Object.hasOwn(s.physicalNetworks, n) && s.physicalNetworks[n] === 'eth1', n);
        continue;
      }
      assert.throws(() => loadConfig(file), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        for (const field of ['host', 'networks[0].name', 'ports[0].name', `physicalNetworks.${n}`]) {
          assert.ok(err.problems.some((p) => p.startsWith(`${field}: `)), `${n}: ${field} not named in ${err.message}`);
        }
        return true;
      }, n);
    }
    // A trunk's VLAN table keyed __proto__ is refused too, not dropped.
    assert.throws(() => hostStateFrom({ host: 'h1', underlay: { address: '10.0.0.1' }, networks: [{ name: 'blue', vni: 1 }], ports: [{ name: 't1', trunk: { vlans: JSON.parse('{"__proto__":"blue"}') }, backend: { type: 'memory' } }] }, 'h.yaml'),
      /ports\[0\]\.trunk\.vlans\.__proto__: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('names are lower case: Blue is refused with blue suggested, in the API and an agent\'s config; what was stored before can still be read and deleted', async () => {
  const { call, store } = inProcessApi();
  const r = await call('POST', '/v1/networks', { name: 'Blue' });
  assert.equal(r.status, 400);
  assert.deepEqual(r.body.errors, [{ field: 'name', message: 'names are lower case: give "blue", not "Blue"' }]);
  const host = await call('POST', '/v1/hosts', { name: 'INH', address: '192.0.2.9' });
  assert.deepEqual(host.body.errors, [{ field: 'name', message: 'names are lower case: give "inh", not "INH"' }]);
  assert.equal((await call('POST', '/v1/networks', { name: 'blue' })).status, 201);
  const port = await call('POST', '/v1/ports', { name: 'vm1', network: 'Blue', host: 'h1' });
  assert.deepEqual(fields(port), ['network']);
  assert.throws(() => hostStateFrom({ host: 'INH', underlay: { address: '10.0.0.1' } }, 'h.yaml'), { message: 'h.yaml: host: names are lower case: give "inh", not "INH"' });
  // Not a name at all: the rule, not a suggestion.
  assert.match((await call('POST', '/v1/networks', { name: 'Blü' })).body.errors[0].message, /^a name of lower-case letters/);

  // A network an older controller stored as Red: shown and deleted by its name.
  await store.commit([], [{ type: 'put', key: Keys.network('Red'), value: { name: 'Red', vni: 9, encapsulation: 'vxlan', encryption: 'none' } }, { type: 'put', key: Keys.vni(9), value: 'Red' }]);
  assert.equal((await call('GET', '/v1/networks/Red')).status, 200);
  assert.equal((await call('DELETE', '/v1/networks/Red')).status, 204);
  assert.equal((await call('GET', '/v1/networks/no%20such')).status, 400);
});
