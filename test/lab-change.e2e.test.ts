/**
 * Growing a lab that is up, as a user does it: `weft lab up FILE` again with a changed file.
 * A VM added on h2 and one removed (its namespace, agent port and controller port gone), the
 * new one pinged from the one that stayed; a file that changes the hosts refused in one
 * sentence with nothing touched, as is an address another port has; a change that fails
 * halfway, tried again to the end, or cleaned up by `lab down`; a lab without a controller
 * grown through its agents' config; and `lab down` leaving no namespace or process behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { labDir, labDown } from '../src/lab/lab.js';
import { e2eSkipReason, test } from './support/env.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const weft = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, WEFT_CONTROLLER: '', WEFT_TOKEN: '' } });
const namespacesOf = (lab: string) => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`weft-${lab}-`)).sort();
const processesOf = (lab: string) => spawnSync('pgrep', ['-f', `/run/weft/lab/${lab}/`], { encoding: 'utf8' }).stdout.trim();
const skip = e2eSkipReason('ping', 'pgrep');

/** The lines a run printed, each with its times (`0.9 ms`) made `T ms`. */
const lines = (out: string) => out.trimEnd().split('\n').map((l) => l.replace(/: [\d.]+ ms$/, ': T ms'));

const LAB = 'e2egrow';
const lab = (vms: Array<Record<string, unknown>>, more: Record<string, unknown> = {}) => ({
  name: LAB, controller: true, hosts: [{ name: 'h1' }, { name: 'h2' }], networks: [{ name: 'blue', vni: 100 }], vms, ...more,
});
const blue1 = { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' };
const blue2 = { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' };
const blue3 = { name: 'blue3', host: 'h2', network: 'blue', ip: '10.10.0.3/24' };

test('lab up of a changed file grows the running lab: a VM added, one removed, a host change refused', { skip, timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-lab-change-'));
  const file = (name: string, topology: object) => {
    const path = join(dir, name);
    writeFileSync(path, stringify(topology));
    return path;
  };
  const ports = () => (JSON.parse(weft('port', 'list', '--lab', LAB, '-o', 'json').stdout) as Array<{ name: string }>).map((p) => p.name).sort();
  labDown(LAB);
  try {
    const first = file('first.yaml', lab([blue1, blue2]));
    const up = weft('lab', 'up', first);
    assert.equal(up.status, 0, up.stderr + up.stdout);
    const again = weft('lab', 'up', first);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, `lab ${LAB} is up; nothing to change\n`);
    // A port the lab did not make: the lab's changes leave it alone.
    const hold = weft('port', 'create', 'hold', '--network', 'blue', '--host', 'h1', '--ip', '10.10.0.4', '--lab', LAB);
    assert.equal(hold.status, 0, hold.stderr);

    // blue2 (h2) goes, blue3 comes on h2: blue1 on h1 reaches it across the hosts.
    const second = file('second.yaml', lab([blue1, blue3]));
    const grow = weft('lab', 'up', second);
    assert.equal(grow.status, 0, grow.stderr + grow.stdout);
    assert.deepEqual(lines(grow.stdout), [
      `lab ${LAB} is up; changing it to match ${second}`,
      '  - vm blue2 on h2',
      '  + vm blue3 on h2: 10.10.0.3/24 on blue',
      `lab ${LAB} is up`,
      '  ping blue1 (h1) -> blue3 (h2, 10.10.0.3) on blue: T ms',
    ]);
    const ping = weft('lab', 'exec', LAB, 'blue1', '--', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.3');
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    assert.deepEqual(namespacesOf(LAB), ['blue1', 'blue3', 'controller', 'h1', 'h2', 'underlay'].map((n) => `weft-${LAB}-${n}`), 'blue2\'s namespace (and with it its TAP) is gone');
    assert.deepEqual(ports(), ['blue1', 'blue3', 'hold'], 'blue2\'s port is gone at the controller; hold is kept');
    const h2 = JSON.parse(weft('stats', '--lab', LAB, '--host', 'h2', '-o', 'json').stdout) as { ports: Array<{ name: string }> };
    assert.deepEqual(h2.ports.map((p) => p.name), ['blue3'], 'h2\'s agent let go of blue2');
    assert.match(weft('lab', 'list').stdout, new RegExp(`^${LAB}\\t2 hosts, 2 VMs, since `, 'm'), 'the state says what is there');

    // A new host needs a rebuild: refused in one sentence, and nothing is touched.
    const state = readFileSync(join(labDir(LAB), 'state.json'), 'utf8');
    const before = namespacesOf(LAB);
    const hostFile = file('host.yaml', lab([blue1, blue3, { name: 'blue5', host: 'h3', network: 'blue', ip: '10.10.0.5/24' }], { hosts: [{ name: 'h1' }, { name: 'h2' }, { name: 'h3' }] }));
    const refused = weft('lab', 'up', hostFile);
    assert.equal(refused.status, 1);
    assert.equal(refused.stdout, '');
    assert.equal(refused.stderr, `weft: lab ${LAB} is up, and its hosts changed (h3 added), which cannot change while it runs: run weft lab down ${LAB} first\n`);
    assert.equal(readFileSync(join(labDir(LAB), 'state.json'), 'utf8'), state);
    assert.deepEqual(namespacesOf(LAB), before);
    assert.deepEqual(ports(), ['blue1', 'blue3', 'hold']);

    // An address another port has: refused before anything is touched too.
    const third = file('third.yaml', lab([blue1, { name: 'blue4', host: 'h2', network: 'blue', ip: '10.10.0.4/24' }]));
    const taken = weft('lab', 'up', third);
    assert.equal(taken.status, 1, taken.stdout);
    assert.equal(taken.stderr, `weft: lab ${LAB} is up, and VM blue4's address 10.10.0.4 on blue is port hold's; nothing was changed\n`);
    assert.deepEqual(namespacesOf(LAB), before);
    assert.deepEqual(ports(), ['blue1', 'blue3', 'hold']);
    assert.equal(weft('port', 'delete', 'hold', '--lab', LAB).status, 0);

    // A change that fails halfway (h2's agent is gone: blue3's port goes at the controller,
    // but no agent says it let go) leaves the lab as far as it got; once the agent is back,
    // lab up again finishes it.
    const agents = (JSON.parse(readFileSync(join(labDir(LAB), 'state.json'), 'utf8')) as { agents: Record<string, number> }).agents;
    process.kill(agents.h2, 'SIGKILL');
    const half = weft('lab', 'up', third);
    assert.equal(half.status, 1, half.stdout);
    assert.match(half.stderr, /^weft: the agent of h2 exited:\n/);
    assert.deepEqual(lines(half.stdout), [`lab ${LAB} is up; changing it to match ${third}`]);
    assert.equal(weft('lab', 'restart', LAB, 'h2').status, 0);
    const retry = weft('lab', 'up', third);
    assert.equal(retry.status, 0, retry.stderr + retry.stdout);
    assert.deepEqual(lines(retry.stdout), [
      `lab ${LAB} is up; changing it to match ${third}`,
      '  - vm blue3 on h2',
      '  + vm blue4 on h2: 10.10.0.4/24 on blue',
      `lab ${LAB} is up`,
      '  ping blue1 (h1) -> blue4 (h2, 10.10.0.4) on blue: T ms',
    ]);
    assert.deepEqual(ports(), ['blue1', 'blue4']);

    // And lab down removes all of it, the VMs added on the way included.
    const down = weft('lab', 'down', LAB);
    assert.equal(down.status, 0, down.stderr);
    assert.match(down.stdout, new RegExp(`^lab ${LAB} removed: 6 namespaces, `));
    assert.deepEqual(namespacesOf(LAB), []);
    assert.equal(processesOf(LAB), '');
    assert.ok(!existsSync(labDir(LAB)), 'state, logs and sockets are gone');
  } finally {
    labDown(LAB);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lab without a controller grows through its agents\' config: a network and VMs added, a VM removed and its address taken', { skip, timeout: 120_000 }, () => {
  const name = 'e2egrown';
  const dir = mkdtempSync(join(tmpdir(), 'weft-lab-change-'));
  const topology = (vms: object[], networks: object[]) => ({ name, hosts: [{ name: 'h1' }, { name: 'h2' }], networks, vms });
  labDown(name);
  try {
    const first = join(dir, 'first.yaml');
    writeFileSync(first, stringify(topology([blue1, blue2], [{ name: 'blue', vni: 100 }])));
    const up = weft('lab', 'up', first);
    assert.equal(up.status, 0, up.stderr + up.stdout);
    const second = join(dir, 'second.yaml');
    writeFileSync(second, stringify(topology(
      // blue3 takes blue1's address, which blue2 knows by blue1's MAC.
      [blue2, { ...blue3, host: 'h1', ip: '10.10.0.1/24' }, { name: 'red1', host: 'h1', network: 'red', ip: '10.20.0.1/24' }, { name: 'red2', host: 'h2', network: 'red', ip: '10.20.0.2/24' }],
      [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200, encapsulation: 'geneve' }],
    )));
    const grow = weft('lab', 'up', second);
    assert.equal(grow.status, 0, grow.stderr + grow.stdout);
    assert.deepEqual(lines(grow.stdout), [
      `lab ${name} is up; changing it to match ${second}`,
      '  - vm blue1 on h1',
      '  + network red',
      '  + vm blue3 on h1: 10.10.0.1/24 on blue',
      '  + vm red1 on h1: 10.20.0.1/24 on red',
      '  + vm red2 on h2: 10.20.0.2/24 on red',
      `lab ${name} is up`,
      '  ping blue2 (h2) -> blue3 (h1, 10.10.0.1) on blue: T ms',
      '  ping red1 (h1) -> red2 (h2, 10.20.0.2) on red: T ms',
    ]);
    assert.ok(!namespacesOf(name).includes(`weft-${name}-blue1`));

    // Halfway again (h2's agent killed: it never lets go of red2), then straight to lab down,
    // which removes everything, red2 and the new blue4 included.
    const agents = (JSON.parse(readFileSync(join(labDir(name), 'state.json'), 'utf8')) as { agents: Record<string, number> }).agents;
    process.kill(agents.h2, 'SIGKILL');
    const third = join(dir, 'third.yaml');
    writeFileSync(third, stringify(topology([blue2, { ...blue3, host: 'h1', ip: '10.10.0.1/24' }, { name: 'blue4', host: 'h1', network: 'blue', ip: '10.10.0.4/24' }], [{ name: 'blue', vni: 100 }])));
    const half = weft('lab', 'up', third);
    assert.equal(half.status, 1, half.stdout);
    assert.match(half.stderr, /^weft: the agent of h2 (exited|is not running)/);
    const down = weft('lab', 'down', name);
    assert.equal(down.status, 0, down.stderr);
    assert.deepEqual(namespacesOf(name), []);
    assert.equal(processesOf(name), '');
  } finally {
    labDown(name);
    rmSync(dir, { recursive: true, force: true });
  }
});
