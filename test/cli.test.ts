/**
 * The command line as a person meets it: mistakes get a sentence and a nonzero exit,
 * never a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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

test('an agent whose join token file cannot be read says so before it makes any key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  try {
    const state = join(dir, 'agent-h1');
    const agent = (tokenFile: string) => spawnSync(process.execPath, [CLI, 'agent', '--controller', 'http://127.0.0.1:9', '--host', 'h1', '--underlay-address', '127.0.0.1',
      '--join-token-file', tokenFile, '--key-file', join(state, 'tunnel.key'), '--socket', join(dir, 'agent.sock'), '--qemu-socket-dir', join(dir, 'qemu')], { encoding: 'utf8', timeout: 20_000 });
    const missing = agent(join(dir, 'nonexistent'));
    assert.equal(missing.status, 2, missing.stderr);
    assert.equal(missing.stderr, `cannot read the join token file ${join(dir, 'nonexistent')}: no such file\n`);
    const folder = agent(dir);
    assert.equal(folder.status, 2, folder.stderr);
    assert.equal(folder.stderr, `cannot read the join token file ${dir}: it is a directory\n`);
    writeFileSync(join(dir, 'empty.token'), '\n');
    const empty = agent(join(dir, 'empty.token'));
    assert.equal(empty.status, 2, empty.stderr);
    assert.equal(empty.stderr, `the join token file ${join(dir, 'empty.token')} is empty (weft host create --join-token-file writes one)\n`);
    assert.equal(existsSync(state), false, 'no tunnel or identity key was made');
    assert.deepEqual(readdirSync(dir).sort(), ['empty.token'], 'nor a socket or anything else');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('output into a pipe nobody reads any more is dropped, not a crash: the command ends as it would', async () => {
  // The reading end is closed before the child runs a line of JavaScript, so every write
  // it makes meets EPIPE (as `weft schema lab | true` does when true is quicker).
  const child = spawn(process.execPath, [CLI, 'schema', 'lab'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  assert.equal(stderr, '');
  assert.equal(status, 0);
});
