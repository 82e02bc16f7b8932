/**
 * Views computed from per-network pieces, and deltas, against the views as they were always
 * computed: random sequences of API requests (networks, subnets, ports, trunks, routers with
 * external gateways, floating addresses, port forwards, security groups naming each other,
 * hosts revoked and registered, agents coming and going) on an API over an in-memory store.
 * After every request, for every host:
 * - the incremental model's view equals the view of the old, whole computation
 *   (test/support/legacy-model-cache.ts) fed the same changes;
 * - an agent's copy, brought along by applying each delta in order, equals it too, and so do
 *   the compiled tables its reconciler made of each copy in turn (compared, now and then
 *   and at the end, with the tables a fresh reconciler makes of the full view);
 * - an agent that was away since an earlier revision resumes from the history (the deltas
 *   since, applied in order) to the same view, or is told to take a full state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { apiApp } from '../src/controller/api.js';
import { Applier } from '../src/controller/apply.js';
import { NetworkService } from '../src/controller/service.js';
import { MemoryStore } from '../src/controller/store/memory-store.js';
import { ModelCache } from '../src/controller/model-cache.js';
import { ViewFeeds } from '../src/controller/view-feed.js';
import { applyDelta, type ViewCopy } from '../src/view/view-delta.js';
import { LegacyModelCache } from './support/legacy-model-cache.js';
import { tablesSnapshot } from './support/tables.js';
import { Datapath } from '../src/datapath/datapath.js';
import { MemoryFabric } from '../src/datapath/memory.js';
import { Reconciler } from '../src/agent/reconciler.js';
import { hostStateFromView, type HostState } from '../src/agent/desired-state.js';
import type { HostView } from '../src/view/host-view.js';

/** A host's data path and reconciler, with memory ports (only the tables are compared). */
function dataPlane(fabric: MemoryFabric) {
  const dp = new Datapath({ maxPorts: 16 });
  const reconciler = new Reconciler(dp, (p) => fabric.port(p.name), () => 0);
  const base: HostState = {
    host: '', underlay: { address: '192.0.2.1', port: 4789, genevePort: 6081, tunnelPort: 51820, mtu: 1500 }, networks: [], ports: [], nat: [],
    securityGroups: {}, addressSets: {}, physicalNetworks: { phys: 'eth1' }, limits: { maxPorts: 16, fdbLimit: 64, fdbAgingSeconds: 300 },
  };
  return { dp, apply: (view: HostView) => reconciler.apply(hostStateFromView(view, base)) };
}
type DataPlane = ReturnType<typeof dataPlane>;
const everyTable = (p: DataPlane, view: HostView) => Object.fromEntries(view.networks.map((n) => [n.name, tablesSnapshot(p.dp, n.name)]));

const KEY = (i: number) => Buffer.alloc(32, i).toString('base64');
const NETS = ['blue', 'red', 'green'];
const HOSTS = ['h1', 'h2', 'h3', 'h4'];
const PORTS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'];
const GROUPS = ['g1', 'g2'];

type Request = { method: string; path: string; body?: unknown } | { connect: string; on: boolean };

