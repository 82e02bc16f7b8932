/**
 * A router's subnets and routes and a port's security groups, changed one item at a time
 * through the API (what `weft router set --add-subnet` and `weft port update
 * --remove-security-group` send), and `GET /v1/export`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inProcessApi } from '../../test/support/api.js';

async function setup() {
  const { call } = inProcessApi();
  assert.equal((await call('POST', '/v1/hosts', { name: 'h1', address: '192.0.2.1' })).status, 201);
  for (const [net, cidr] of [['blue', '10.10.0.0/24'], ['red', '10.20.0.0/24'], ['green', '10.30.0.0/24']]) {
    assert.equal((await call('POST', '/v1/networks', { name: net })).status, 201);
    assert.equal((await call('POST', '/v1/subnets', { name: `${net}4`, network: net, cidr })).status, 201);
  }
  return call;
}

test('a router\'s subnets and routes, one at a time; each refusal names what is there', async () => {
  const call = await setup();
  assert.equal((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'] })).status, 201);
  assert.deepEqual((await call('PATCH', '/v1/routers/r1', { addSubnets: ['green4'] })).body.subnets, ['blue4', 'red4', 'green4']);
  assert.deepEqual((await call('PATCH', '/v1/routers/r1', { removeSubnets: ['red4'] })).body.subnets, ['blue4', 'green4']);
  // The subnet left is free for another router at once.
  assert.equal((await call('POST', '/v1/routers', { name: 'r2', subnets: ['red4'] })).status, 201);
  const missing = await call('PATCH', '/v1/routers/r1', { removeSubnets: ['red4'] });
  assert.equal(missing.status, 422);
  assert.equal(missing.body.detail, 'router r1 joins no subnet red4 (it joins: blue4, green4)');
  assert.deepEqual(missing.body.errors, [{ field: 'removeSubnets', message: 'not there' }]);
  const again = await call('PATCH', '/v1/routers/r1', { addSubnets: ['blue4'] });
  assert.equal(again.status, 422);
  assert.equal(again.body.detail, 'router r1 joins subnet blue4 already');
  assert.equal((await call('PATCH', '/v1/routers/r1', { addSubnets: ['red4'] })).status, 409, 'red4 is on r2 now');
  const both = await call('PATCH', '/v1/routers/r1', { subnets: ['blue4'], addSubnets: ['red4'] });
  assert.equal(both.status, 400);
  assert.match(JSON.stringify(both.body), /give subnets \(all of them\), or addSubnets and removeSubnets, not both/);

  assert.deepEqual((await call('PATCH', '/v1/routers/r1', { addRoutes: [{ cidr: '10.40.0.0/24', nextHop: '10.10.0.9' }, { cidr: '10.50.0.0/24', nextHop: '10.30.0.9' }] })).body.routes,
    [{ cidr: '10.40.0.0/24', nextHop: '10.10.0.9' }, { cidr: '10.50.0.0/24', nextHop: '10.30.0.9' }]);
  assert.deepEqual((await call('PATCH', '/v1/routers/r1', { removeRoutes: ['10.40.0.0/24'] })).body.routes, [{ cidr: '10.50.0.0/24', nextHop: '10.30.0.9' }]);
  const route = await call('PATCH', '/v1/routers/r1', { removeRoutes: ['10.60.0.0/24'] });
  assert.equal(route.status, 422);
  assert.equal(route.body.detail, 'router r1 has no route 10.60.0.0/24 (it has: 10.50.0.0/24 via 10.30.0.9)');
  // Leaving a subnet a static route goes through is refused, as replacing the list is.
  assert.equal((await call('PATCH', '/v1/routers/r1', { removeSubnets: ['green4'] })).status, 422);
});

test('a port\'s security groups, one at a time', async () => {
  const call = await setup();
  assert.equal((await call('POST', '/v1/security-groups', { name: 'web' })).status, 201);
  assert.equal((await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' })).status, 201);
  assert.deepEqual((await call('PATCH', '/v1/ports/vm1', { addSecurityGroups: ['web'] })).body.securityGroups, ['default', 'web']);
  assert.deepEqual((await call('PATCH', '/v1/ports/vm1', { removeSecurityGroups: ['default'] })).body.securityGroups, ['web']);
  const nope = await call('PATCH', '/v1/ports/vm1', { addSecurityGroups: ['db'] });
  assert.equal(nope.status, 422, 'a group that does not exist');
  const gone = await call('PATCH', '/v1/ports/vm1', { removeSecurityGroups: ['default'] });
  assert.equal(gone.body.detail, 'port vm1 is in no security group default (it is in: web)');
  const both = await call('PATCH', '/v1/ports/vm1', { securityGroups: [], removeSecurityGroups: ['web'] });
  assert.equal(both.status, 400);
});

test('export: every kind as a file, which apply takes back with nothing to change', async () => {
  const call = await setup();
  assert.equal((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'] })).status, 201);
  assert.equal((await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' })).status, 201);
  const { revision, ...file } = (await call('GET', '/v1/export')).body;
  assert.equal(typeof revision, 'number');
  assert.deepEqual(file.routers, [{ name: 'r1', subnets: ['blue4', 'red4'], routes: [] }]);
  assert.equal(file.hosts, undefined, 'hosts are registered, not applied');
  const planned = await call('POST', '/v1/apply', { resources: file, prune: true, dryRun: true });
  assert.equal(planned.status, 200, JSON.stringify(planned.body));
  assert.deepEqual(planned.body.actions, []);
});
