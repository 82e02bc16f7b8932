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
import { qemuSkipReason } from './support/qemu.js';
import { ensureGuestImage, GuestError, GuestPackagesError } from '../src/lab/guest.js';

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

test('the QEMU test: another architecture is a skip by design, Debian\'s packages out of reach a skip that fails in CI', () => {
  let built = 0;
  const build = () => { built++; };
  const noTool = () => 'needs qemu-system-x86_64 (Debian: qemu-system-x86)';
  const allThere = () => false as const;

  const arm = qemuSkipReason('arm64', noTool, build);
  assert.equal(arm, 'needs an amd64 Debian kernel package (linux-image-cloud-amd64): this machine is arm64');
  assert.deepEqual(skipVerdict(arm, CI), { skip: arm }, 'by design, also in CI');
  assert.equal(built, 0, 'nothing fetched on another architecture');
  // What the lab itself says there, before it asks apt for anything.
  assert.throws(() => ensureGuestImage('/nonexistent', () => {}, 'arm64'), (e: Error) => e instanceof GuestError && /needs an amd64 Debian kernel package \(linux-image-cloud-amd64\): this machine is arm64/.test(e.message));

  assert.equal(qemuSkipReason('amd64', noTool, build), noTool());
  assert.equal(built, 0, 'a missing tool is said before the image is built');
  assert.equal(qemuSkipReason('amd64', allThere, build), false);
  assert.equal(built, 1);

  const noMirror = qemuSkipReason('amd64', allThere, () => {
    throw new GuestPackagesError('apt-get download -q linux-image-6.1.0-44-cloud-amd64 busybox-static failed (exit 100): E: Failed to fetch http://deb.debian.org/debian/pool/main/l/linux-signed-amd64/linux-image-6.1.0-44-cloud-amd64_6.1.164-1_amd64.deb  Could not resolve \'deb.debian.org\'');
  });
  assert.match(String(noMirror), /^the guest image needs Debian's packages: apt-get download -q linux-image-6\.1\.0-44-cloud-amd64 busybox-static failed \(exit 100\): E: Failed to fetch/);
  assert.deepEqual(skipVerdict(noMirror, {}), { skip: noMirror }, 'a skip on a developer\'s machine');
  const v = skipVerdict(noMirror, CI);
  assert.ok('fail' in v && v.fail.includes('Could not resolve'), JSON.stringify(v));
  // A fault of the image's recipe is no reason to skip: the test runs and fails with it.
  assert.equal(qemuSkipReason('amd64', allThere, () => { throw new GuestError('the guest kernel has no module virtio_net'); }), false);
  // A by-design reason is one of BY_DESIGN, or one followed by ": " and what this machine
  // is; nothing else that merely begins like one.
  assert.ok('fail' in skipVerdict(`${BY_DESIGN.qemuGuestNeedsAmd64}, and more`, CI));
});

test('node --test: a suite, a test or a subtest with a missing tool passes skipped on a developer\'s machine, fails naming the tool in CI', () => {
  const env = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'support', 'env.js')).href;
  const dir = mkdtempSync(join(tmpdir(), 'weft-skip-rule-'));
  try {
    const file = join(dir, 'needs-a-tool.test.mjs');
    writeFileSync(file, [
      `import { BY_DESIGN, describe, subtest, test } from ${JSON.stringify(env)};`,
      `test('needs frobnicate', { skip: 'needs frobnicate (apt-get install frobnicate)' }, () => {});`,
      `describe('a suite that needs it too', { skip: 'needs frobnicate (apt-get install frobnicate)' }, () => { test('inside', () => {}); });`,
      `test('a test with one check that needs it', async (t) => { await subtest(t, 'the check', { skip: 'needs frobnicate (apt-get install frobnicate)' }, () => {}); });`,
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
    assert.equal(skips(here.stdout), 4, here.stdout);
    const ci = run('true');
    assert.equal(ci.status, 1, ci.stdout + ci.stderr);
    assert.equal(failures(ci.stdout), 3, ci.stdout);
    assert.match(ci.stdout, /^ {4}not ok 1 - the check$/m, 'the subtest fails, and with it its test');
    assert.equal(skips(ci.stdout), 1, ci.stdout);
    assert.match(ci.stdout, /cannot run here: needs frobnicate \(apt-get install frobnicate\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
