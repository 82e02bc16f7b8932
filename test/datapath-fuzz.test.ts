/**
 * The data path under generated input (fast-check): frames from ports and datagrams from
 * the underlay, well-formed and not. For each one: no exception, forwarded or counted under
 * exactly one reason, and nothing leaves where its network, VLAN and MTU exclude it (the
 * rules are in test/support/datapath-fuzz.ts). `npm run bench:fuzz` runs millions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FuzzHost, input } from './support/datapath-fuzz.js';

const RUNS = Number(process.env.WEFT_FUZZ_RUNS ?? 20_000);

test(`${RUNS} generated frames and datagrams: no exception, exactly one outcome each, nothing where it must not go`, () => {
  const host = new FuzzHost();
  fc.assert(fc.property(input, (i) => {
    assert.deepEqual(host.check(i), []);
  }), { numRuns: RUNS });
});