const name = (xs: string[]) => fc.constantFrom(...xs);
const createNetwork = (n: string) => fc.record({ enc: fc.constantFrom('noise', 'none'), geneve: fc.boolean(), v6: fc.boolean() }).map(({ enc, geneve, v6 }) => ({
  method: 'POST', path: '/v1/networks', body: { name: n, encryption: geneve ? 'none' : enc, ...(geneve ? { encapsulation: 'geneve' } : {}), ...(v6 ? { ipv6: { prefix: `fd00:${NETS.indexOf(n) + 1}::/64` } } : {}) },
}));
/** Most of what the random requests name, made first (some of it, in a random order). */
const preamble: fc.Arbitrary<Request[]> = fc.tuple(...NETS.map(createNetwork)).chain((nets) => fc.shuffledSubarray([
  ...nets,
  { method: 'POST', path: '/v1/networks', body: { name: 'ext', provider: { physicalNetwork: 'phys' } } },
  ...GROUPS.map((g) => ({ method: 'POST', path: '/v1/security-groups', body: { name: g } })),
], { minLength: 6 })).chain((first) => fc.boolean().map((router) => [
  ...first,
  ...NETS.map((n) => ({ method: 'POST', path: '/v1/subnets', body: { name: `${n}4`, network: n, cidr: `10.${NETS.indexOf(n) + 1}.0.0/24` } })),
  { method: 'POST', path: '/v1/subnets', body: { name: 'ext4', network: 'ext', cidr: '203.0.113.0/24' } },
  ...(router ? [{ method: 'POST', path: '/v1/routers', body: { name: 'r1', subnets: ['blue4', 'red4'], externalGateway: { network: 'ext' } } }] : []),
]));
const createPort = fc.record({ p: name(PORTS), n: name([...NETS, 'ext']), h: name(HOSTS), groups: fc.option(fc.subarray(GROUPS), { nil: undefined }), allowed: fc.boolean(), security: fc.boolean() }).map(({ p, n, h, groups, allowed, security }) => ({
  method: 'POST', path: '/v1/ports', body: { name: p, network: n, host: h, ...(groups ? { securityGroups: groups } : {}), ...(allowed ? { allowedAddresses: [{ ip: '10.9.9.9' }] } : {}), ...(security ? {} : { portSecurity: false }) },
}));
const request: fc.Arbitrary<Request> = fc.oneof(
  createPort, createPort, createPort,
  name(NETS).chain(createNetwork),
  fc.constant({ method: 'POST', path: '/v1/networks', body: { name: 'ext', provider: { physicalNetwork: 'phys' } } }),
  name([...NETS, 'ext']).map((n) => ({ method: 'DELETE', path: `/v1/networks/${n}` })),
  fc.record({ n: name(NETS), mtu: fc.constantFrom(1400, null) }).map(({ n, mtu }) => ({ method: 'PATCH', path: `/v1/networks/${n}`, body: { mtu } })),
  fc.record({ n: name(NETS), dhcp: fc.boolean() }).map(({ n, dhcp }) => ({ method: 'POST', path: '/v1/subnets', body: { name: `${n}4`, network: n, cidr: `10.${NETS.indexOf(n) + 1}.0.0/24`, dhcp } })),
  fc.constant({ method: 'POST', path: '/v1/subnets', body: { name: 'ext4', network: 'ext', cidr: '203.0.113.0/24' } }),
  name([...NETS.map((n) => `${n}4`), 'ext4']).map((s) => ({ method: 'DELETE', path: `/v1/subnets/${s}` })),
  fc.record({ p: name(PORTS), native: fc.option(name(NETS), { nil: undefined }), vlan: name(NETS), h: name(HOSTS) }).map(({ p, native, vlan, h }) => ({
    method: 'POST', path: '/v1/ports', body: { name: p, host: h, vlans: [{ vid: 10, network: vlan }], ...(native && native !== vlan ? { network: native } : {}) },
  })),
  fc.record({ p: name(PORTS), h: name(HOSTS) }).map(({ p, h }) => ({ method: 'PATCH', path: `/v1/ports/${p}`, body: { host: h } })),
  fc.record({ p: name(PORTS), groups: fc.subarray(GROUPS) }).map(({ p, groups }) => ({ method: 'PATCH', path: `/v1/ports/${p}`, body: { securityGroups: groups } })),
  name(PORTS).map((p) => ({ method: 'DELETE', path: `/v1/ports/${p}` })),
  fc.record({ r: name(['r1', 'r2']), subnets: fc.subarray(NETS.map((n) => `${n}4`)), ext: fc.constantFrom(undefined, 'auto', 'h3') }).map(({ r, subnets, ext }) => ({
    method: 'POST', path: '/v1/routers', body: { name: r, subnets, ...(ext ? { externalGateway: { network: 'ext', ...(ext === 'auto' ? {} : { host: ext }) } } : {}) },
  })),
  fc.record({ r: name(['r1', 'r2']), ext: fc.constantFrom(null, 'auto', 'h4') }).map(({ r, ext }) => ({
    method: 'PATCH', path: `/v1/routers/${r}`, body: { externalGateway: ext === null ? null : { network: 'ext', ...(ext === 'auto' ? {} : { host: ext }) } },
  })),
  fc.record({ r: name(['r1', 'r2']), s: name(NETS.map((n) => `${n}4`)) }).map(({ r, s }) => ({ method: 'PATCH', path: `/v1/routers/${r}`, body: { addSubnets: [s] } })),
  name(['r1', 'r2']).map((r) => ({ method: 'DELETE', path: `/v1/routers/${r}` })),
  name(PORTS).map((p) => ({ method: 'POST', path: '/v1/floating-ips', body: { name: 'f1', network: 'ext', port: p } })),
  fc.constant({ method: 'DELETE', path: '/v1/floating-ips/f1' }),
  name(PORTS).map((p) => ({ method: 'POST', path: '/v1/port-forwards', body: { name: 'pf1', router: 'r1', protocol: 'tcp', externalPort: 8080, port: p } })),
  fc.constant({ method: 'DELETE', path: '/v1/port-forwards/pf1' }),
  fc.record({ g: name(GROUPS), remote: name(GROUPS) }).map(({ g, remote }) => ({ method: 'POST', path: '/v1/security-groups', body: { name: g, rules: [{ direction: 'ingress', remote: { group: remote } }] } })),
  fc.record({ g: name(GROUPS), remote: name(GROUPS) }).map(({ g, remote }) => ({ method: 'POST', path: `/v1/security-groups/${g}/rules`, body: { direction: 'egress', protocol: 'tcp', ports: { min: 22, max: 22 }, remote: { group: remote } } })),
  name(GROUPS).map((g) => ({ method: 'DELETE', path: `/v1/security-groups/${g}` })),
  name(['h2', 'h5']).map((h) => ({ method: 'POST', path: `/v1/hosts/${h}/revoke` })),
  fc.constant({ method: 'POST', path: '/v1/hosts', body: { name: 'h5', address: '192.0.2.5', tunnelKey: KEY(5), physicalNetworks: { phys: 'eth1' } } }),
  fc.constant({ method: 'DELETE', path: '/v1/hosts/h5' }),
  fc.record({ h: name([...HOSTS, 'h5']), on: fc.boolean() }).map(({ h, on }) => ({ connect: h, on })),
);

