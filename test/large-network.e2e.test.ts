/**
 * A network of 64,000 ports (OVN caps a logical switch at 32K), as a real controller and a
 * real agent hold it: one VM on h1 in a lab, and 63,999 ports on ten more hosts that have no
 * agent (their tunnels lead to unused addresses of the lab's underlay; only h1 is looked at).
 * h1 holds every port's MAC as a pin (past its learning limit of 4,096: the limit bounds
 * learned MACs only), answers ARP for any of them from its tables without sending anything
 * across, and takes a one-port change of the network as a delta.
 */
import assert from 'node:assert/strict';
import { labApi } from '../src/lab/lab.js';
import { planLab } from '../src/lab/topology.js';
import { e2eSkipReason, test } from './support/env.js';
import { withLab } from './support/lab.js';
import { waitFor } from './support/wait.js';

const skip = e2eSkipReason('ping');
const SIZE = 64_000;
const HOSTS = 10;
/** Ports per apply: a file of them stays under the apply's 1 MiB. */
const CHUNK = 16_000;
const KEY = (i: number) => Buffer.alloc(32, i).toString('base64');

const topology = {
  name: 'e2ebig', controller: true, hosts: [{ name: 'h1' }], networks: [{ name: 'blue', vni: 100 }],
  vms: [{ name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/16' }],
};

test('a network of 64,000 ports: every pin on its host, ARP for any port answered from the tables, a change arriving as a delta', { skip, timeout: 600_000 }, async () => {
  await withLab(topology, async (lab) => {
    const api = labApi(planLab(topology, 'test'));
    for (let i = 0; i < HOSTS; i++) await api.call('POST', '/v1/hosts', { name: `x${i}`, address: `10.99.0.${100 + i}`, tunnelKey: KEY(i + 1) });
    const t0 = performance.now();
    for (let from = 1; from < SIZE; from += CHUNK) {
      const ports = [];
      for (let i = from; i < Math.min(SIZE, from + CHUNK); i++) ports.push({ name: `p${i}`, network: 'blue', host: `x${i % HOSTS}` });
      await api.call('POST', '/v1/apply', { resources: { ports } });
    }
    const applied = (performance.now() - t0) / 1000;
    const blue = async () => (await lab.stats('h1')).networks.find((n) => n.name === 'blue')!;
    await waitFor(async () => (await blue()).fdb.static === SIZE, { timeoutMs: 180_000, what: `h1 to pin all ${SIZE} MACs` });
    const reached = (performance.now() - t0) / 1000;
    const before = await blue();
    assert.equal(before.fdb.limit, 4096, 'the learning limit is the default, far below the pins');
    console.log(`# ${SIZE} ports: applied in ${applied.toFixed(1)} s, all pinned on h1 after ${reached.toFixed(1)} s`);

    // ARP from vm1 for ports anywhere in the network: each answered on h1 with the port's MAC.
    const h1Tunnels = async () => (await lab.stats('h1')).tunnels.reduce((n, t) => n + t.tx.frames, 0);
    const sentBefore = await h1Tunnels();
    for (const i of [1, 777, 31_999, 63_999]) {
      const port = await api.call('GET', `/v1/ports/p${i}`) as { mac: string; ips: string[] };
      const ip = port.ips[0];
      const out = await lab.run('vm1', 'arping', '-c', '1', '-w', '2', '-I', 'eth0', ip);
      assert.match(out.toLowerCase(), new RegExp(`\\[${port.mac}\\]`), `vm1 was answered for p${i} (${ip}) with its MAC: ${out}`);
    }
    const after = await blue();
    assert.equal(after.arpAnswered - before.arpAnswered, 4, 'each answered from the tables');
    assert.equal(await h1Tunnels(), sentBefore, 'no ARP crossed to another host');

    // One port goes and one comes: h1 takes them as deltas (no full state), its tables follow.
    const watch = async () => ((await lab.stats('h1')) as unknown as { watch: { states: number; deltas: number } }).watch;
    const statesBefore = (await watch()).states;
    const gone = await api.call('GET', '/v1/ports/p5') as { mac: string; ips: string[] };
    const t1 = performance.now();
    await api.call('DELETE', '/v1/ports/p5');
    const q1 = await api.call('POST', '/v1/ports', { name: 'q1', network: 'blue', host: 'x3' }) as { mac: string; ips: string[] };
    await waitFor(async () => {
      const out = await lab.exec('vm1', 'arping', '-c', '1', '-w', '1', '-I', 'eth0', q1.ips[0]);
      return out.code === 0 && out.stdout.toLowerCase().includes(`[${q1.mac}]`);
    }, { timeoutMs: 30_000, what: 'h1 to answer ARP for the new port' });
    console.log(`# one port removed and one added: answered on h1 ${(performance.now() - t1).toFixed(0)} ms after the first request (arping polls)`);
    assert.equal((await blue()).fdb.static, SIZE, 'one pin went, one came');
    assert.equal((await watch()).states, statesBefore, 'no full state was needed');
    const old = await lab.exec('vm1', 'arping', '-c', '1', '-w', '1', '-I', 'eth0', gone.ips[0]);
    assert.ok(!old.stdout.toLowerCase().includes(`[${gone.mac}]`), `the removed port's MAC is not answered any more: ${old.stdout}`);
  });
});
