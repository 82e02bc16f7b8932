/**
 * DHCP from each host's agent, to real clients: busybox udhcpc in lab VMs on two hosts gets
 * its address, mask, router and the overlay's MTU from the controller's allocation, answered
 * by its own host; a change of DNS servers and domain reaches the next lease; a RELEASE is counted; a
 * subnet with DHCP off answers nothing; the gateway answers ARP from the router MAC.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dhcpClient, labApi, labDir, readLabState, vmResolvConf } from '../src/lab/lab.js';
import { test, e2eSkipReason, hasCommand } from './support/env.js';
import { withLab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'arping') || (hasCommand('busybox') ? false : 'needs busybox (udhcpc): apt-get install busybox');

test('VMs on two hosts get their addresses, router and MTU by DHCP from their own host', { skip, timeout: 120_000 }, async () => {
  await withLab({
    name: 'e2edhcp',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }],
    vms: [
      { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24', dhcp: true },
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', dhcp: true },
    ],
  }, async (lab) => {
    // The lab ran udhcpc in each VM; what it configured came from DHCP alone.
    assert.match(await lab.run('blue1', 'ip', '-4', '-o', 'addr', 'show', 'eth0'), /inet 10\.10\.0\.1\/24 /);
    assert.equal((await lab.run('blue1', 'cat', '/sys/class/net/eth0/mtu')).trim(), '1418', 'option 26: the overlay MTU (VXLAN in an encrypted tunnel), not Ethernet\'s 1500');
    assert.match(await lab.run('blue2', 'ip', 'route', 'show', 'default'), /^default via 10\.10\.0\.254 dev eth0/);
    await lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
    // Each host answered its own VM.
    for (const [host, vm] of [['h1', 'blue1'], ['h2', 'blue2']]) {
      const port = (await lab.stats(host)).ports.find((p) => p.name === vm)!;
      assert.ok((port.dhcp?.offer ?? 0) >= 1 && (port.dhcp?.ack ?? 0) >= 1, `${vm}: ${JSON.stringify(port.dhcp)}`);
    }
    // The gateway's address is answered from the router MAC.
    assert.match(await lab.run('blue1', 'arping', '-c', '1', '-w', '2', '-I', 'eth0', '10.10.0.254'), /02:57:46:ff:ff:fe/i);

    // New DNS servers and a domain for the subnet reach the next lease (the domain as the
    // search list, option 119).
    const api = labApi(readLabState(lab.name)!.plan);
    await api.call('PATCH', '/v1/subnets/blue-v4', { dns: ['10.10.0.53', '10.10.0.54'], domain: 'Blue.Example.Internal.' });
    const plan = readLabState(lab.name)!.plan;
    const blue1 = plan.vms.find((v) => v.name === 'blue1')!;
    let resolv = '';
    for (let i = 0; i < 20 && !resolv.includes('10.10.0.53'); i++) {
      await dhcpClient(plan, blue1);
      resolv = readFileSync(vmResolvConf(lab.name, 'blue1'), 'utf8');
    }
    assert.equal(resolv, 'nameserver 10.10.0.53\nnameserver 10.10.0.54\nsearch blue.example.internal\n');

    // A running client renews, then releases (SIGUSR1, SIGUSR2 to busybox udhcpc): counted.
    const released = async () => (await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!.dhcp ?? {};
    const before = await released();
    const client = spawn('ip', ['netns', 'exec', blue1.netns, 'busybox', 'udhcpc', '-f', '-i', 'eth0', '-t', '5', '-T', '1', '-s', join(labDir(lab.name), 'udhcpc.sh')],
      { env: { ...process.env, WEFT_RESOLV: vmResolvConf(lab.name, 'blue1') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    client.stdout.on('data', (d) => (log += d));
    client.stderr.on('data', (d) => (log += d));
    try {
      const waitFor = async (what: RegExp) => {
        for (const deadline = Date.now() + 15_000; !what.test(log);) {
          if (Date.now() > deadline) throw new Error(`udhcpc never said ${what}:\n${log}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      await waitFor(/lease of 10\.10\.0\.1 obtained/);
      client.kill('SIGUSR1'); // renew now: a unicast REQUEST to the server
      await waitFor(/lease of 10\.10\.0\.1 obtained[\s\S]*lease of 10\.10\.0\.1 obtained/);
      client.kill('SIGUSR2'); // release
      await waitFor(/entering released state/);
    } finally {
      client.kill('SIGTERM');
    }
    const after = await released();
    assert.equal(after.released, (before.released ?? 0) + 1, log);
    assert.ok((after.ack ?? 0) >= (before.ack ?? 0) + 2, 'the lease and its renewal were ACKed');
    await dhcpClient(plan, blue1); // configured again for what follows

    // DHCP off for the subnet: no answer at all.
    await api.call('PATCH', '/v1/subnets/blue-v4', { dhcp: false });
    let answered = true;
    for (let i = 0; i < 20 && answered; i++) {
      answered = (await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!.dhcp !== null;
      if (answered) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(answered, false, 'the agent stopped serving DHCP to blue1');
    await assert.rejects(dhcpClient(plan, blue1), /got no DHCP lease/);
  });
});
