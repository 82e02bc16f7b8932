/**
 * The command line as a person meets it: mistakes get a sentence and a nonzero exit,
 * never a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const weft = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

test('a bad agent config exits 2 and names the file, the field and why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  try {
    const file = join(dir, 'h1.yaml');
    writeFileSync(file, 'host: h1\nunderlay: { address: 10.0.0.1 }\nnetworks:\n  - { name: blue, vni: 99999999 }\n');
    const r = weft('agent', '--config', file);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim(), `${file}: networks[0].vni: Too big: expected number to be <=16777215`);

    writeFileSync(file, 'host: h1\nhost: h2\n');
    const dup = weft('agent', '--config', file);
    assert.equal(dup.status, 2);
    assert.match(dup.stderr, /h1\.yaml: line 2: Map keys must be unique/);

    const missing = weft('agent', '--config', join(dir, 'nope.yaml'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /nope\.yaml: cannot read it: ENOENT/);
    for (const out of [r.stderr, dup.stderr, missing.stderr]) assert.doesNotMatch(out, /\n\s+at /, 'no stack trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad lab topology exits 2 with every problem listed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  try {
    const file = join(dir, 'lab.yaml');
    writeFileSync(file, 'name: x\nhosts: [{ name: h1 }]\nnetworks: [{ name: blue, vni: 1 }]\nvms:\n  - { name: vm1, host: h9, network: green, ip: 10.0.0.1/24 }\n');
    const r = weft('lab', 'up', file);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /vms\[0\]\.host: no host named h9/);
    assert.match(r.stderr, /vms\[0\]\.network: no network named green/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('asking an agent that is not running says so', () => {
  const r = weft('stats', '--socket', '/nonexistent/agent.sock');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cannot reach the agent at \/nonexistent\/agent\.sock: ENOENT/);
});
