/**
 * Drops the kernel makes are shown beside Weft's: frames a VM sent that were lost in its TAP
 * device's queue before the agent read them, and datagrams lost in the underlay socket's
 * receive buffer. The agent is stopped (SIGSTOP) so that both queues overflow for certain,
 * then resumed to report.
 */
import assert from 'node:assert/strict';
import { readLabState } from '../src/lab/lab.js';
import { test, e2eSkipReason } from './support/env.js';
import { twoNetworks, withLab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'python3');

test('weft stats shows what the kernel dropped on a TAP and on the underlay socket', { skip, timeout: 90_000 }, async () => {
  await withLab(twoNetworks('e2ekdrop'), async (lab) => {
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');
    const before = await lab.stats('h1');
    assert.equal(before.ports.find((p) => p.name === 'blue1')!.kernel?.rxDropped, 0);
    assert.equal(before.underlays.find((u) => u.encapsulation === 'vxlan')!.kernel?.rxDropped, 0);

    const agent = readLabState(lab.name)!.agents.h1;
    process.kill(agent, 'SIGSTOP');
    try {
      // 3,000 frames from the VM: more than the TAP's queue (1,000) holds.
      await lab.run('blue1', 'python3', '-c', [
        'import socket',
        's = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)',
        's.bind(("eth0", 0))',
        'f = bytes.fromhex("ffffffffffff025746000001" + "88b5") + bytes(46)',
        'for _ in range(3000): s.send(f)',
      ].join('\n'));
      // 40,000 datagrams to h1's VXLAN port from h2: more than its socket buffer holds.
      await lab.run('h2', process.execPath, '-e', [
        "const s = require('node:dgram').createSocket('udp4');",
        'const b = Buffer.alloc(64); let n = 0;',
        "const go = () => { for (let i = 0; i < 500 && n < 40000; i++, n++) s.send(b, 4789, '10.99.0.1'); if (n < 40000) setImmediate(go); else setTimeout(() => s.close(), 200); };",
        'go();',
      ].join('\n'));
    } finally {
      process.kill(agent, 'SIGCONT');
    }
    const after = await lab.stats('h1');
    const tap = after.ports.find((p) => p.name === 'blue1')!.kernel!;
    const sock = after.underlays.find((u) => u.encapsulation === 'vxlan')!.kernel!;
    assert.ok(tap.rxDropped >= 1000, `the TAP's queue dropped ${tap.rxDropped} of 3000`);
    assert.ok(sock.rxDropped > 0, `the socket dropped ${sock.rxDropped}`);
    await lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
  });
});
