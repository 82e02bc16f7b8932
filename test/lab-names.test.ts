/**
 * A lab's name is never a path: `weft lab down ../NAME` (and every other lab command) is
 * refused with a sentence before anything outside the lab's own directory is read, signalled
 * or removed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_ROOT } from '../src/lab/lab.js';
import { e2eSkipReason } from './support/env.js';

const skip = e2eSkipReason();
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const weft = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('weft lab down ../NAME removes nothing outside the lab folder', { skip }, () => {
  // A directory beside LAB_ROOT, shaped like a lab's, with a state file naming a process.
  const canary = join(dirname(LAB_ROOT), `canary-dir-${process.pid}`);
  mkdirSync(canary, { recursive: true });
  writeFileSync(join(canary, 'keep.txt'), 'precious\n');
  writeFileSync(join(canary, 'state.json'), JSON.stringify({ name: 'x', plan: { hosts: [], vms: [] }, agents: {}, createdAt: '' }));
  try {
    for (const args of [['down', `../canary-dir-${process.pid}`], ['exec', `../canary-dir-${process.pid}`, 'vm1', '--', 'true'], ['restart', `../canary-dir-${process.pid}`, 'h1']]) {
      const r = weft('lab', ...args);
      assert.equal(r.status, 1, `lab ${args[0]}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trim(), `weft: "../canary-dir-${process.pid}" is not a lab name (a lowercase name: a letter, then letters, digits or "-", at most 12 characters)`);
      assert.ok(existsSync(join(canary, 'keep.txt')), `lab ${args[0]}: the canary directory survives`);
    }
  } finally {
    rmSync(canary, { recursive: true, force: true });
  }
});

test('weft lab exec refuses a VM name that is a path', { skip }, () => {
  const r = weft('lab', 'exec', 'nolab', '../../x', '--', 'true');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^weft: "\.\.\/\.\.\/x" is not a VM or host name/);
});
