import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyChange, diffPlans, type LabChange } from './change.js';
import { labDir, type LabState } from './lab.js';
import { planLab } from './topology.js';

const base = (more: Record<string, unknown> = {}) => ({
  name: 'grow',
  controller: true,
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [{ name: 'blue', vni: 100 }],
  vms: [
    { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
    { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
  ],
  ...more,
});
const plan = (doc: Record<string, unknown>) => planLab(doc, 'lab.yaml');
const refusal = (clause: string) => new RegExp(`^lab grow is up, and ${clause.replace(/[()]/g, '\\$&')}, which cannot change while it runs: run weft lab down grow first$`);

test('an unchanged file is no change', () => {
  assert.equal(diffPlans(plan(base()), plan(base())), null);
});

test('VMs added, removed and changed; a VM that stays keeps its MAC, a new one takes one no VM has', () => {
  const old = plan(base());
  const next = plan(base({
    vms: [
      { name: 'blue2', host: 'h1', network: 'blue', ip: '10.10.0.2/24' },
      { name: 'blue3', host: 'h2', network: 'blue', ip: '10.10.0.3/24' },
    ],
    networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200 }],
  }));
  const d = diffPlans(old, next)!;
  assert.deepEqual(d.removed.map((v) => v.name), ['blue1', 'blue2']);
  assert.deepEqual(d.added.map((v) => v.name), ['blue2', 'blue3']);
  assert.deepEqual([...d.changed], [['blue2', ['host']]]);
  assert.deepEqual(d.resources, [{ verb: '+', kind: 'networks', name: 'red' }]);
  // blue2 was second in the file and is first now: its MAC is the one it was built with.
  assert.equal(next.vms[0].mac, old.vms[1].mac);
  assert.equal(next.vms[1].mac, '02:57:46:00:00:03');
});

test('routers, groups and forwards are resources of the change', () => {
  const old = plan(base());
  const d = diffPlans(old, plan(base({
    networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200 }],
    routers: [{ name: 'r1', networks: ['blue', 'red'] }],
    securityGroups: [{ name: 'web', rules: [] }],
    vms: [...base().vms, { name: 'red1', host: 'h2', network: 'red', ip: '10.20.0.1/24' }],
  })))!;
  assert.deepEqual(d.resources.map((r) => `${r.verb} ${r.kind} ${r.name}`), ['+ networks red', '+ subnets red-v4', '+ securityGroups web', '+ routers r1']);
  assert.deepEqual(d.added.map((v) => v.name), ['red1']);
});

test('what only a rebuild changes is refused in one sentence naming it', () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [base({ hosts: [{ name: 'h1' }, { name: 'h2' }, { name: 'h3' }] }), 'its hosts changed (h3 added)'],
    [base({ hosts: [{ name: 'h2' }, { name: 'h1' }] }), 'its hosts changed (h2\'s address 10.99.0.2 -> 10.99.0.1, h1\'s address 10.99.0.1 -> 10.99.0.2)'],
    [base({ underlay: { mtu: 9000 } }), 'its underlay changed (mtu 1500 -> 9000)'],
    // Without a controller nothing is encrypted: blue changes too.
    [base({ controller: false }), 'its controller changed (on -> off), and network blue changed (encrypted true -> false)'],
    [base({ rekeyAfter: 10 }), 'its rekeyAfter changed (default -> 10)'],
    [base({ networks: [{ name: 'blue', vni: 101 }] }), 'network blue changed (vni 100 -> 101)'],
    [base({ networks: [{ name: 'blue', vni: 100, encapsulation: 'geneve' }] }), 'network blue changed (encapsulation vxlan -> geneve, encrypted true -> false)'],
    [base({ vms: [{ name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.1.1/24' }, { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.1.2/24' }] }), 'network blue\'s subnet changed (10.10.0.0/24 -> 10.10.1.0/24)'],
    [base({ networks: [{ name: 'blue', vni: 100, mtu: 1400 }] }), 'network blue changed (mtu none -> 1400)'],
    [base({ vms: [...base().vms, { name: 'g1', host: 'h1', network: 'blue', ip: '10.10.0.3/24', kind: 'qemu' }] }), 'QEMU VM g1 would be added (the lab boots its guests at build time only)'],
  ];
  for (const [doc, clause] of cases) {
    assert.throws(() => diffPlans(plan(base()), plan(doc)), (err: Error) => refusal(clause).test(err.message), clause);
  }
  const linux = (vms: unknown[]) => base({ controller: false, hosts: [{ name: 'h1' }, { name: 'h2', datapath: 'linux' }], vms });
  assert.throws(() => diffPlans(plan(linux(base().vms)), plan(linux([...base().vms, { name: 'blue3', host: 'h2', network: 'blue', ip: '10.10.0.3/24' }]))),
    (err: Error) => refusal('VM blue3 on host h2 would be added (a linux-datapath host is built once)').test(err.message));
  const three = (vms: unknown[]) => base({ controller: false, hosts: [{ name: 'h1' }, { name: 'h2', datapath: 'linux' }, { name: 'h3' }], vms });
  assert.throws(() => diffPlans(plan(three(base().vms)), plan(three([...base().vms, { name: 'blue3', host: 'h3', network: 'blue', ip: '10.10.0.3/24' }]))),
    (err: Error) => refusal('network blue\'s hosts changed (h1, h2 -> h1, h2, h3), and host h2 runs the linux datapath, whose VXLAN flood list is made once').test(err.message));
});

test('a change planned against a state that another change has since replaced is refused, nothing done', async () => {
  const name = `stale-${process.pid}`;
  const dir = labDir(name);
  try {
    mkdirSync(dir, { recursive: true });
    const now = { plan: { name, step: 2 }, upAt: 'now' };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(now));
    // Planned when the lab was at step 1.
    const stale = { state: { plan: { name, step: 1 }, upAt: 'then' } as unknown as LabState, plan: { name }, old: {}, difference: { removed: [], added: [], resources: [] } } as unknown as LabChange;
    await assert.rejects(applyChange(stale), { message: /^lab stale-\d+ changed while this change was planned \(another lab up\?\): nothing done; run lab up again$/ });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')), now);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
