/**
 * A trunk port carrying two networks into one VM (VLAN subinterfaces inside it), and the
 * overlay MTU: exactly the MTU crosses with DF set, one byte more is dropped and counted.
 */
import assert from 'node:assert/strict';
import { test, e2eSkipReason } from './support/env.js';
import { withLab } from './support/lab.js';

const skip = e2eSkipReason('ping');

const trunkTopology = (name: string, controller: boolean) => ({
  name,
  controller,
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200, encapsulation: 'geneve' }],
  vms: [
    { name: 'router', host: 'h1', trunk: { 10: { network: 'blue', ip: '10.10.0.1/24' }, 20: { network: 'red', ip: '10.20.0.1/24' } } },
    { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
    { name: 'red2', host: 'h2', network: 'red', ip: '10.20.0.2/24' },
  ],
});

for (const controller of [false, true]) {
  test(`a trunk port carries two networks into one VM by VLAN tag (${controller ? 'made through the controller\'s API' : 'static config'})`, { skip, timeout: 60_000 }, async () => {
    await withLab(trunkTopology(controller ? 'e2etrunkc' : 'e2etrunk', controller), async (lab) => {
      await lab.run('router', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-I', 'eth0.10', '10.10.0.2');
      await lab.run('router', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-I', 'eth0.20', '10.20.0.2');
      await lab.run('blue2', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.1');
      const port = (await lab.stats('h1')).ports.find((p) => p.name === 'router')!;
      assert.equal(port.mode, 'trunk');
      assert.deepEqual(port.networks.sort(), ['blue', 'red']);
      if (controller) {
        // The controller answers ARP for the trunk's addresses on each network.
        const h2 = await lab.stats('h2');
        assert.ok(h2.networks.find((n) => n.name === 'blue')!.arpAnswered + h2.networks.find((n) => n.name === 'red')!.arpAnswered >= 1);
      }
    });
  });
}

test('MTU: a DF ping at exactly the overlay MTU passes, one byte more is dropped and counted', { skip, timeout: 60_000 }, async () => {
  await withLab({
    name: 'e2emtu',
    underlay: { mtu: 1500 },
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }],
    vms: [
      // The VM's own MTU is larger than the overlay's, so the oversized packet leaves the
      // VM and reaches Weft, which must drop it and count it.
      { name: 'big1', host: 'h1', network: 'blue', ip: '10.10.0.1/24', mtu: 1500 },
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
    ],
  }, async (lab) => {
    const mtu = (await lab.stats('h1')).networks.find((n) => n.name === 'blue')!.mtu;
    assert.equal(mtu, 1450, 'VXLAN over a 1500-byte IPv4 underlay leaves 1450');
    // ICMP data + 8 (ICMP) + 20 (IPv4) = the IP packet size.
    await lab.run('big1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-M', 'do', '-s', String(mtu - 28), '10.10.0.2');
    const before = (await lab.stats('h1')).ports.find((p) => p.name === 'big1')!.drops['mtu-exceeded'] ?? 0;
    const r = await lab.exec('big1', 'ping', '-c', '2', '-i', '0.2', '-W', '1', '-M', 'do', '-s', String(mtu - 27), '10.10.0.2');
    assert.notEqual(r.code, 0, 'one byte over the MTU must not arrive');
    const after = (await lab.stats('h1')).ports.find((p) => p.name === 'big1')!.drops['mtu-exceeded'] ?? 0;
    assert.equal(after - before, 2, 'each oversized packet is counted');
  });
});
