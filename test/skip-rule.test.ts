/**
 * The rule for skipped tests (test/support/env.ts): on a developer's machine a test that
 * lacks a tool is skipped with its reason; in CI it fails with it, unless the skip is one
 * by design.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BY_DESIGN, e2eSkipReason, skipVerdict, test } from './support/env.js';

const CI = { CI: 'true' };
const missing = e2eSkipReason('weft-no-such-command');

test('a missing command is a skip with its reason on a developer\'s machine, a failure with it in CI', () => {
  assert.ok(missing, 'e2eSkipReason names what is missing');
  assert.deepEqual(skipVerdict(missing, {}), { skip: missing });
  assert.deepEqual(skipVerdict(missing, { CI: 'false' }), { skip: missing });
  const v = skipVerdict(missing, CI);
  assert.ok('fail' in v && v.fail.includes(missing), JSON.stringify(v));
  // A bare `skip: true` says nothing: in CI it fails too.
  assert.ok('fail' in skipVerdict(true, CI));
});

test('a skip by design stays a skip in CI; no reason means the test runs', () => {
  for (const reason of Object.values(BY_DESIGN)) assert.deepEqual(skipVerdict(reason, CI), { skip: reason });
  assert.deepEqual(skipVerdict(false, CI), { run: true });
  assert.deepEqual(skipVerdict(undefined, CI), { run: true });
});

test('node --test: a suite with a missing tool passes skipped on a developer\'s machine, fails naming the tool in CI', () => {
  const env = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'support', 'env.js')).href;
  const dir = mkdtempSync(join(tmpdir(), 'weft-skip-rule-'));
  try {
    const file = join(dir, 'needs-a-tool.test.mjs');
    writeFileSync(file, [
      `import { BY_DESIGN, describe, test } from ${JSON.stringify(env)};`,
      `test('needs frobnicate', { skip: 'needs frobnicate (apt-get install frobnicate)' }, () => {});`,
      `describe('a suite that needs it too', { skip: 'needs frobnicate (apt-get install frobnicate)' }, () => { test('inside', () => {}); });`,
      `test('by design', { skip: BY_DESIGN.memoryStoreNotDurable }, () => {});`,
      `test('runs', () => {});`,
    ].join('\n'));
    const run = (ci: string | undefined) => {
      // (NODE_TEST_CONTEXT would make the child report to this runner instead of to its stdout.)
      const { CI: _ci, NODE_TEST_CONTEXT: _ctx, ...rest } = process.env;
      return spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env: ci === undefined ? rest : { ...rest, CI: ci } });
    };
    const here = run(undefined);
    assert.equal(here.status, 0, here.stdout + here.stderr);
    const skips = (out: string) => out.split('\n').filter((l) => / # SKIP /.test(l)).length;
    const failures = (out: string) => out.split('\n').filter((l) => /^not ok /.test(l)).length;
    assert.equal(skips(here.stdout), 3, here.stdout);
    const ci = run('true');
    assert.equal(ci.status, 1, ci.stdout + ci.stderr);
    assert.equal(failures(ci.stdout), 2, ci.stdout);
    assert.equal(skips(ci.stdout), 1, ci.stdout);
    assert.match(ci.stdout, /cannot run here: needs frobnicate \(apt-get install frobnicate\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
