/**
 * The control plane under faults, end to end: a controller restarted while VMs ping across
 * hosts, an agent restarted, and ports created and deleted while other traffic flows.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../src/controller/client.js';
import { controllerSocket, labDir, labRestart } from '../src/lab/lab.js';
import { test, e2eSkipReason } from './support/env.js';
import { withLab, type Lab } from './support/lab.js';
import { pingReplies, waitFor } from './support/wait.js';

const skip = e2eSkipReason('ping');

const topology = (name: string) => ({
  name,
  controller: true,
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200, encapsulation: 'geneve' }],
  vms: [
    { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
    { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
    { name: 'red1', host: 'h1', network: 'red', ip: '10.20.0.1/24' },
  ],
});

const api = (lab: string) => new ApiClient({ url: `unix:${controllerSocket(lab)}`, token: readFileSync(join(labDir(lab), 'controller', 'admin.token'), 'utf8').trim() });

/** Pings every 50 ms while `during` runs (which starts once the ping is answered); returns
 * [sent, received]. */
async function pingWhile(lab: Lab, from: string, to: string, count: number, during: () => Promise<void>): Promise<[number, number]> {
  const ping = lab.start(from, 'ping', '-i', '0.05', '-c', String(count), '-W', '1', to);
  await waitFor(() => pingReplies(ping.output()) >= 3, { what: `three answers to ${from}'s ping to ${to}` });
  await during();
  const r = await ping.done;
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  return [Number(m[1]), Number(m[2])];
}

const connected = async (lab: string) =>
  (await api(lab).call<Array<{ status: { connected: boolean } }>>('GET', '/v1/hosts')).every((h) => h.status.connected);

test('a controller restart does not stop traffic, and the agents reconnect and resync', { skip, timeout: 90_000 }, async () => {
  await withLab(topology('e2ectl'), async (lab) => {
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');
    const [sent, received] = await pingWhile(lab, 'blue1', '10.10.0.2', 60, async () => {
      await labRestart(lab.name, 'controller', 'SIGKILL', 1000);
    });
    // Zero loss: the controller is not on the data path; the agents forward with what they have.
    assert.equal(received, sent, `pings lost while the controller was away: ${sent - received} of ${sent}`);
    await waitFor(() => connected(lab.name), { what: 'both agents reconnected' });
    const kept = await api(lab.name).call<Array<{ name: string }>>('GET', '/v1/ports');
    assert.deepEqual(kept.map((p) => p.name), ['blue1', 'blue2', 'red1'], 'the restart kept every port');
    // Resynced: a change made after the restart reaches the agents.
    await api(lab.name).call('POST', '/v1/ports', { name: 'late', network: 'blue', host: 'h1', backend: { type: 'memory' } });
    await waitFor(async () => (await lab.stats('h1')).ports.some((p) => p.name === 'late'), { what: 'h1 has the new port' });
  });
});

test('an agent restart rebuilds its ports and tunnels from the controller', { skip, timeout: 90_000 }, async () => {
  await withLab(topology('e2eagent'), async (lab) => {
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');
    await labRestart(lab.name, 'h2', 'SIGKILL');
    await waitFor(async () => (await lab.stats('h2')).ports.some((p) => p.name === 'blue2' && !p.failed), { what: 'h2 rebuilt its port' });
    const s = await lab.stats('h2');
    assert.deepEqual(s.tunnels.map((t) => t.remote), ['10.99.0.1:4793']);
    await lab.run('blue1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.10.0.2');
    await lab.run('blue2', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.10.0.1');
  });
});

test('creating and deleting ports elsewhere leaves running traffic untouched', { skip, timeout: 90_000 }, async () => {
  await withLab(topology('e2echurn'), async (lab) => {
    const client = api(lab.name);
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');
    const before = (await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!;
    const [sent, received] = await pingWhile(lab, 'blue1', '10.10.0.2', 60, async () => {
      for (let i = 0; i < 5; i++) {
        await client.call('POST', '/v1/ports', { name: `churn${i}`, network: i % 2 ? 'red' : 'blue', host: i % 2 ? 'h1' : 'h2', backend: { type: 'memory' } });
      }
      for (let i = 0; i < 5; i++) await client.call('DELETE', `/v1/ports/churn${i}`);
    });
    // Zero loss: a change to other ports never touches blue1's path.
    assert.equal(received, sent, `pings lost during port churn: ${sent - received} of ${sent}`);
    const after = (await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!;
    assert.ok(after.rx.frames >= before.rx.frames + sent, 'blue1 kept its counters: it was never rebuilt');
  });
});
