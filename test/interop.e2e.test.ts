/**
 * Interoperability: one host runs a Weft agent, the other the Linux kernel's own overlay
 * (a bridge with a VXLAN device). VMs on the two talk in both directions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eSkipReason } from './support/env.js';
import { iperfReceiverBps, withLab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'iperf3', 'bridge');

test('a Weft host and a Linux kernel VXLAN host carry traffic both ways', { skip, timeout: 60_000 }, async () => {
  await withLab({
    name: 'e2einterop',
    hosts: [{ name: 'weft' }, { name: 'kernel', datapath: 'linux' }],
    networks: [{ name: 'blue', vni: 4242, encapsulation: 'vxlan' }],
    vms: [
      { name: 'vmw', host: 'weft', network: 'blue', ip: '10.30.0.1/24' },
      { name: 'vmk', host: 'kernel', network: 'blue', ip: '10.30.0.2/24' },
    ],
  }, async (lab) => {
    await lab.run('vmw', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.30.0.2');
    await lab.run('vmk', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.30.0.1');
    // The kernel learned our VM's MAC behind our VTEP, as it would from another kernel.
    const fdb = await lab.run('kernel', 'bridge', 'fdb', 'show', 'dev', 'vx4242');
    assert.match(fdb, /02:57:46:00:00:01 dst 10\.99\.0\.1/);
    for (const [client, server, address] of [['vmw', 'vmk', '10.30.0.2'], ['vmk', 'vmw', '10.30.0.1']]) {
      await lab.run(server, 'iperf3', '-s', '-D', '-1');
      await new Promise((r) => setTimeout(r, 300));
      const bps = iperfReceiverBps(await lab.run(client, 'iperf3', '-c', address, '-t', '2', '--json'));
      assert.ok(bps > 1e6, `${client} -> ${server}: ${bps} bit/s`);
    }
    const tunnel = (await lab.stats('weft')).tunnels[0];
    assert.deepEqual(tunnel.drops, {}, 'the kernel\'s VXLAN packets are all accepted');
  });
});
