/**
 * The distributed router, end to end: VMs on two networks (VXLAN and Geneve) on two hosts,
 * joined by a router made through the controller's API. A VM's packet to the other subnet
 * is routed on its own host (TTL decremented, MACs rewritten) and crosses the underlay once,
 * on the destination network's tunnel.
 */
import assert from 'node:assert/strict';
import { test, e2eSkipReason } from './support/env.js';
import { withLab } from './support/lab.js';
import { waitForListening } from './support/wait.js';

const skip = e2eSkipReason('ping', 'python3', 'busybox', 'ss');

test('a router joins two networks: VMs reach each other across subnets and hosts, routed where they run', { skip, timeout: 90_000 }, async () => {
  await withLab({
    name: 'e2erouter',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200, encapsulation: 'geneve', mtu: 1400 }],
    // 10.40.0.0/24 lies behind blue2, as behind an appliance VM.
    routers: [{ name: 'r1', networks: ['blue', 'red'], routes: [{ cidr: '10.40.0.0/24', nextHop: '10.10.0.2' }] }],
    vms: [
      { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      // An appliance: it answers for 10.40.0.0/24, so it may send from there.
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', allowedAddresses: ['10.40.0.0/24'] },
      { name: 'red1', host: 'h1', network: 'red', ip: '10.20.0.1/24' },
      { name: 'red2', host: 'h2', network: 'red', ip: '10.20.0.2/24', dhcp: true },
    ],
  }, async (lab) => {
    const tunnel = async (remote: string) => (await lab.stats('h1')).tunnels.find((t) => t.remote === remote)?.tx.frames ?? 0;
    const [blueBefore, redBefore] = [await tunnel('10.99.0.2:4789'), await tunnel('10.99.0.2:6081')];
    // Across hosts: blue1 (h1) -> red2 (h2). One router hop: the reply's TTL is 64 - 1.
    const out = await lab.run('blue1', 'ping', '-c', '10', '-i', '0.1', '-W', '2', '10.20.0.2');
    assert.match(out, /ttl=63/);
    // Had h2 routed them, the ten requests would have crossed on blue's tunnel (VXLAN);
    // routed on h1, they cross on red's (Geneve). Blue's may carry a little chatter.
    assert.ok(await tunnel('10.99.0.2:6081') - redBefore >= 10, 'the requests went straight to h2 on red\'s tunnel');
    assert.ok(await tunnel('10.99.0.2:4789') - blueBefore < 10, 'the requests did not cross on blue\'s tunnel');
    // On one host: blue1 -> red1; and the DHCP VM routes back through its own gateway.
    await lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.20.0.1');
    assert.match(await lab.run('red2', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.1'), /ttl=63/);
    // A static route: red1 reaches 10.40.0.1, an address blue2 holds, through blue2.
    await lab.run('blue2', 'ip', 'addr', 'add', '10.40.0.1/32', 'dev', 'lo');
    await lab.run('red1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.40.0.1');
    // Somewhere no router goes: counted, not flooded, and the sender is told.
    const r = await lab.exec('blue1', 'ping', '-c', '1', '-W', '1', '10.30.0.1');
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /From 10\.10\.0\.254 icmp_seq=1 Destination Net Unreachable/);
    assert.equal((await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!.drops['no-route'], 1);
    // The gateway answers pings, and traceroute shows it as the first hop.
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.254');
    const trace = await lab.run('blue1', 'busybox', 'traceroute', '-n', '-q', '1', '-w', '2', '-m', '3', '10.20.0.2');
    assert.match(trace, /^\s*1\s+10\.10\.0\.254 /m);
    assert.match(trace, /^\s*2\s+10\.20\.0\.2 /m);
    // Path MTU discovery across networks of different MTU: red's is 1400, blue's 1418 (it is
    // encrypted). A full-size packet with DF gets "fragmentation needed" naming 1400, and TCP
    // adapts.
    const big = await lab.exec('blue1', 'ping', '-c', '1', '-W', '1', '-M', 'do', '-s', '1390', '10.20.0.2');
    assert.match(big.stdout, /Frag needed and DF set \(mtu = 1400\)/);
    assert.match(await lab.run('blue1', 'ip', 'route', 'get', '10.20.0.2'), /mtu 1400/, 'the kernel took the path MTU');
    await lab.run('blue1', 'ip', 'route', 'flush', 'cache');
    // red2 claims more than its network carries, so TCP's MSS alone would not save the
    // transfer: it completes only because the router's ICMP makes blue1 send smaller.
    await lab.run('red2', 'ip', 'link', 'set', 'eth0', 'mtu', '1418');
    const server = lab.run('red2', 'python3', '-c', [
      'import socket', 's = socket.socket()', 's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)', 's.bind(("0.0.0.0", 5001))', 's.listen(1)',
      'print("listening", flush=True)', 'c, _ = s.accept()', 'n = 0',
      'while True:', '    b = c.recv(65536)', '    if not b: break', '    n += len(b)', 'print(n)',
    ].join('\n'));
    await waitForListening(lab, 'red2', 5001);
    await lab.run('blue1', 'python3', '-c', 'import socket; s = socket.create_connection(("10.20.0.2", 5001)); s.sendall(bytes(4 * 1024 * 1024)); s.close()');
    assert.equal((await server).trim().split('\n').pop(), String(4 * 1024 * 1024), 'a 4 MiB TCP transfer arrived whole');
  });
});
