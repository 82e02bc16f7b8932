/**
 * IPv6, end to end: each network has a /64; every host sends router advertisements to its
 * own VMs (the prefix, the network's MTU, its router's link-local address as the default
 * router), the VMs' kernels make their addresses by SLAAC, and the distributed router
 * routes between the two networks with the errors a router owes (Packet Too Big, so path
 * MTU discovery works; unreachable). tcpdump decodes an advertisement independently.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test, e2eSkipReason } from './support/env.js';
import { withLab, type Lab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'tcpdump');

/** The VM's global address once duplicate address detection is done. */
async function slaacAddress(lab: Lab, vm: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const out = await lab.run(vm, 'ip', '-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global');
    const m = /inet6 ([0-9a-f:]+)\/64/.exec(out);
    if (m && !out.includes('tentative')) return m[1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${vm} made no IPv6 address from the router advertisements`);
}

test('IPv6: SLAAC from each host\'s router advertisements, and routing between networks', { skip, timeout: 90_000 }, async () => {
  await withLab({
    name: 'e2eipv6',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100, ipv6: 'fd00:10::/64' }, { name: 'red', vni: 200, encapsulation: 'geneve', mtu: 1400, ipv6: 'fd00:20::/64' }],
    routers: [{ name: 'r1', networks: ['blue', 'red'] }],
    vms: [
      { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
      { name: 'red2', host: 'h2', network: 'red', ip: '10.20.0.2/24' },
    ],
  }, async (lab) => {
    // The addresses are the modified EUI-64 of each VM's MAC (02:57:46:00:00:0N), as the
    // controller worked them out for neighbour discovery and routing.
    assert.equal(await slaacAddress(lab, 'blue1'), 'fd00:10::57:46ff:fe00:1');
    const blue2 = await slaacAddress(lab, 'blue2');
    const red2 = await slaacAddress(lab, 'red2');
    assert.equal(red2, 'fd00:20::57:46ff:fe00:3');
    assert.match(await lab.run('red2', 'ip', 'link', 'show', 'eth0'), /mtu 1400/, 'the MTU option');
    assert.match(await lab.run('blue1', 'ip', '-6', 'route'), /default via fe80::57:46ff:feff:fffe dev eth0 proto ra/);

    // Across hosts on one network, and through the router (one hop: hop limit 63).
    await lab.run('blue1', 'ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', blue2);
    assert.match(await lab.run('blue1', 'ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', red2), /ttl=63/);
    // Packet Too Big: red's MTU is 1400, blue's 1418 (encrypted); the kernel takes the path MTU.
    const big = await lab.exec('blue1', 'ping', '-6', '-c', '1', '-W', '1', '-M', 'do', '-s', '1360', red2);
    assert.notEqual(big.code, 0);
    assert.match(await lab.run('blue1', 'ip', '-6', 'route', 'get', red2), /mtu 1400/);
    const none = await lab.exec('blue1', 'ping', '-6', '-c', '1', '-W', '1', 'fd00:30::1');
    assert.match(none.stdout, /From fe80::57:46ff:feff:fffe%eth0 icmp_seq=1 Destination unreachable: No route/);

    // An advertisement as tcpdump reads it: a router solicitation (eth0 down and up) is
    // answered with the prefix, the MTU and the router's MAC.
    const dump = spawn('ip', ['netns', 'exec', `weft-${lab.name}-blue2`, 'tcpdump', '-i', 'eth0', '-n', '-l', '-vv', '-c', '1', 'icmp6 and ip6[40] == 134'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    dump.stdout.on('data', (d) => (text += d));
    await new Promise<void>((resolve) => dump.stderr.on('data', (d) => String(d).includes('listening on') && resolve()));
    const done = new Promise<void>((resolve) => dump.on('exit', () => resolve()));
    await lab.run('blue2', 'ip', 'link', 'set', 'eth0', 'down');
    await lab.run('blue2', 'ip', 'link', 'set', 'eth0', 'up');
    const timer = setTimeout(() => dump.kill(), 15_000);
    await done;
    clearTimeout(timer);
    assert.match(text, /fe80::57:46ff:feff:fffe > .*ICMP6, router advertisement/);
    assert.match(text, /router lifetime 1800s/);
    assert.match(text, /source link-address option \(1\), length 8 \(1\): 02:57:46:ff:ff:fe/);
    assert.match(text, /mtu option \(5\), length 8 \(1\):  1418/, 'blue is encrypted: VXLAN in a tunnel leaves 1418');
    assert.match(text, /prefix info option \(3\), length 32 \(4\): fd00:10::\/64, Flags \[onlink, auto\]/);
  });
});
