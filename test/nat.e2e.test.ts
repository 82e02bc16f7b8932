/**
 * A way out and a way in, end to end: VMs on two networks and two hosts behind a router
 * whose external gateway is on a provider network, where the outside world is a machine
 * with a web server. VMs on both hosts reach it through source NAT (one host holds the
 * gateway; the other's packets cross to it once); the outside reaches a VM through its
 * floating address and another through a port forward, and nothing else. When the gateway
 * host's agent dies, the controller moves the gateway and new connections work again; the
 * test says how long that took.
 */
import assert from 'node:assert/strict';
import { test, e2eSkipReason } from './support/env.js';
import { observe, withLab } from './support/lab.js';
import { waitForListening } from './support/wait.js';
import { labApi, labRestart, readLabState } from '../src/lab/lab.js';
import { planLab } from '../src/lab/topology.js';

const skip = e2eSkipReason('ping', 'busybox', 'tcpdump');

const topology = {
  name: 'e2enat',
  controller: true,
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200, encapsulation: 'geneve' }, { name: 'public', vni: 900, provider: {} }],
  outside: { ip: '203.0.113.1/24' },
  routers: [{ name: 'r1', networks: ['blue', 'red'], externalGateway: 'public', forwards: [{ port: 8080, vm: 'red2', vmPort: 80 }] }],
  // The web servers take the web and pings from anywhere; blue1 keeps only the default group.
  securityGroups: [{ name: 'web', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 } }, { direction: 'ingress', protocol: 'icmp', icmp: { type: 8 } }] }],
  vms: [
    { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
    { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', dhcp: true, floating: true, securityGroups: ['default', 'web'] },
    { name: 'red2', host: 'h2', network: 'red', ip: '10.20.0.2/24', securityGroups: ['default', 'web'] },
  ],
};

test('external gateway: VMs on both hosts reach the outside through SNAT; the outside reaches a floating address and a forward, and nothing else; the gateway moves when its host goes', { skip, timeout: 120_000 }, async () => {
  await withLab(topology, async (lab) => {
    const api = labApi(planLab(topology, 'test'));
    const router = await api.call('GET', '/v1/routers/r1') as { externalGateway: { ip: string; activeHost: string } };
    const external = router.externalGateway.ip;
    const gatewayHost = router.externalGateway.activeHost;
    const other = gatewayHost === 'h1' ? 'h2' : 'h1';
    const floating = (await api.call('GET', '/v1/floating-ips/blue2') as { address: string }).address;
    // busybox 1.35's wget crashes with -T: timeout(1) bounds it instead.
    const fetch = (vm: string, url: string) => lab.run(vm, 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', url);

    // Out: from both hosts, seen outside as the router's address (blue1) and the floating
    // address (blue2, which got its own address by DHCP).
    const seen = await observe(lab.name, ['outside'], 'tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0', async () => {
      assert.match(await fetch('blue1', 'http://203.0.113.1/'), /hello from outside/);
      assert.match(await fetch('blue2', 'http://203.0.113.1/'), /hello from outside/);
      await lab.run('red2', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '203.0.113.1');
    });
    const syns = seen.outside.join('\n');
    assert.match(syns, new RegExp(`${external.replaceAll('.', '\\.')}\\.\\d+ > 203\\.0\\.113\\.1\\.80:`), 'blue1 appears as the router');
    assert.match(syns, new RegExp(`${floating.replaceAll('.', '\\.')}\\.\\d+ > 203\\.0\\.113\\.1\\.80:`), 'blue2 appears as its floating address');

    // In: a web server on blue2 through its floating address, and on red2 through the
    // forward of tcp/8080 to its port 80.
    for (const [vm, text] of [['blue2', 'hello from blue2'], ['red2', 'hello from red2']]) {
      await lab.run(vm, 'sh', '-c', `mkdir -p /tmp/www-${vm} && echo '${text}' > /tmp/www-${vm}/index.html`);
      void lab.exec(vm, 'busybox', 'httpd', '-f', '-p', '80', '-h', `/tmp/www-${vm}`);
    }
    for (const vm of ['blue2', 'red2']) await waitForListening(lab, vm, 80);
    assert.match(await fetch('outside', `http://${floating}/`), /hello from blue2/);
    assert.match(await fetch('outside', `http://${external}:8080/`), /hello from red2/);
    await lab.run('outside', 'ping', '-c', '2', '-i', '0.2', '-W', '2', floating);
    // Nothing else opens: another port of the router's address, and blue1, which has no
    // floating address, cannot be reached from outside.
    const gw = async () => (await lab.stats(gatewayHost)).ports.find((p) => p.name === 'uplink:physnet')!.drops['nat-no-mapping'] ?? 0;
    const before = await gw();
    assert.notEqual((await lab.exec('outside', 'timeout', '2', 'busybox', 'wget', '-q', '-O', '-', `http://${external}:80/`)).code, 0);
    assert.ok(await gw() > before, 'the refused SYNs are counted at the gateway');
    const nat = (await lab.stats(gatewayHost)).nats.find((n) => n.router === 'r1')!;
    assert.equal(nat.address, external);
    assert.ok(nat.translatedOut > 0 && nat.translatedIn > 0);

    // The gateway host's agent dies: the controller moves the gateway to the other host,
    // and a VM there connects out again.
    const pid = readLabState(lab.name)!.agents[gatewayHost];
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const vmOnOther = other === 'h1' ? 'blue1' : 'blue2';
    let recovered = 0;
    for (let i = 0; i < 40; i++) {
      const r = await lab.exec(vmOnOther, 'timeout', '1', 'busybox', 'wget', '-q', '-O', '-', 'http://203.0.113.1/');
      if (r.code === 0 && r.stdout.includes('hello from outside')) {
        recovered = Date.now() - killedAt;
        break;
      }
    }
    assert.ok(recovered > 0, `${vmOnOther} never reached the outside after ${gatewayHost}'s agent died`);
    const moved = await api.call('GET', '/v1/routers/r1') as { externalGateway: { activeHost: string } };
    assert.equal(moved.externalGateway.activeHost, other);
    console.log(`# external gateway moved from ${gatewayHost} to ${other}: ${vmOnOther} connected out again ${(recovered / 1000).toFixed(1)} s after the agent died`);
    await labRestart(lab.name, gatewayHost);
  });
});