test('views from per-network pieces and the deltas applied in order equal the whole views, after any sequence of API changes', { timeout: 240_000 }, async () => {
  let runs = 0;
  await fc.assert(fc.asyncProperty(preamble, fc.array(request, { minLength: 8, maxLength: 40, size: 'max' }), async (first, random) => {
    const requests = [...first, ...random];
    runs++;
    const store = new MemoryStore();
    const app = apiApp({ service: new NetworkService(store), applier: new Applier(store), adminToken: 'admin', agents: { status: () => ({ connected: false }) } });
    const call = (method: string, path: string, body?: unknown) => app.request(path, {
      method, headers: { authorization: 'Bearer admin', ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    for (const [i, h] of HOSTS.entries()) {
      const res = await call('POST', '/v1/hosts', { name: h, address: `192.0.2.${i + 1}`, tunnelKey: KEY(i + 1), ...(i >= 2 ? { physicalNetworks: { phys: 'eth1' } } : {}) });
      assert.equal(res.status, 201);
    }
    const model = await ModelCache.load(store);
    const legacy = await LegacyModelCache.load(store);
    store.subscribe((c) => {
      model.apply(c);
      legacy.apply(c);
    });
    const feeds = new ViewFeeds(model);
    /** Each host's agent: its copy and revision, by deltas. */
    const agents = new Map<string, { revision: number; copy: ViewCopy; plane: DataPlane }>();
    const fabric = new MemoryFabric();
    const fresh = (h: string) => {
      const full = feeds.full(h);
      const plane = dataPlane(fabric);
      plane.apply(full.view);
      agents.set(h, { revision: full.revision, copy: { view: full.view, keys: full.keys, groups: full.groups }, plane });
    };
    for (const h of model.hosts.keys()) fresh(h);
    /** The agents as they were a few requests ago (away since). */
    let away = new Map(agents);
    for (const [step, r] of requests.entries()) {
      if ('connect' in r) {
        model.setConnected(r.connect, r.on);
        legacy.setConnected(r.connect, r.on);
      } else {
        const res = await call(r.method, r.path, r.body);
        if (process.env.WEFT_PROPERTY_DEBUG) console.log(res.status, r.method, r.path, res.status >= 300 ? await res.text() : "");
      }
      for (const [h, text] of feeds.flush()) {
        const a = agents.get(h);
        if (!a) continue;
        const delta = JSON.parse(text) as { revision: number };
        const copy = applyDelta(a.copy, a.revision, delta);
        a.plane.apply(copy.view);
        agents.set(h, { revision: delta.revision, copy, plane: a.plane });
      }
      for (const h of [...agents.keys()]) if (!model.hosts.has(h)) agents.delete(h);
      for (const h of model.hosts.keys()) {
        if (!agents.has(h)) fresh(h);
        const want = legacy.viewFor(h);
        const where = `after ${JSON.stringify(requests.slice(0, step + 1))}, host ${h}`;
        assert.deepStrictEqual(model.viewFor(h), want, `the incremental view ${where}`);
        const a = agents.get(h)!;
        assert.deepStrictEqual(a.copy.view, want, `the agent's copy by deltas ${where}`);
        assert.equal(a.revision, feeds.revisionOf(h));
        const full = feeds.full(h);
        assert.deepStrictEqual([a.copy.keys, a.copy.groups], [full.keys, full.groups], `the agent's keys and address-set parts ${where}`);
        if (step % 7 === 6 || step === requests.length - 1) {
          // A fresh data plane from the full view, against the one brought along by deltas.
          const whole = dataPlane(fabric);
          whole.apply(want);
          assert.deepStrictEqual(everyTable(a.plane, want), everyTable(whole, want), `the tables compiled delta by delta ${where}`);
        }
        const back = away.get(h);
        if (!back) continue;
        const r2 = feeds.since(h, back.revision, feeds.epoch);
        if (r2.kind === 'current') assert.deepStrictEqual(back.copy.view, want, `resumed as current ${where}`);
        if (r2.kind === 'deltas') {
          let copy = back.copy;
          let rev = back.revision;
          for (const t of r2.texts) {
            const d = JSON.parse(t) as { revision: number };
            copy = applyDelta(copy, rev, d);
            rev = d.revision;
          }
          assert.equal(rev, feeds.revisionOf(h));
          assert.deepStrictEqual(copy.view, want, `resumed by ${r2.texts.length} deltas ${where}`);
        }
      }
      if (step % 7 === 6) away = new Map(agents);
    }
  }), { numRuns: Number(process.env.WEFT_PROPERTY_RUNS ?? 60) });
  assert.ok(runs > 0);
});

test('a restarted controller resumes an agent at its revision as current, unless the view depends on where a gateway was placed', async () => {
  const store = new MemoryStore();
  const app = apiApp({ service: new NetworkService(store), applier: new Applier(store), adminToken: 'admin', agents: { status: () => ({ connected: false }) } });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, { method, headers: { authorization: 'Bearer admin', 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${await res.text()}`);
  };
  for (const [i, h] of HOSTS.entries()) await call('POST', '/v1/hosts', { name: h, address: `192.0.2.${i + 1}`, tunnelKey: KEY(i + 1), physicalNetworks: { phys: 'eth1' } });
  await call('POST', '/v1/networks', { name: 'blue' });
  await call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.1.0.0/24' });
  await call('POST', '/v1/networks', { name: 'red' });
  await call('POST', '/v1/networks', { name: 'ext', provider: { physicalNetwork: 'phys' } });
  await call('POST', '/v1/subnets', { name: 'ext4', network: 'ext', cidr: '203.0.113.0/24' });
  await call('POST', '/v1/routers', { name: 'r1', subnets: ['blue4'], externalGateway: { network: 'ext' } });
  await call('POST', '/v1/ports', { name: 'b1', network: 'blue', host: 'h1' });
  await call('POST', '/v1/ports', { name: 'r2', network: 'red', host: 'h2' });
  // The controller starts on this store.
  const model = await ModelCache.load(store);
  const feeds = new ViewFeeds(model);
  const at = model.revision;
  assert.deepEqual(feeds.since('h2', at), { kind: 'current' }, 'h2 (red only) resumes');
  assert.deepEqual(feeds.since('h1', at), { kind: 'full', reason: 'compacted' }, 'h1 sends to r1\'s gateway, which this controller placed afresh');
  assert.deepEqual(feeds.since('h2', at - 1), { kind: 'full', reason: 'compacted' }, 'an older revision: no history');
  assert.deepEqual(feeds.since('h2', at + 0.000001), { kind: 'full', reason: 'compacted' }, 'a fraction of another lifetime (a gateway moved then) means nothing here');
  assert.deepEqual(feeds.since('h2', at, feeds.epoch), { kind: 'current' });
});
