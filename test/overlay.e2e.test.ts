/**
 * The quickstart's overlay, end to end: two hosts, each a network namespace running a Weft
 * agent; VMs are namespaces whose eth0 is a TAP the agent attaches to. Real kernel stacks
 * on both ends: ping, iperf3, ARP, and tcpdump as an independent observer.
 */
import assert from 'node:assert/strict';
import { test, e2eSkipReason } from './support/env.js';
import { iperfReceiverBps, observe, withLab } from './support/lab.js';
import { waitForListening } from './support/wait.js';

const skip = e2eSkipReason('iperf3', 'ping', 'tcpdump', 'arping');

// blue and red use the same IP subnet on purpose: only the overlay keeps them apart.
const topology = {
  name: 'e2eoverlay',
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [
    { name: 'blue', vni: 100, encapsulation: 'vxlan' },
    { name: 'red', vni: 200, encapsulation: 'geneve' },
  ],
  vms: [
    { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
    { name: 'blue3', host: 'h1', network: 'blue', ip: '10.10.0.3/24' },
    { name: 'red1', host: 'h1', network: 'red', ip: '10.10.0.11/24' },
    { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
    { name: 'red2', host: 'h2', network: 'red', ip: '10.10.0.12/24' },
  ],
};

test('VMs on different hosts talk over VXLAN and Geneve; the networks stay apart', { skip, timeout: 120_000 }, async (t) => {
  await withLab(topology, async (lab) => {
    await t.test('ping crosses hosts on both networks', async () => {
      await lab.run('blue1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.10.0.2');
      await lab.run('red1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.10.0.12');
    });

    await t.test('a TCP transfer (iperf3) crosses hosts on both networks', async () => {
      for (const [client, server, address] of [['blue1', 'blue2', '10.10.0.2'], ['red1', 'red2', '10.10.0.12']]) {
        await lab.run(server, 'iperf3', '-s', '-D', '-1');
        await waitForListening(lab, server, 5201);
        const out = await lab.run(client, 'iperf3', '-c', address, '-t', '2', '--json');
        const bps = iperfReceiverBps(out);
        assert.ok(bps > 1e6, `${client} -> ${server}: ${bps} bit/s`);
      }
    });

    await t.test('no reachability between blue and red, though they share a subnet', async () => {
      const r = await lab.exec('blue1', 'ping', '-c', '2', '-W', '1', '10.10.0.12');
      assert.notEqual(r.code, 0, 'blue1 must not reach red2');
      const r2 = await lab.exec('red1', 'ping', '-c', '2', '-W', '1', '10.10.0.2');
      assert.notEqual(r2.code, 0, 'red1 must not reach blue2');
    });

    await t.test('an ARP broadcast reaches every VM of its network and no other', async () => {
      const seen = await observe(lab.name, ['blue2', 'blue3', 'red1', 'red2'], 'arp and host 10.10.0.77', () =>
        lab.exec('blue1', 'arping', '-c', '3', '-w', '3', '-I', 'eth0', '10.10.0.77'));
      assert.equal(seen.blue2.length, 3, `blue2 (other host) saw: ${seen.blue2.join('\n')}`);
      assert.equal(seen.blue3.length, 3, `blue3 (same host) saw: ${seen.blue3.join('\n')}`);
      assert.deepEqual(seen.red1, [], 'red1 must see none');
      assert.deepEqual(seen.red2, [], 'red2 must see none');
      for (const line of seen.blue2) assert.match(line, /ff:ff:ff:ff:ff:ff/);
    });

    await t.test('the counters saw it: frames and bytes in and out on ports and the tunnel', async () => {
      const s = await lab.stats('h1');
      const blue1 = s.ports.find((p) => p.name === 'blue1')!;
      assert.ok(blue1.rx.frames > 1000 && blue1.tx.frames > 100, JSON.stringify(blue1));
      // One tunnel per encapsulation to h2: VXLAN on 4789, Geneve on 6081.
      const tunnel = s.tunnels.find((x) => x.remote === '10.99.0.2:4789')!;
      assert.deepEqual(tunnel.networks, ['blue']);
      assert.deepEqual(s.tunnels.find((x) => x.remote === '10.99.0.2:6081')!.networks, ['red']);
      assert.ok(tunnel.tx.bytes > 1e6);
    });
  });
});
