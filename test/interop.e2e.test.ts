/**
 * Interoperability: one host runs a Weft agent, the other the Linux kernel's own overlay
 * (a bridge with a VXLAN device). VMs on the two talk in both directions, with Weft's
 * offloads on (the VM hands over TCP super-frames, Weft cuts them, sends runs with UDP GSO,
 * receives with GRO and joins segments for the VM), and tshark, an independent decoder,
 * checks every inner checksum Weft put on the underlay.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { test, e2eSkipReason } from './support/env.js';
import { captureUnderlay, iperfReceiverBps, withLab } from './support/lab.js';
import { waitForListening } from './support/wait.js';

const skip = e2eSkipReason('ping', 'iperf3', 'bridge', 'tcpdump', 'tshark', 'ethtool');

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
      await waitForListening(lab, server, 5201);
      const bps = iperfReceiverBps(await lab.run(client, 'iperf3', '-c', address, '-t', '2', '--json'));
      assert.ok(bps > 1e6, `${client} -> ${server}: ${bps} bit/s`);
    }
    const tunnel = (await lab.stats('weft')).tunnels[0];
    assert.deepEqual(tunnel.drops, {}, 'the kernel\'s VXLAN packets are all accepted');

    // Every segment Weft cut carries finished inner checksums. The underlay link's own UDP
    // segmentation offload is off for the capture, so that it sees each datagram instead
    // of a run (Weft still sends runs with UDP GSO; the kernel cuts them in software).
    await lab.run('weft', 'ethtool', '-K', 'eth0', 'tx-udp-segmentation', 'off');
    await lab.run('vmk', 'iperf3', '-s', '-D', '-1');
    await waitForListening(lab, 'vmk', 5201);
    const pcap = await captureUnderlay(lab, 'weft', 'udp dst port 4789', () => lab.run('vmw', 'iperf3', '-c', '10.30.0.2', '-n', '20M'));
    try {
      const fields = spawnSync('tshark', ['-r', pcap, '-d', 'udp.port==4789,vxlan', '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
        '-Y', 'tcp.len > 0', '-T', 'fields', '-e', 'tcp.checksum.status', '-e', 'ip.checksum.status', '-e', 'tcp.len'], { encoding: 'utf8' });
      // (tshark may exit 2 for the last packet, cut short when tcpdump was stopped.)
      const rows = fields.stdout.trim().split('\n').map((l) => l.split('\t'));
      assert.ok(rows.length > 1000, `tshark decoded ${rows.length} data segments`);
      // Checksum status: 1 good (0 bad, 2 unverified). The IP field lists outer and inner.
      const bad = rows.filter(([tcp, ip]) => tcp !== '1' || ip.split(',').at(-1) !== '1');
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} of ${rows.length} segments with a checksum not finished`);
      assert.ok(rows.every(([, , len]) => Number(len) <= 1450 - 52), 'no segment beyond the overlay MTU');
    } finally {
      rmSync(dirname(pcap), { recursive: true, force: true });
    }
  });
});
