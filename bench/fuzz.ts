/**
 * npm run bench:fuzz: the data-path fuzz of `npm test` (test/datapath-fuzz.test.ts) at
 * scale: generated frames and datagrams, millions of them, each checked against the same
 * rules. Prints the rate, how far the inputs got, and, on a failure, fast-check's seed and
 * the smallest failing input.
 * Options: --cases N (default 2,000,000), --seed S.
 */
import fc from 'fast-check';
import { FuzzHost, input } from '../test/support/datapath-fuzz.js';

const arg = (name: string) => process.argv[process.argv.indexOf(name) + 1];
const cases = Number(process.argv.includes('--cases') ? arg('--cases') : 2_000_000);
const seed = process.argv.includes('--seed') ? Number(arg('--seed')) : Date.now() % 2 ** 31;

const host = new FuzzHost();
const t0 = performance.now();
const chunk = 100_000;
for (let done = 0; done < cases; done += chunk) {
  const n = Math.min(chunk, cases - done);
  const r = fc.check(fc.property(input, (i) => host.check(i).length === 0), { numRuns: n, seed: seed + done });
  if (r.failed) {
    console.error(`FAILED after ${done + r.numRuns} cases (seed ${seed + done}): ${JSON.stringify(r.counterexample, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}`);
    console.error(host.check(r.counterexample![0]).join('\n'));
    process.exit(1);
  }
  const s = (performance.now() - t0) / 1000;
  console.log(`${done + n} cases, ${((done + n) / s / 1000).toFixed(1)}k/s, no violation`);
}
// How far they got (the bounded test checks these shares).
const s = host.summary();
const pct = (k: number) => `${((100 * k) / s.inputs).toFixed(1)} %`;
console.log(`past the checks of what arrived ${pct(s.pastParse)}, delivered ${pct(s.delivered)}, routed or translated ${pct(s.crossed)}, malformed ${pct(s.drops.malformed ?? 0)}, refused by the group ${pct(s.drops['sg-refused'] ?? 0)}`);
