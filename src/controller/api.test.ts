import { test } from 'node:test';
import { generateIdentity, identityFromPem, signAgentRequest } from '../view/agent-auth.js';
import assert from 'node:assert/strict';
import { inProcessApi } from '../../test/support/api.js';

/** An API on an in-memory store, with hosts h1 and h2 registered. */
async function setup() {
  const { call, store, app } = inProcessApi();
  for (const [name, address] of [['h1', '192.0.2.1'], ['h2', '192.0.2.2']]) assert.equal((await call('POST', '/v1/hosts', { name, address, tunnelKey: KEY[name] })).status, 201);
  return { call, store, app };
}

/** Hosts' tunnel public keys (any 32 bytes do for the controller). */
const KEY: Record<string, string> = Object.fromEntries([1, 2, 3, 4].map((i) => [`h${i}`, Buffer.alloc(32, i).toString('base64')]));
/** A remote host of an encrypted network, as views give it. */
const tunnelTo = (address: string, host: string) => ({ address, port: 4793, publicKey: KEY[host] });

test('a network, a subnet and a port: VNI, MAC and IP allocated', async () => {
  const { call } = await setup();
  assert.deepEqual((await call('POST', '/v1/networks', { name: 'blue' })).body, { name: 'blue', vni: 1, encapsulation: 'vxlan', encryption: 'noise' });
  const s = await call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.0.0.0/24' });
  assert.equal(s.status, 201);
  assert.deepEqual(s.body, { name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', gateway: '10.0.0.1', allocation: { start: '10.0.0.2', end: '10.0.0.254' }, dns: [], dhcp: true });
  const p = await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' });
  assert.equal(p.status, 201);
  assert.deepEqual(p.body.ips, ['10.0.0.2']);
  assert.match(p.body.mac, /^02(:[0-9a-f]{2}){5}$/);
  const p2 = await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h2' });
  assert.deepEqual(p2.body.ips, ['10.0.0.3']);
  assert.equal((await call('GET', '/v1/ports')).body.length, 2);
});

test('a bad request is a 400 problem naming each field and why', async () => {
  const { call } = await setup();
  const r = await call('POST', '/v1/networks', { name: 'no spaces', vni: 0, extra: true });
  assert.equal(r.status, 400);
  assert.equal(r.type, 'application/problem+json');
  assert.equal(r.body.title, 'Bad Request');
  assert.deepEqual(r.body.errors.map((e: { field: string }) => e.field).sort(), ['(body)', 'name', 'vni']);
  assert.match(r.body.detail, /vni: Too small/);
  const notJson = await call('POST', '/v1/networks', '{"name":');
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.detail, 'the request body is not JSON');
});

test('conflicts are 409 and rule violations 422, in sentences', async () => {
  const { call } = await setup();
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  const dupVni = await call('POST', '/v1/networks', { name: 'red', vni: 100 });
  assert.equal(dupVni.status, 409);
  assert.equal(dupVni.body.detail, 'VNI 100 is used by network blue');
  assert.equal((await call('POST', '/v1/networks', { name: 'blue' })).body.detail, 'a network named blue exists already');
  await call('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.0.0.0/24' });
  const overlap = await call('POST', '/v1/subnets', { name: 's2', network: 'blue', cidr: '10.0.0.128/25' });
  assert.equal(overlap.status, 409);
  assert.equal(overlap.body.detail, '10.0.0.128/25 overlaps subnet s1 (10.0.0.0/24) on network blue');
  const outside = await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', ips: ['10.9.0.5'] });
  assert.equal(outside.status, 422);
  assert.equal(outside.body.detail, '10.9.0.5 is outside every subnet of network blue (10.0.0.0/24)');
  assert.equal((await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', ips: ['10.0.0.1'] })).body.detail, '10.0.0.1 is the gateway of subnet s1');
  await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', ips: ['10.0.0.5'] });
  const taken = await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1', ips: ['10.0.0.5'] });
  assert.equal(taken.status, 409);
  assert.equal(taken.body.detail, '10.0.0.5 is used by port vm1 on network blue');
  assert.equal((await call('POST', '/v1/ports', { name: 'vm3', network: 'green', host: 'h1' })).status, 422);
});

test('deleting a network with ports is refused, not cascaded', async () => {
  const { call } = await setup();
  await call('POST', '/v1/networks', { name: 'blue' });
  await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' });
  const r = await call('DELETE', '/v1/networks/blue');
  assert.equal(r.status, 409);
  assert.equal(r.body.detail, 'network blue still has 1 port(s): vm1; delete them first');
  assert.equal((await call('DELETE', '/v1/ports/vm1')).status, 204);
  assert.equal((await call('DELETE', '/v1/networks/blue')).status, 204);
  assert.equal((await call('GET', '/v1/networks/blue')).status, 404);
});

test('updates: a port moves and changes address; its old address is free again', async () => {
  const { call } = await setup();
  await call('POST', '/v1/networks', { name: 'blue' });
  await call('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.0.0.0/29' });
  await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' });
  const moved = await call('PATCH', '/v1/ports/vm1', { host: 'h2', ips: ['10.0.0.6'] });
  assert.equal(moved.status, 200);
  assert.deepEqual([moved.body.host, moved.body.ips], ['h2', ['10.0.0.6']]);
  assert.deepEqual((await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1' })).body.ips, ['10.0.0.2']);
  assert.equal((await call('PATCH', '/v1/networks/blue', { vni: 7 })).status, 400, 'the VNI cannot be patched');
});

test('hosts: a join token per host, single use; then the host signs with the identity it enrolled, as itself only; revoked is cut off', async () => {
  const { call, store } = await setup();
  assert.equal((await call('GET', '/v1/networks', undefined, '')).status, 401);
  const h3 = await call('POST', '/v1/hosts', { name: 'h3', address: '10.99.0.3' });
  const h4 = await call('POST', '/v1/hosts', { name: 'h4', address: '10.99.0.4' });
  assert.equal(h3.status, 201);
  assert.match(h3.body.joinToken, /^[A-Za-z0-9_-]{43}$/);
  assert.equal((await call('GET', '/v1/networks', undefined, h3.body.joinToken)).status, 401, 'a join token does not administer');
  const id3 = generateIdentity();
  const id4 = generateIdentity();
  const key3 = identityFromPem(id3.pem).key;
  const join3 = { name: 'h3', address: '10.99.0.3', identityKey: id3.publicKey };
  // h4's token does not enroll h3; without an identity key nothing enrolls.
  assert.match((await call('POST', '/v1/agents/join', join3, h4.body.joinToken)).body.detail, /this join token is not host h3's/);
  assert.equal((await call('POST', '/v1/agents/join', { name: 'h3', address: '10.99.0.3' }, h3.body.joinToken)).status, 400);
  const enrolled = await call('POST', '/v1/agents/join', join3, h3.body.joinToken);
  assert.equal(enrolled.status, 200);
  assert.equal(enrolled.body.identityKey, id3.publicKey);
  assert.equal((await call('POST', '/v1/agents/join', join3, h3.body.joinToken)).status, 401, 'spent');
  // Signed from now on: as h3, for this method, path and body, within two minutes.
  const signedCall = (body: unknown, header: string) => call('POST', '/v1/agents/join', body, header, true);
  const signed = (body: unknown, target = '/v1/agents/join', key = key3, now = Date.now()) => signAgentRequest('h3', key, { method: 'POST', target, body: JSON.stringify(body) }, now);
  assert.equal((await signedCall(join3, signed(join3))).status, 200);
  assert.equal((await signedCall(join3, signed(join3, '/v1/agents/other'))).status, 401, 'another path');
  assert.equal((await signedCall(join3, signed(join3, '/v1/agents/join?x=1'))).status, 401, 'another query');
  assert.equal((await signedCall(join3, signed(join3, undefined, key3, Date.now() - 200_000))).status, 401, 'too old');
  const asH4 = { ...join3, name: 'h4', address: '10.99.0.4' };
  assert.equal((await signedCall(asH4, signed(asH4))).status, 403, 'as another host');
  assert.equal((await signedCall(join3, signed(join3, undefined, identityFromPem(id4.pem).key))).status, 401, 'another key');
  const clashing = { ...join3, address: '192.0.2.1' };
  const clash = await signedCall(clashing, signed(clashing));
  assert.deepEqual([clash.status, clash.body.detail], [409, 'underlay address 192.0.2.1:4789 is used by host h1']);
  // Revoked: refused, nobody's peer; a new token brings it back.
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  await call('POST', '/v1/ports', { name: 'b1', network: 'blue', host: 'h1' });
  await call('POST', '/v1/ports', { name: 'b3', network: 'blue', host: 'h3' });
  await signedCall({ ...join3, tunnelKey: KEY.h3 }, signed({ ...join3, tunnelKey: KEY.h3 }));
  const { ModelCache } = await import('./model-cache.js');
  assert.deepEqual((await ModelCache.load(store)).viewFor('h1').networks[0].remotes, [{ address: '10.99.0.3', port: 4793, publicKey: KEY.h3 }]);
  const revoked = await call('POST', '/v1/hosts/h3/revoke');
  assert.equal(revoked.status, 200);
  assert.ok(revoked.body.revokedAt);
  assert.match((await signedCall(join3, signed(join3))).body.detail, /host h3 is not enrolled \(revoked at/);
  assert.deepEqual((await ModelCache.load(store)).viewFor('h1').networks[0].remotes, [], 'no host takes its tunnel traffic');
  const again = await call('POST', '/v1/hosts/h3/join-token', { ttlSeconds: 600 });
  assert.equal((await call('POST', '/v1/agents/join', join3, again.body.joinToken)).status, 200);
  assert.equal((await call('GET', '/v1/hosts/h3')).body.revokedAt, undefined);
});

test('a signed join is taken once, and for the body it was signed with: a replay, or another body, is refused and the host stays as it was', async () => {
  const { call } = await setup();
  const token = (await call('POST', '/v1/hosts', { name: 'h3', address: '10.99.0.3' })).body.joinToken;
  const id = generateIdentity();
  const key = identityFromPem(id.pem).key;
  const join3 = { name: 'h3', address: '10.99.0.3', tunnelKey: KEY.h3, identityKey: id.publicKey };
  assert.equal((await call('POST', '/v1/agents/join', join3, token)).status, 200);
  const signedCall = (body: unknown, header: string) => call('POST', '/v1/agents/join', body, header, true);
  const header = signAgentRequest('h3', key, { method: 'POST', target: '/v1/agents/join', body: JSON.stringify(join3) });
  assert.equal((await signedCall(join3, header)).status, 200, 'the agent\'s own join');
  // Someone who saw that header sends it again, with their own address and tunnel key.
  const forged = { ...join3, address: '10.99.0.66', tunnelKey: KEY.h4 };
  const replayed = await signedCall(forged, header);
  assert.equal(replayed.status, 401, 'a replay with another body');
  assert.match(replayed.body.detail, /not host h3's for this request and body/);
  const again = await signedCall(join3, header);
  assert.deepEqual([again.status, again.body.detail], [401, 'this signature of host h3 was used before: each signed request is taken once'], 'the same request again');
  // A fresh header for one body does not carry another.
  const fresh = signAgentRequest('h3', key, { method: 'POST', target: '/v1/agents/join', body: JSON.stringify(join3) });
  assert.equal((await signedCall(forged, fresh)).status, 401, 'a valid header with a changed body');
  const host = (await call('GET', '/v1/hosts/h3')).body;
  assert.deepEqual([host.address, host.tunnelKey, host.identityKey], ['10.99.0.3', KEY.h3, id.publicKey], 'the host is as its agent left it');
  // An older agent's signature (no nonce, no body digest) is told apart.
  const old = await signedCall(join3, `WeftHost h3:${Date.now()}:${'A'.repeat(86)}`);
  assert.deepEqual([old.status, old.body.detail], [401, 'the WeftHost signature is not HOST:MILLISECONDS:NONCE:SIGNATURE (an agent older than this controller signs without a nonce: upgrade it)']);
});

test('the OpenAPI document lists every route with its request schema', async () => {
  const { call } = await setup();
  const doc = (await call('GET', '/openapi.json', undefined, '')).body;
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/networks'].post.requestBody.content['application/json'].schema.properties.vni);
  assert.deepEqual(Object.keys(doc.paths['/v1/ports/{name}']).sort(), ['delete', 'get', 'patch']);
});

test('one address, one spelling: leading zeros and IPv4-mapped IPv6 are refused; IPv6 and MACs are stored canonically', async () => {
  const { call } = await setup();
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  const zeroSubnet = await call('POST', '/v1/subnets', { name: 's0', network: 'blue', cidr: '010.62.0.0/24' });
  assert.equal(zeroSubnet.status, 400);
  assert.deepEqual(zeroSubnet.body.errors, [{ field: 'cidr', message: '"010.62.0.0/24" is not an IPv4 prefix such as 10.0.0.0/24' }]);
  assert.equal((await call('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.50.0.0/24' })).status, 201);
  for (const [i, spelling] of ['10.50.0.07', '010.050.000.007', '10.50.0.01'].entries()) {
    const r = await call('POST', '/v1/ports', { name: `z${i}`, network: 'blue', host: 'h1', ips: [spelling] });
    assert.equal(r.status, 400, spelling);
    assert.equal(r.body.errors[0].field, 'ips[0]');
    assert.match(r.body.errors[0].message, /no leading zeros/);
  }
  const mapped = await call('POST', '/v1/ports', { name: 'm', network: 'blue', host: 'h1', ips: ['::ffff:10.50.0.7'] });
  assert.equal(mapped.status, 400);
  assert.deepEqual(mapped.body.errors, [{ field: 'ips[0]', message: '::ffff:10.50.0.7 is an IPv4-mapped IPv6 address; give the IPv4 address 10.50.0.7' }]);

  const p = await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', mac: '02-00-00-00-00-0A', ips: ['10.50.0.7', 'FD00:0:0:0:0:0:0:0007'] });
  assert.equal(p.status, 201);
  assert.equal(p.body.mac, '02:00:00:00:00:0a');
  assert.deepEqual(p.body.ips, ['10.50.0.7', 'fd00::7']);
  const again = await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1', mac: '02:00:00:00:00:0a' });
  assert.equal(again.status, 409, 'the same MAC in another spelling is the same MAC');
  const v6 = await call('POST', '/v1/ports', { name: 'vm3', network: 'blue', host: 'h1', ips: ['fd00::0:7'] });
  assert.equal(v6.status, 409, 'the same IPv6 address in another spelling is taken');
});

test('nonsense values are refused, each naming its field', async () => {
  const { call } = await setup();
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  const refused = async (path: string, body: unknown, field: string, message: RegExp, status = 400) => {
    const r = await call('POST', path, body);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.type, 'application/problem+json');
    assert.ok(r.body.errors.some((e: { field: string; message: string }) => e.field === field && message.test(e.message)), `${field} ${message}: ${JSON.stringify(r.body.errors)}`);
  };
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', mac: '00:00:00:00:00:00' }, 'mac', /all-zero MAC/);
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', mac: '01:00:5e:00:00:01' }, 'mac', /group \(multicast\) MAC/);
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h9' }, 'host', /^no such host$/, 422);
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', backend: { type: 'tap', device: 'tap0', netns: '../../../etc/passwd' } }, 'backend.netns', /without "\/"/);
  for (const device of ['.', '..']) await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', backend: { type: 'tap', device } }, 'backend.device', /cannot be "\." or "\.\."/);
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', backend: { type: 'tap', device: 'a-very-long-name' } }, 'backend.device', /1 to 15/);
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', backend: { type: 'qemu', socket: 'vm.sock' } }, 'backend.socket', /an absolute path/);
  await refused('/v1/ports', { name: 'z', network: 'blue', host: 'h1', backend: { type: 'qemu', socket: '/run/../etc/vm.sock' } }, 'backend.socket', /no "\." or "\.\."/);
  for (const [address, why] of [['0.0.0.0', /this network/], ['224.0.0.1', /multicast/], ['255.255.255.255', /broadcast/], ['127.0.0.1', /loopback/]] as const) {
    await refused('/v1/hosts', { name: 'h5', address }, 'address', why, 422);
  }
  await refused('/v1/hosts', { name: 'h5', address: '192.0.2.5', mtu: 65535 }, 'mtu', /less than or equal to 9216|<=9216/);
  await refused('/v1/hosts', { name: 'h5', address: '192.0.2.5', port: 6081 }, 'genevePort', /a UDP port each/);
  await refused('/v1/subnets', { name: 's1', network: 'blue', cidr: '10.0.0.0/24', allocation: { start: '10.0.0.1', end: '10.0.0.9' } }, 'allocation', /^includes the gateway$/, 422);
  assert.equal((await call('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.0.0.0/24', allocation: { start: '10.0.0.1', end: '10.0.0.9' } })).body.detail,
    'allocation 10.0.0.1-10.0.0.9 includes the gateway 10.0.0.1; leave it out of the range');
  for (const dns of ['0.0.0.0', '255.255.255.255']) await refused('/v1/subnets', { name: 's1', network: 'blue', cidr: '10.0.0.0/24', dns: [dns] }, 'dns[0]', /give a unicast address/);
  const misspelled = await call('POST', '/v1/ports', { name: 'z', network: 'blue', host: 'h3' });
  assert.equal(misspelled.body.detail, 'there is no host named h3 (hosts: h1, h2); register it with weft host create');
});

test('a trunk port: one MAC on each of its networks, addresses per VLAN, and a view with the tags', async () => {
  const { call, store } = await setup();
  for (const [n, vni, cidr] of [['blue', 100, '10.10.0.0/24'], ['red', 200, '10.20.0.0/24'], ['green', 300, '10.30.0.0/24']] as const) {
    await call('POST', '/v1/networks', { name: n, vni });
    await call('POST', '/v1/subnets', { name: `${n}4`, network: n, cidr });
  }
  const t = await call('POST', '/v1/ports', { name: 't1', host: 'h1', network: 'green', vlans: [{ vid: 10, network: 'blue', ips: ['10.10.0.9'] }, { vid: 20, network: 'red' }] });
  assert.equal(t.status, 201, JSON.stringify(t.body));
  assert.deepEqual({ network: t.body.network, ips: t.body.ips, vlans: t.body.vlans }, {
    network: 'green', ips: ['10.30.0.2'],
    vlans: [{ vid: 10, network: 'blue', ips: ['10.10.0.9'] }, { vid: 20, network: 'red', ips: ['10.20.0.2'] }],
  });
  // Its MAC and addresses are claimed on each network.
  assert.equal((await call('POST', '/v1/ports', { name: 'x', host: 'h2', network: 'red', mac: t.body.mac })).status, 409);
  const taken = await call('POST', '/v1/ports', { name: 'x', host: 'h2', network: 'blue', ips: ['10.10.0.9'] });
  assert.equal(taken.status, 409);
  assert.equal(taken.body.detail, '10.10.0.9 is used by port t1 on network blue');
  // The view of its host carries the tags, and each network knows its address there.
  const { ModelCache } = await import('./model-cache.js');
  await call('POST', '/v1/ports', { name: 'b2', host: 'h2', network: 'blue' });
  const view = (await ModelCache.load(store)).viewFor('h1');
  // Port security (on by default): its one MAC, and its addresses on every network.
  // (Its security groups' rules are another test's.)
  assert.deepEqual(view.ports.map(({ securityGroups: _, ...p }) => p), [{
    name: 't1', mode: 'trunk', vlans: { 10: 'blue', 20: 'red' }, nativeNetwork: 'green', backend: { type: 'memory' },
    security: { macs: [t.body.mac], ips: ['10.30.0.2', '10.10.0.9', '10.20.0.2'] },
  }]);
  assert.deepEqual(view.networks.find((n) => n.name === 'blue')!.neighbors!.find((n) => n.port === 't1')!.ips, ['10.10.0.9']);
  const remoteView = (await ModelCache.load(store)).viewFor('h2');
  assert.deepEqual(remoteView.networks.find((n) => n.name === 'blue')!.neighbors!.find((n) => n.mac === t.body.mac)!.ips, ['10.10.0.9']);

  const bad = await call('POST', '/v1/ports', { name: 'y', host: 'h1', vlans: [{ vid: 10, network: 'blue' }, { vid: 10, network: 'red' }, { vid: 4095, network: 'green' }] });
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.body.errors.map((e: { field: string }) => e.field).sort(), ['vlans[1].vid', 'vlans[2].vid']);
  const neither = await call('POST', '/v1/ports', { name: 'y', host: 'h1' });
  assert.equal(neither.body.errors[0].field, 'network');
  // Deleting a network a trunk is on is refused; deleting the trunk frees everything.
  assert.equal((await call('DELETE', '/v1/networks/red')).status, 409);
  assert.equal((await call('DELETE', '/v1/ports/t1')).status, 204);
  assert.equal((await call('POST', '/v1/ports', { name: 'z', host: 'h2', network: 'blue', ips: ['10.10.0.9'], mac: t.body.mac })).status, 201);
});

test('a host\'s view carries each access port\'s DHCP lease from its subnet, and the gateways; DHCP off removes both', async () => {
  const { call, store } = await setup();
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  await call('POST', '/v1/subnets', { name: 's1', network: 'blue', cidr: '10.10.0.0/24', dns: ['10.10.0.53'] });
  const port = (await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' })).body as { mac: string };
  const { ModelCache } = await import('./model-cache.js');
  let view = (await ModelCache.load(store)).viewFor('h1');
  assert.deepEqual({ ...view.ports[0], securityGroups: undefined }, {
    securityGroups: undefined,
    name: 'vm1', mode: 'access', network: 'blue', backend: { type: 'memory' },
    dhcp: { mac: port.mac, ip: '10.10.0.2', prefixLength: 24, gateway: '10.10.0.1', dns: ['10.10.0.53'], leaseSeconds: 3600, hostName: 'vm1' },
    security: { macs: [port.mac], ips: ['10.10.0.2'] },
  });
  assert.deepEqual(view.networks[0].gateways, ['10.10.0.1/24']);
  assert.equal((await call('PATCH', '/v1/subnets/s1', { dhcp: false })).status, 200);
  view = (await ModelCache.load(store)).viewFor('h1');
  assert.equal((view.ports[0] as { dhcp?: unknown }).dhcp, undefined);
  assert.equal(view.networks[0].gateways, undefined);
});

test('routers: join subnets, refuse a subnet on two routers or overlapping ones, and views route between them', async () => {
  const { call, store } = await setup();
  for (const [n, vni, cidr] of [['blue', 100, '10.10.0.0/24'], ['red', 200, '10.20.0.0/24'], ['green', 300, '10.10.0.0/16']] as const) {
    await call('POST', '/v1/networks', { name: n, vni });
    await call('POST', '/v1/subnets', { name: `${n}4`, network: n, cidr });
  }
  assert.equal((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'] })).status, 201);
  const twice = await call('POST', '/v1/routers', { name: 'r2', subnets: ['red4'] });
  assert.deepEqual([twice.status, twice.body.detail], [409, 'subnet red4 is attached to router r1 already']);
  const overlap = await call('PATCH', '/v1/routers/r1', { subnets: ['blue4', 'red4', 'green4'] });
  assert.deepEqual([overlap.status, overlap.body.detail], [409, 'subnet green4 (10.10.0.0/16) overlaps subnet blue4 (10.10.0.0/24) on the same router']);
  assert.equal((await call('POST', '/v1/routers', { name: 'r3', subnets: ['nope'] })).body.errors[0].field, 'subnets[0]');
  assert.equal((await call('DELETE', '/v1/subnets/red4')).body.detail, 'subnet red4 is attached to router r1; detach it first');

  await call('POST', '/v1/ports', { name: 'b1', network: 'blue', host: 'h1' });
  await call('POST', '/v1/ports', { name: 'r2', network: 'red', host: 'h2' });
  const { ModelCache } = await import('./model-cache.js');
  const view = (await ModelCache.load(store)).viewFor('h1');
  assert.deepEqual(view.networks.map((n) => n.name), ['blue', 'red'], 'red is in h1\'s view: h1 routes into it');
  assert.deepEqual(view.networks.find((n) => n.name === 'blue')!.routes, [{ cidr: '10.20.0.0/24', network: 'red' }]);
  assert.deepEqual(view.networks.find((n) => n.name === 'red')!.remotes, [tunnelTo('192.0.2.2', 'h2')]);
  assert.deepEqual((await ModelCache.load(store)).viewFor('h2').networks.find((n) => n.name === 'blue')!.remotes, [tunnelTo('192.0.2.1', 'h1')], 'h2 accepts blue from h1');
  assert.equal((await call('DELETE', '/v1/routers/r1')).status, 204);
  assert.equal((await call('DELETE', '/v1/subnets/red4')).status, 409, 'still has a port');
  assert.deepEqual((await ModelCache.load(store)).viewFor('h1').networks.map((n) => n.name), ['blue']);
});

test('static routes: the next hop must be a host address in one of the router\'s subnets; views carry them on each joined network', async () => {
  const { call, store } = await setup();
  for (const [n, vni, cidr] of [['blue', 100, '10.10.0.0/24'], ['red', 200, '10.20.0.0/24']] as const) {
    await call('POST', '/v1/networks', { name: n, vni });
    await call('POST', '/v1/subnets', { name: `${n}4`, network: n, cidr });
  }
  const outside = await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'], routes: [{ cidr: '10.40.0.0/24', nextHop: '10.30.0.9' }] });
  assert.deepEqual([outside.status, outside.body.errors[0].field, outside.body.detail], [422, 'routes[0].nextHop', 'next hop 10.30.0.9 of route 10.40.0.0/24 is outside every subnet of the router (blue4, red4)']);
  assert.equal((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4'], routes: [{ cidr: '10.40.0.0/24', nextHop: '10.10.0.1' }] })).body.errors[0].message, 'the router itself');
  assert.equal((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'], routes: [{ cidr: '010.40.0.0/24', nextHop: '10.10.0.9' }] })).status, 400);
  assert.equal((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'], routes: [{ cidr: '10.40.0.0/24', nextHop: '10.10.0.9' }] })).status, 201);
  await call('POST', '/v1/ports', { name: 'r2', network: 'red', host: 'h1' });
  const { ModelCache } = await import('./model-cache.js');
  const red = (await ModelCache.load(store)).viewFor('h1').networks.find((n) => n.name === 'red')!;
  assert.deepEqual(red.routes, [{ cidr: '10.10.0.0/24', network: 'blue' }, { cidr: '10.40.0.0/24', network: 'blue', nextHop: '10.10.0.9' }]);
});

test('a way out: an external gateway on a provider network, floating addresses and forwards, with the rules users hit', async () => {
  const { call, store } = await setup();
  await call('POST', '/v1/hosts', { name: 'h3', address: '192.0.2.3', physicalNetworks: { physnet: 'eth1' }, tunnelKey: KEY.h3 });
  await call('POST', '/v1/hosts', { name: 'h4', address: '192.0.2.4', physicalNetworks: { physnet: 'eth1' }, tunnelKey: KEY.h4 });
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  await call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.10.0.0/24' });
  assert.equal((await call('POST', '/v1/networks', { name: 'public', provider: { physicalNetwork: 'physnet' } })).status, 201);
  const taken = await call('POST', '/v1/networks', { name: 'public2', provider: { physicalNetwork: 'physnet' } });
  assert.deepEqual([taken.status, taken.body.detail], [409, 'physical network physnet (flat) is network public\'s']);

  // The way out needs a provider network with a subnet, and a host on it when pinned.
  const overlay = await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4'], externalGateway: { network: 'blue' } });
  assert.deepEqual([overlay.status, overlay.body.errors[0].field], [422, 'externalGateway.network']);
  assert.match((await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4'], externalGateway: { network: 'public' } })).body.detail, /network public has no subnet/);
  await call('POST', '/v1/subnets', { name: 'public4', network: 'public', cidr: '203.0.113.0/24', gateway: '203.0.113.1' });
  const pinned = await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4'], externalGateway: { network: 'public', host: 'h1' } });
  assert.deepEqual([pinned.status, pinned.body.detail], [422, 'host h1 has no interface on physical network physnet, which network public is on; give its agent --physical-network physnet=INTERFACE']);
  const r1 = await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4'], externalGateway: { network: 'public' } });
  assert.equal(r1.status, 201);
  assert.equal(r1.body.externalGateway.ip, '203.0.113.2', 'allocated from the subnet');
  const routed = await call('POST', '/v1/subnets', { name: 'public6', network: 'public', cidr: '198.51.100.0/24' });
  assert.equal(routed.status, 201);
  assert.match((await call('POST', '/v1/routers', { name: 'r2', subnets: ['public6'] })).body.detail, /provider network public, whose router is on the physical network/);

  // Floating addresses and forwards: only for ports behind the router; one each.
  await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', ips: ['10.10.0.5'] });
  await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h2', ips: ['10.10.0.6'] });
  const f = await call('POST', '/v1/floating-ips', { name: 'f1', network: 'public', port: 'vm1', address: '203.0.113.2' });
  assert.deepEqual([f.status, f.body.detail], [409, '203.0.113.2 is in use on network public']);
  assert.equal((await call('POST', '/v1/floating-ips', { name: 'f1', network: 'public', port: 'vm1' })).body.address, '203.0.113.3');
  assert.equal((await call('POST', '/v1/floating-ips', { name: 'f2', network: 'public', port: 'vm1' })).body.detail, 'port vm1 has a floating address already');
  assert.equal((await call('POST', '/v1/port-forwards', { name: 'web', router: 'r1', protocol: 'tcp', externalPort: 8080, port: 'vm2', internalPort: 80 })).status, 201);
  const twice = await call('POST', '/v1/port-forwards', { name: 'web2', router: 'r1', protocol: 'tcp', externalPort: 8080, port: 'vm1' });
  assert.deepEqual([twice.status, twice.body.detail], [409, 'tcp/8080 of router r1 is forwarded already (by web)']);
  assert.equal((await call('DELETE', '/v1/ports/vm1')).body.detail, 'port vm1 has floating address f1; delete it first');
  assert.equal((await call('PATCH', '/v1/routers/r1', { externalGateway: null })).body.detail, 'router r1 still has port forwards: web; delete them first');

  // The views: the gateway host (placed on h3, the first that can hold it) translates; the
  // others send to it over the network's tunnel.
  const { ModelCache } = await import('./model-cache.js');
  const model = await ModelCache.load(store);
  const h3 = model.viewFor('h3');
  assert.deepEqual(h3.networks.map((n) => n.name), ['blue', 'public']);
  assert.deepEqual(h3.networks.find((n) => n.name === 'blue')!.external, { router: 'r1' });
  assert.deepEqual(h3.nat, [{
    router: 'r1', network: 'public', address: '203.0.113.2/24', mac: r1.body.externalGateway.mac, nextHop: '203.0.113.1',
    floating: [{ outside: '203.0.113.3', inside: '10.10.0.5' }], forwards: [{ protocol: 'tcp', port: 8080, inside: '10.10.0.6', insidePort: 80 }],
    inside: [{ cidr: '10.10.0.0/24', network: 'blue' }], limit: 65536,
  }]);
  assert.deepEqual(h3.ports.map((p) => [p.name, p.backend]), [['uplink:physnet', { type: 'uplink', interface: 'eth1' }]]);
  assert.deepEqual(model.viewFor('h1').networks.find((n) => n.name === 'blue')!.external, { router: 'r1', remote: tunnelTo('192.0.2.3', 'h3') });
  // h3's agent is away while h4's is connected: the gateway moves to h4, and back it stays.
  assert.ok(model.setConnected('h4', true).has('h1'), 'the hosts sending to the gateway are told');
  assert.equal(model.gatewayHost(model.routers.get('r1')!), 'h4');
  model.setConnected('h3', true);
  assert.equal(model.gatewayHost(model.routers.get('r1')!), 'h4', 'it stays where it is');
  model.setConnected('h4', false);
  assert.equal(model.gatewayHost(model.routers.get('r1')!), 'h3');
});

test('a network\'s IPv6 prefix: a /64, canonical; its ports\' SLAAC addresses are in the views, and routes to the other networks\' prefixes', async () => {
  const { call, store } = await setup();
  const wide = await call('POST', '/v1/networks', { name: 'blue', ipv6: { prefix: 'fd00:10::/48' } });
  assert.deepEqual([wide.status, wide.body.errors[0].field], [400, 'ipv6.prefix']);
  assert.match(wide.body.detail, /a network's IPv6 prefix is a \/64/);
  assert.match((await call('POST', '/v1/networks', { name: 'blue', ipv6: { prefix: 'fd00:10::1/64' } })).body.detail, /host bits set; the prefix is fd00:10::\/64/);
  assert.deepEqual((await call('POST', '/v1/networks', { name: 'blue', vni: 100, ipv6: { prefix: 'FD00:0010:0000::/64' } })).body.ipv6, { prefix: 'fd00:10::/64', dns: [] });
  await call('POST', '/v1/networks', { name: 'red', vni: 200, ipv6: { prefix: 'fd00:20::/64' } });
  for (const [n, cidr] of [['blue', '10.10.0.0/24'], ['red', '10.20.0.0/24']]) await call('POST', '/v1/subnets', { name: `${n}4`, network: n, cidr });
  await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4', 'red4'] });
  await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:01' });
  const { ModelCache } = await import('./model-cache.js');
  const blue = (await ModelCache.load(store)).viewFor('h1').networks.find((n) => n.name === 'blue')!;
  assert.deepEqual(blue.ipv6, { prefix: 'fd00:10::/64', dns: [], routed: true });
  assert.deepEqual(blue.neighbors![0].ips, ['10.10.0.2', 'fd00:10::ff:fe00:1']);
  assert.deepEqual(blue.routes, [{ cidr: '10.20.0.0/24', network: 'red' }, { cidr: 'fd00:20::/64', network: 'red' }]);
});

test('security groups: the default group for new ports, rules with remote groups turned into members\' addresses, and the refusals', async () => {
  const { call, store } = await setup();
  await call('POST', '/v1/networks', { name: 'blue', vni: 100 });
  await call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.10.0.0/24' });
  const bad = await call('POST', '/v1/security-groups', { name: 'web', rules: [{ direction: 'ingress', protocol: 'icmp', ports: { min: 80, max: 80 } }] });
  assert.deepEqual([bad.status, bad.body.errors[0].field], [400, 'rules[0].ports']);
  const noGroup = await call('POST', '/v1/security-groups', { name: 'web', rules: [{ direction: 'ingress', remote: { group: 'admins' } }] });
  assert.deepEqual([noGroup.status, noGroup.body.detail], [422, 'there is no security group named admins, which a rule names as its remote']);
  const web = await call('POST', '/v1/security-groups', { name: 'web', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 }, remote: { cidr: '192.0.2.0/24' } }] });
  assert.equal(web.status, 201);
  // A port without groups gets default, made on first use; one naming a missing group is refused.
  const vm1 = (await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', ips: ['10.10.0.5'] })).body;
  assert.deepEqual(vm1.securityGroups, ['default']);
  assert.equal((await call('GET', '/v1/security-groups/default')).body.rules.length, 4);
  assert.match((await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h2', securityGroups: ['nope'] })).body.detail, /^there is no security group named nope \(groups: /);
  await call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h2', ips: ['10.10.0.6'], securityGroups: ['default', 'web'] });
  const { ModelCache } = await import('./model-cache.js');
  const view = (await ModelCache.load(store)).viewFor('h2');
  assert.deepEqual(view.ports[0].securityGroups, ['default', 'web']);
  const any = { protocol: -1, portMin: -1, portMax: -1, icmpType: -1, icmpCode: -1 };
  // Each group's rules once per view, however many ports are in it.
  assert.deepEqual(view.securityGroups, {
    default: [
      { direction: 'ingress', ipv6: false, ...any, remote: null, remoteGroup: 'default' },
      { direction: 'egress', ipv6: false, ...any, remote: null },
      { direction: 'ingress', ipv6: true, ...any, remote: null, remoteGroup: 'default' },
      { direction: 'egress', ipv6: true, ...any, remote: null },
    ],
    web: [{ direction: 'ingress', ipv6: false, protocol: 6, portMin: 80, portMax: 80, icmpType: -1, icmpCode: -1, remote: ['192.0.2.0/24'] }],
  });
  // The members' addresses, once per view for every rule naming the group.
  assert.deepEqual(view.addressSets, { default: ['10.10.0.5', '10.10.0.6'] });
  // A rule added reaches the views; a group in use, or named by another's rule, stays.
  const added = await call('POST', '/v1/security-groups/web/rules', { direction: 'ingress', protocol: 'icmp', icmp: { type: 8 } });
  assert.equal(added.status, 201);
  assert.equal((await ModelCache.load(store)).viewFor('h2').securityGroups!.web.length, 2);
  assert.equal((await call('DELETE', '/v1/security-groups/web')).body.detail, 'security group web is used by port(s) vm2; take it off them first');
  assert.equal((await call('DELETE', '/v1/security-groups/default')).status, 409);
  const id = added.body.rules[1].id;
  assert.equal((await call('DELETE', `/v1/security-groups/web/rules/${id}`)).body.rules.length, 1);
  assert.equal((await call('DELETE', `/v1/security-groups/web/rules/${id}`)).status, 404);
});

test('encryption: on by default for VXLAN overlay networks, plain where it cannot be, and views name each peer by key', async () => {
  const { call, store } = await setup();
  assert.equal((await call('POST', '/v1/networks', { name: 'blue', vni: 100 })).body.encryption, 'noise');
  assert.equal((await call('POST', '/v1/networks', { name: 'red', vni: 200, encapsulation: 'geneve' })).body.encryption, 'none');
  assert.equal((await call('POST', '/v1/networks', { name: 'plain', vni: 300, encryption: 'none' })).body.encryption, 'none');
  const geneve = await call('POST', '/v1/networks', { name: 'g', vni: 400, encapsulation: 'geneve', encryption: 'noise' });
  assert.deepEqual([geneve.status, geneve.body.detail], [422, 'network g cannot be encrypted: encrypted tunnels carry VXLAN; geneve is for interoperating with other VTEPs; give encryption none']);
  const badKey = await call('POST', '/v1/hosts', { name: 'h9', address: '192.0.2.9', tunnelKey: 'not a key' });
  assert.deepEqual([badKey.status, badKey.body.errors[0].field], [400, 'tunnelKey']);
  // h3 has no tunnel key (an agent from before encryption): it is nobody's encrypted peer.
  await call('POST', '/v1/hosts', { name: 'h3', address: '192.0.2.3' });
  for (const [port, network, host] of [['b1', 'blue', 'h1'], ['b2', 'blue', 'h2'], ['b3', 'blue', 'h3'], ['p1', 'plain', 'h1'], ['p3', 'plain', 'h3']]) {
    assert.equal((await call('POST', '/v1/ports', { name: port, network, host })).status, 201);
  }
  // An administrator registering h2 again does not lose the key its agent reported.
  await call('POST', '/v1/hosts', { name: 'h2', address: '192.0.2.2' });
  const { ModelCache } = await import('./model-cache.js');
  const view = (await ModelCache.load(store)).viewFor('h1');
  const blue = view.networks.find((n) => n.name === 'blue')!;
  assert.equal(blue.encryption, 'noise');
  assert.deepEqual(blue.remotes, [tunnelTo('192.0.2.2', 'h2')]);
  const plain = view.networks.find((n) => n.name === 'plain')!;
  assert.equal(plain.encryption, undefined);
  assert.deepEqual(plain.remotes, [{ address: '192.0.2.3', port: 4789 }]);
  assert.deepEqual((await call('GET', '/v1/networks')).body.map((n: { name: string; encryption: string }) => [n.name, n.encryption]), [['blue', 'noise'], ['plain', 'none'], ['red', 'none']]);
});

test('a list is as the store\'s revision says: asked again with its ETag, 304 until something changes', async () => {
  const { call, app } = await setup();
  const get = (path: string, tag?: string) => app.request(path, { headers: { authorization: 'Bearer admin-secret', ...(tag ? { 'if-none-match': tag } : {}) } });
  await call('POST', '/v1/networks', { name: 'blue' });
  const first = await get('/v1/networks');
  const tag = first.headers.get('etag')!;
  assert.match(tag, /^"r\d+"$/);
  assert.equal((await first.json()).length, 1);
  const again = await get('/v1/networks', tag);
  assert.equal(again.status, 304);
  assert.equal(await again.text(), '');
  assert.equal((await get('/v1/ports', tag)).status, 304, 'every list of the store shares its revision');
  await call('POST', '/v1/networks', { name: 'red' });
  const changed = await get('/v1/networks', tag);
  assert.equal(changed.status, 200);
  assert.notEqual(changed.headers.get('etag'), tag);
  assert.equal((await changed.json()).length, 2);
  assert.equal((await get('/v1/hosts', tag)).status, 200, 'hosts carry their agents\' reports: never 304');
  assert.equal((await get('/v1/networks', 'W/"other"')).status, 200);
});
