/**
 * The data path under generated input (fast-check): frames from ports and datagrams from
 * the underlay, mostly well-formed and some spoiled, into a host with port security,
 * security groups, a router and its NAT. For each one: no exception, an outcome counted
 * where it belongs, and nothing leaves where its network, VLAN and MTU exclude it (the rules
 * are in test/support/datapath-fuzz.ts). Then, from the data path's counters: the inputs
 * got past the checks of what arrived and reached the stages after them, so a generator
 * that makes only garbage fails here. `npm run bench:fuzz` runs millions.
 * WEFT_FUZZ_RUNS and WEFT_FUZZ_SEED scale and replay it (the seed is fixed by default).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DropReason } from '../src/datapath/counters.js';
import { FuzzHost, input } from './support/datapath-fuzz.js';

const RUNS = Number(process.env.WEFT_FUZZ_RUNS ?? 20_000);
const SEED = Number(process.env.WEFT_FUZZ_SEED ?? 20_261_202);
/** Fewer inputs than this say too little about shares. */
const SHARES_FROM = 5_000;

test(`${RUNS} generated frames and datagrams: no exception, one outcome each, nothing where it must not go; most reach port security, groups, routing and NAT`, () => {
  const host = new FuzzHost();
  fc.assert(fc.property(input, (i) => {
    assert.deepEqual(host.check(i), []);
  }), { numRuns: RUNS, seed: SEED });

  const s = host.summary();
  assert.equal(s.inputs, RUNS);
  if (RUNS < SHARES_FROM) return;
  const share = (n: number) => n / s.inputs;
  const said = JSON.stringify(s);
  assert.ok(share(s.pastParse) >= 0.6, `only ${s.pastParse} of ${s.inputs} inputs got past the checks of what arrived: ${said}`);
  assert.ok(share(s.delivered) >= 0.4, `only ${s.delivered} of ${s.inputs} inputs were delivered anywhere: ${said}`);
  assert.ok(share(s.crossed) >= 0.03, `only ${s.crossed} inputs were routed or translated to another network: ${said}`);
  const malformed = share(s.drops.malformed ?? 0);
  assert.ok(malformed >= 0.01 && malformed <= 0.1, `malformed: ${s.drops.malformed} (the spoiled inputs reach the check, and the rest pass it): ${said}`);
  assert.ok(share(s.drops['sg-refused'] ?? 0) >= 0.01, `the security group refused only ${s.drops['sg-refused']}: ${said}`);
  // Each stage refused some: port security, the groups, the router, the NAT, switching.
  const reached: DropReason[] = ['spoofed-mac', 'spoofed-ip', 'spoofed-arp', 'router-advertisement', 'listener-report', 'no-route', 'no-neighbor', 'ttl-exceeded',
    'bad-ip-header', 'nat-no-mapping', 'nat-unsupported', 'hairpin', 'src-mac-pinned', 'vlan-not-allowed', 'mtu-exceeded'];
  for (const r of reached) assert.ok(share(s.drops[r] ?? 0) >= 0.0005, `${r}: only ${s.drops[r] ?? 0}: ${said}`);
  assert.ok(share(s.translatedOut) >= 0.005 && share(s.translatedIn) >= 0.001, `the NAT translated ${s.translatedOut} out, ${s.translatedIn} in: ${said}`);
});
