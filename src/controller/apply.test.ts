import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Applier, applyRequest, exportResources, plan, type ApplyResources } from './apply.js';
import { ApiError, NetworkService } from './service.js';
import { MemoryStore } from './store/memory-store.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';

const current = {
  networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan' as const }, { name: 'old', vni: 7, encapsulation: 'vxlan' as const }],
  subnets: [{ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', gateway: '10.0.0.1', allocation: { start: '10.0.0.2', end: '10.0.0.254' }, dns: [] }],
  ports: [
    { name: 'vm1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:01', ips: ['10.0.0.2'], backend: { type: 'memory' as const } },
    { name: 'gone', network: 'old', host: 'h1', mac: '02:00:00:00:00:09', ips: [], backend: { type: 'memory' as const } },
  ],
  hosts: [{ name: 'h1', address: '192.0.2.1', port: 4789, mtu: 1500, joinedAt: '' }, { name: 'h2', address: '192.0.2.2', port: 4789, mtu: 1500, joinedAt: '' }],
  routers: [{ name: 'r0', subnets: ['blue4'] }],
  floatingIps: [],
  portForwards: [],
  securityGroups: [],
};

/** A file as the API receives it (defaults filled in by the schema). */
const file = (resources: unknown, more: object = {}) => applyRequest.parse({ resources, ...more });

describe('the plan', () => {
  test('what export gives back plans nothing, whatever the resources hold (trunks, providers, gateways, NAT, groups)', () => {
    const everything = {
      ...current,
      networks: [...current.networks, { name: 'red', vni: 200, encapsulation: 'geneve' as const, mtu: 1400, encryption: 'none' as const, ipv6: { prefix: 'fd00:20::/64', dns: [] } },
        { name: 'public', vni: 300, encapsulation: 'vxlan' as const, provider: { physicalNetwork: 'physnet1', vlan: 30 } }],
      subnets: [...current.subnets, { name: 'pub4', network: 'public', cidr: '203.0.113.0/24', gateway: '203.0.113.1', allocation: { start: '203.0.113.10', end: '203.0.113.99' }, dns: ['192.0.2.53'], domain: 'example.internal', dhcp: false }],
      routers: [{ name: 'r0', subnets: ['blue4'], routes: [{ cidr: '10.40.0.0/24', nextHop: '10.0.0.9' }], externalGateway: { network: 'public', ip: '203.0.113.2', mac: '02:00:00:00:aa:01', host: 'h2' } }],
      ports: [...current.ports,
        { name: 'trunk', host: 'h1', mac: '02:00:00:00:00:02', ips: [], vlans: [{ vid: 10, network: 'blue', ips: ['10.0.0.3'] }], backend: { type: 'tap' as const, device: 'eth0', netns: 'vm2' }, portSecurity: false },
        { name: 'vm3', network: 'blue', host: 'h2', mac: '02:00:00:00:00:03', ips: ['10.0.0.4'], backend: { type: 'qemu' as const, socket: '/run/weft/vm3.sock' }, allowedAddresses: [{ ip: '10.0.0.100', mac: '02:00:00:00:00:33' }], securityGroups: ['web'], connectionLimit: 100 }],
      securityGroups: [{ name: 'web', description: 'the web', rules: [{ id: 'a1b2c3d4', direction: 'ingress' as const, ethertype: 'ipv4' as const, protocol: 'tcp' as const, ports: { min: 80, max: 80 }, remote: { cidr: '0.0.0.0/0' } }] }],
      floatingIps: [{ name: 'f1', network: 'public', address: '203.0.113.20', port: 'vm3' }],
      portForwards: [{ name: 'web', router: 'r0', protocol: 'tcp' as const, externalPort: 8080, port: 'vm3', internalPort: 80 }],
    };
    const exported = exportResources(everything);
    assert.doesNotMatch(JSON.stringify(exported), /a1b2c3d4|02:00:00:00:aa:01/, 'nothing the controller adds: a rule\'s id, a gateway\'s MAC');
    // Through the file's own schema, as weft apply reads it back.
    const back = file(JSON.parse(JSON.stringify(exported)), { prune: true });
    assert.deepEqual(plan(everything, back.resources, true), { actions: [], kept: [] });
  });

  test('creates what is missing, changes what differs, and keeps what the file leaves out', () => {
    const req = file({
      networks: [{ name: 'blue', vni: 100, mtu: 1400 }, { name: 'red', encapsulation: 'geneve' }],
      ports: [{ name: 'vm1', network: 'blue', host: 'h2', ips: ['10.0.0.2'] }, { name: 'vm2', network: 'red', host: 'h1' }],
    });
    const { actions, kept } = plan(current, req.resources, false);
    assert.deepEqual(actions.map((a) => a.text), [
      '+ network red (vni allocated, geneve)',
      '+ port vm2 (red on h1)',
      '~ network blue: mtu auto -> 1400',
      '~ port vm1: host h1 -> h2',
    ]);
    assert.deepEqual(actions.find((a) => a.name === 'vm1')!.body, { host: 'h2' });
    assert.deepEqual(kept, [{ kind: 'networks', name: 'old' }, { kind: 'ports', name: 'gone' }]);
  });

  test('with prune, what the file leaves out is deleted, ports before their networks', () => {
    const req = file({ networks: [{ name: 'blue', vni: 100 }], ports: [{ name: 'vm1', network: 'blue', host: 'h1', ips: ['10.0.0.2'] }] });
    assert.deepEqual(plan(current, req.resources, true).actions.map((a) => a.text), ['- port gone', '- network old']);
  });

  test('kinds the file does not list are left alone; an unchanged world plans nothing', () => {
    const subnets = current.subnets.map(({ name, network, cidr, gateway, allocation, dns }) => ({ name, network, cidr, gateway, allocation, dns }));
    assert.deepEqual(plan(current, file({ subnets }).resources, true), { actions: [], kept: [] });
  });

  test('every problem is named at once, by field, before anything happens', () => {
    const req = file({
      networks: [{ name: 'blue', vni: 101 }, { name: 'old', encapsulation: 'geneve' }],
      ports: [{ name: 'vm7', network: 'nowhere', host: 'h9' }],
    });
    assert.throws(() => plan(current, req.resources, false), (err: ApiError) => {
      assert.equal(err.status, 422);
      assert.deepEqual(err.errors.map((e) => e.field), ['networks[0].vni', 'networks[1].encapsulation', 'ports[0].network', 'ports[0].host']);
      assert.match(err.message, /networks\[0\]\.vni: vni cannot change in place \(100 -> 101\); delete it first/);
      assert.match(err.message, /ports\[0\]\.network: network nowhere is neither in the file nor on the controller/);
      assert.match(err.message, /ports\[0\]\.host: there is no host named h9 \(hosts: h1, h2\); register it with weft host create/);
      return true;
    });
  });

  test('a port on a network that the same apply prunes is refused', () => {
    const req = file({ networks: [{ name: 'blue', vni: 100 }], ports: [{ name: 'gone', network: 'old', host: 'h1' }] });
    assert.throws(() => plan(current, req.resources, true), /ports\[0\]\.network: network old is deleted by this apply/);
  });

  test('trunk ports: created with their tags, and the tags do not change in place', () => {
    const req = file({ ports: [{ name: 't1', host: 'h1', vlans: [{ vid: 10, network: 'blue' }] }, { name: 'vm1', network: 'blue', host: 'h1', ips: ['10.0.0.2'] }, { name: 'gone', network: 'old', host: 'h1', vlans: [{ vid: 20, network: 'blue' }] }] });
    assert.throws(() => plan(current, req.resources, false), (err: ApiError) => {
      assert.deepEqual(err.errors.map((e) => e.field), ['ports[2].vlans']);
      return true;
    });
    const ok = file({ ports: [{ name: 't1', host: 'h1', network: 'old', vlans: [{ vid: 10, network: 'blue' }, { vid: 20, network: 'red' }] }] });
    assert.throws(() => plan(current, ok.resources, false), /ports\[0\]\.vlans\[1\]\.network: network red is neither in the file nor on the controller/);
    const fine = file({ ports: [{ name: 't1', host: 'h1', network: 'old', vlans: [{ vid: 10, network: 'blue' }] }] });
    assert.deepEqual(plan(current, fine.resources, false).actions.map((a) => a.text), ['+ port t1 (trunk 10:blue native old on h1)']);
  });

  test('routers: created after their subnets, changed in place, deleted before them; subnets they name must exist', () => {
    const req = file({
      subnets: [{ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', gateway: '10.0.0.1', allocation: { start: '10.0.0.2', end: '10.0.0.254' } }, { name: 'red4', network: 'blue', cidr: '10.1.0.0/24' }],
      routers: [{ name: 'r0', subnets: ['blue4', 'red4'], routes: [{ cidr: '10.9.0.0/16', nextHop: '10.0.0.9' }] }, { name: 'r1', subnets: [] }],
    });
    assert.deepEqual(plan(current, req.resources, false).actions.map((a) => a.text), ['+ subnet red4 (10.1.0.0/24 on blue)', '+ router r1 (no subnets)', '~ router r0: subnets, routes']);
    const prune = file({ subnets: [], routers: [] });
    assert.deepEqual(plan(current, prune.resources, true).actions.map((a) => a.text), ['- router r0', '- subnet blue4']);
    const missing = file({ routers: [{ name: 'r0', subnets: ['green4'] }] });
    assert.throws(() => plan(current, missing.resources, false), /routers\[0\]\.subnets\[0\]: subnet green4 is neither in the file nor on the controller/);
  });

  test('two resources of one kind with the same name are refused by the file\'s schema', () => {
    const r = applyRequest.safeParse({ resources: { networks: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] } });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues.map((i) => [i.path.join('.'), i.message]), [['resources.networks.2.name', 'a is named already by networks[0]']]);
  });
});

function stores(): Array<{ name: string; open(): { store: Store; done(): Promise<void> } }> {
  return [
    { name: 'memory', open: () => { const store = new MemoryStore(); return { store, done: () => store.close() }; } },
    {
      name: 'SQLite file',
      open: () => {
        const dir = mkdtempSync(join(tmpdir(), 'weft-apply-'));
        const store = new SqliteStore(join(dir, 'weft.db'));
        return { store, done: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
      },
    },
  ];
}

for (const kind of stores()) {
  describe(`apply on a ${kind.name} store`, () => {
    const withWorld = (body: (s: { store: Store; service: NetworkService; applier: Applier }) => Promise<void>) => async () => {
      const { store, done } = kind.open();
      try {
        const service = new NetworkService(store);
        await service.registerHost({ name: 'h1', address: '192.0.2.1', port: 4789, genevePort: 6081, mtu: 1500 });
        await service.registerHost({ name: 'h2', address: '192.0.2.2', port: 4789, genevePort: 6081, mtu: 1500 });
        await body({ store, service, applier: new Applier(store) });
      } finally {
        await done();
      }
    };

    test('security groups whose rules name each other, and ports in them, in one apply; a rule changed in place keeps the others', withWorld(async ({ service, applier }) => {
      const groups: Array<{ name: string; rules: Array<Record<string, unknown>> }> = [
        { name: 'web', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 }, remote: { group: 'admins' } }] },
        { name: 'admins', rules: [{ direction: 'egress' }] },
      ];
      const doc = { networks: [{ name: 'blue', vni: 100 }], securityGroups: groups, ports: [{ name: 'vm1', network: 'blue', host: 'h1', securityGroups: ['web', 'admins'] }] };
      const r = await applier.apply(file(doc));
      assert.deepEqual(r.actions.map((a) => a.text), ['+ security-group web', '+ security-group admins', '+ network blue (vni 100, vxlan)', '+ port vm1 (blue on h1)', '  its rules: 1', '  its rules: 1']);
      assert.deepEqual((await service.getPort('vm1')).securityGroups, ['web', 'admins']);
      const ruleId = (await service.getSecurityGroup('admins')).rules[0].id;
      groups[0].rules.push({ direction: 'ingress', protocol: 'icmp' });
      const again = await applier.apply(file(doc));
      assert.deepEqual(again.actions.map((a) => a.text), ['~ security-group web: rules (1 -> 2)']);
      assert.equal((await service.getSecurityGroup('web')).rules.length, 2);
      assert.equal((await service.getSecurityGroup('admins')).rules[0].id, ruleId, 'an unchanged group keeps its rules');
      assert.deepEqual((await applier.apply(file(doc))).actions, []);
    }));

    test('a file whose fourth resource is refused leaves nothing behind', withWorld(async ({ store, applier }) => {
      const before = await store.revision();
      const req = file({
        networks: [{ name: 'blue', vni: 100 }],
        subnets: [{ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24' }],
        ports: [{ name: 'vm1', network: 'blue', host: 'h1' }, { name: 'vm2', network: 'blue', host: 'h2', ips: ['10.9.9.9'] }],
      });
      await assert.rejects(applier.apply(req), (err: ApiError) => {
        assert.equal(err.status, 422);
        assert.equal(err.message, 'port vm2: 10.9.9.9 is outside every subnet of network blue (10.0.0.0/24); nothing was changed');
        assert.deepEqual(err.errors.map((e) => e.field), ['ports[1].ips[0]']);
        return true;
      });
      assert.equal(await store.revision(), before, 'no commit');
      assert.deepEqual(await store.list('/networks/'), []);
      assert.deepEqual(await store.list('/index/'), []);
    }));

    test('a dry run checks every rule and changes nothing; the same plan then lands in one commit', withWorld(async ({ store, applier, service }) => {
      const resources: ApplyResources = {
        networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan' }],
        subnets: [{ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', dns: [], dhcp: true }],
        ports: [{ name: 'vm1', network: 'blue', host: 'h1' }, { name: 'vm2', network: 'blue', host: 'h2' }],
      };
      const before = await store.revision();
      const dry = await applier.apply(file(resources, { dryRun: true }));
      assert.equal(dry.applied, false);
      assert.equal(dry.actions.length, 4);
      assert.equal(await store.revision(), before);
      const done = await applier.apply(file(resources, { planDigest: dry.planDigest }));
      assert.equal(done.applied, true);
      assert.equal(done.revision, before + 1, 'one commit');
      assert.deepEqual((await service.list<{ name: string; ips: string[] }>('ports')).map((p) => [p.name, p.ips]), [['vm1', ['10.0.0.2']], ['vm2', ['10.0.0.3']]]);
      const again = await applier.apply(file(resources));
      assert.deepEqual([again.actions, again.applied, again.revision], [[], false, before + 1]);
    }));

    test('an apply allocates the addresses single creates would: the lowest free, holes first', withWorld(async ({ applier, service }) => {
      await service.createNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
      await service.createSubnet({ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', allocation: { start: '10.0.0.10', end: '10.0.0.15' }, dns: [], dhcp: true });
      for (const name of ['a', 'b', 'c']) await service.createPort({ name, network: 'blue', host: 'h1', backend: { type: 'memory' }, portSecurity: true, allowedAddresses: [], allowedEtherTypes: [] });
      await service.deletePort('b');
      const ports = ['x', 'y', 'z'].map((name) => ({ name, network: 'blue', host: 'h1' }));
      // In file order, as single creates would go: 13 is taken first, by name.
      await applier.apply(file({ ports: [{ name: 'fixed', network: 'blue', host: 'h1', ips: ['10.0.0.13'] }, { name: 'a', network: 'blue', host: 'h1' }, { name: 'c', network: 'blue', host: 'h1' }, ...ports] }));
      const ips = Object.fromEntries((await service.list<{ name: string; ips: string[] }>('ports')).map((p) => [p.name, p.ips[0]]));
      assert.deepEqual(ips, { a: '10.0.0.10', c: '10.0.0.12', fixed: '10.0.0.13', x: '10.0.0.11', y: '10.0.0.14', z: '10.0.0.15' });
      // The range is full now: one more is refused by name, and nothing of its file lands.
      await assert.rejects(applier.apply(file({ ports: [{ name: 'w', network: 'blue', host: 'h1' }] })),
        (err: ApiError) => err.status === 409 && err.message === 'port w: network blue has no free address left in blue4; nothing was changed');
    }));

    test('creates at once are each given their own address, the lowest free; one an apply frees is given again', withWorld(async ({ applier, service }) => {
      await service.createNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
      await service.createSubnet({ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', dns: [], dhcp: true });
      const port = (name: string) => ({ name, network: 'blue', host: 'h1', backend: { type: 'memory' as const }, portSecurity: true, allowedAddresses: [], allowedEtherTypes: [] });
      const made = await Promise.all(Array.from({ length: 32 }, (_, i) => service.createPort(port(`p${i}`))));
      assert.deepEqual(made.map((p) => p.ips[0]).sort((a, b) => Number(a.split('.')[3]) - Number(b.split('.')[3])), Array.from({ length: 32 }, (_, i) => `10.0.0.${i + 2}`));
      // Another writer (an apply, in its own transaction) deletes one; the service hears of
      // it from the store and gives that address next.
      const gone = made[7];
      await applier.apply(file({ ports: made.filter((p) => p !== gone).map((p) => ({ name: p.name, network: 'blue', host: 'h1' })) }, { prune: true }));
      assert.deepEqual((await service.createPort(port('again'))).ips, gone.ips);
      await assert.rejects(service.createPort({ ...port('p0') }), (err: ApiError) => err.status === 409 && err.message === 'a port named p0 exists already');
      assert.deepEqual((await service.createPort(port('next'))).ips, ['10.0.0.34'], 'an address given up with a refused create is given again');
    }));

    test('a plan shown before the world changed is not carried out', withWorld(async ({ applier, service }) => {
      const resources = { networks: [{ name: 'blue', vni: 100 }] };
      const dry = await applier.apply(file(resources, { dryRun: true }));
      await service.createNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan', mtu: 1400 });
      await assert.rejects(applier.apply(file(resources, { planDigest: dry.planDigest })),
        (err: ApiError) => err.status === 409 && /the controller changed since this plan was made/.test(err.message));
    }));

    test('two applies racing for the same names: exactly one lands, the other is refused whole', withWorld(async ({ applier, service }) => {
      const a = file({ networks: [{ name: 'blue', vni: 100 }], ports: [{ name: 'vm1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:0a' }] });
      const b = file({ networks: [{ name: 'blue', vni: 200 }], ports: [{ name: 'vm1', network: 'blue', host: 'h2', mac: '02:00:00:00:00:0b' }] });
      const results = await Promise.allSettled([applier.apply(a), applier.apply(b), applier.apply(a), applier.apply(b)]);
      const won = results.filter((r) => r.status === 'fulfilled' && r.value.applied);
      assert.equal(won.length, 1, JSON.stringify(results));
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof ApiError && (r.reason.status === 409 || r.reason.status === 422), String(r.reason));
      }
      const nets = await service.list<{ vni: number }>('networks');
      const ports = await service.list<{ mac: string }>('ports');
      assert.equal(nets.length, 1);
      assert.equal(ports.length, 1);
      assert.equal(ports[0].mac, nets[0].vni === 100 ? '02:00:00:00:00:0a' : '02:00:00:00:00:0b', 'the port and the network come from the same file');
    }));
  });
}

/** A store that counts what is read from it: calls, and entries handed back. */
class CountingStore implements Store {
  gets = 0;
  lists = 0;
  listed = 0;
  constructor(private readonly base: Store) {}
  revision() { return this.base.revision(); }
  async get<T>(key: string) {
    this.gets++;
    return this.base.get<T>(key);
  }
  async list<T>(prefix: string) {
    this.lists++;
    const all = await this.base.list<T>(prefix);
    this.listed += all.length;
    return all;
  }
  commit(...args: Parameters<Store['commit']>) { return this.base.commit(...args); }
  changesSince(revision: number) { return this.base.changesSince(revision); }
  subscribe(listener: Parameters<Store['subscribe']>[0]) { return this.base.subscribe(listener); }
  close() { return this.base.close(); }
}

test('planning and checking an apply reads the store in proportion to the file: twice the ports, twice the reads', async () => {
  const reads = async (n: number) => {
    const store = new CountingStore(new MemoryStore());
    const service = new NetworkService(store);
    await service.registerHost({ name: 'h1', address: '192.0.2.1', port: 4789, genevePort: 6081, mtu: 1500 });
    await service.createNetwork({ name: 'big', vni: 100, encapsulation: 'vxlan' });
    await service.createSubnet({ name: 'big4', network: 'big', cidr: '10.20.0.0/16', dns: [], dhcp: true });
    // Half of them there already (each with its address), half made by the file.
    for (let i = 0; i < n / 2; i++) await service.createPort({ name: `p${i}`, network: 'big', host: 'h1', backend: { type: 'memory' }, portSecurity: true, allowedAddresses: [], allowedEtherTypes: [] });
    const ports = Array.from({ length: n }, (_, i) => ({ name: `p${i}`, network: 'big', host: 'h1' }));
    [store.gets, store.lists, store.listed] = [0, 0, 0];
    const r = await new Applier(store).apply(file({ ports }, { dryRun: true }));
    assert.equal(r.actions.length, n / 2);
    return { gets: store.gets, lists: store.lists, listed: store.listed };
  };
  const one = await reads(200);
  const two = await reads(400);
  for (const what of ['gets', 'lists', 'listed'] as const) {
    assert.ok(two[what] <= 2.2 * one[what], `${what}: ${one[what]} for 200 ports, ${two[what]} for 400 (linear: about twice)`);
  }
});
