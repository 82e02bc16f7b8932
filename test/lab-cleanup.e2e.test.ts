/**
 * `weft lab down` leaves nothing behind (namespaces, links, processes, sockets, files), also
 * after an agent was killed; and a failed `up` removes what it had built.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { fileURLToPath } from 'node:url';
import { labDir, labDown, labUp, readLabState, processAlive, LabError } from '../src/lab/lab.js';
import { planLab } from '../src/lab/topology.js';
import { test, e2eSkipReason } from './support/env.js';

const skip = e2eSkipReason();
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

const namespacesOf = (lab: string) => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`weft-${lab}-`));
const processesOf = (lab: string) => spawnSync('pgrep', ['-f', `/run/weft/lab/${lab}/`], { encoding: 'utf8' }).stdout.trim();

const topology = (name: string, ip = '10.10.0.2/24') => ({
  name,
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [{ name: 'blue', vni: 100 }],
  vms: [{ name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' }, { name: 'vm2', host: 'h2', network: 'blue', ip }],
});

test('down after a killed agent removes namespaces, processes, sockets and state', { skip, timeout: 60_000 }, async () => {
  const plan = planLab(topology('e2edown'), 'test');
  labDown(plan.name);
  try {
    const state = await labUp(plan);
    assert.equal(namespacesOf(plan.name).length, 5);
    process.kill(state.agents.h1, 'SIGKILL');
    const r = spawnSync(process.execPath, [CLI, 'lab', 'down', plan.name], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lab e2edown removed: 5 namespaces/);
    assert.deepEqual(namespacesOf(plan.name), []);
    assert.equal(processesOf(plan.name), '');
    assert.ok(!processAlive(state.agents.h2));
    assert.ok(!existsSync(labDir(plan.name)), 'state, logs and sockets are gone');
    const again = spawnSync(process.execPath, [CLI, 'lab', 'down', plan.name], { encoding: 'utf8' });
    assert.equal(again.status, 2, 'down again is harmless, and says there is no such lab (any more)');
    assert.match(again.stderr, /^no lab e2edown \(/);
  } finally {
    labDown(plan.name);
  }
});

test('a failed up removes what it had built', { skip, timeout: 60_000 }, async () => {
  // A plan the topology check would refuse (the address cannot be set): the build fails halfway.
  const plan = planLab(topology('e2efail'), 'test');
  plan.vms[1].attachments[0].ip = '10.10.0.300/24';
  labDown(plan.name);
  try {
    await assert.rejects(labUp(plan), (err: Error) => err instanceof LabError && /10\.10\.0\.300/.test(err.message));
    assert.deepEqual(namespacesOf(plan.name), []);
    assert.equal(processesOf(plan.name), '');
    assert.equal(readLabState(plan.name), null);
    assert.ok(!existsSync(labDir(plan.name)));
  } finally {
    labDown(plan.name);
  }
});

test('Ctrl-C during up removes what it had built', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-int-'));
  const file = join(dir, 'lab.yaml');
  writeFileSync(file, stringify({ ...topology('e2eint'), controller: true }));
  labDown('e2eint');
  try {
    const child = spawn(process.execPath, [CLI, 'lab', 'up', file], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // Interrupt once the lab is half built: some namespaces exist, the agents are not up.
    const deadline = Date.now() + 20_000;
    while (namespacesOf('e2eint').length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(namespacesOf('e2eint').length >= 3, 'the lab started building');
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.deepEqual(namespacesOf('e2eint'), []);
    assert.equal(processesOf('e2eint'), '');
    assert.ok(!existsSync(labDir('e2eint')));
  } finally {
    labDown('e2eint');
    rmSync(dir, { recursive: true, force: true });
  }
});
