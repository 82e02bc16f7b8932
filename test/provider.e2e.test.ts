/**
 * Provider networks, end to end: networks that leave each host on its interface to the
 * physical network (the lab's `phys` bridge) instead of the overlay, flat or on an 802.1Q
 * VLAN, so VMs share an L2 segment with machines on it.
 *
 * This kernel has no 802.1Q devices, so the tags are checked where they travel: tcpdump on
 * the physical switch shows VLAN 100 on the tagged network's frames and none on the flat
 * one's. On a kernel with 802.1Q, a user would check the same with a VLAN device on a
 * machine of the physical network (`ip link add link eth0 name eth0.100 type vlan id 100`)
 * and ping a VM from it.
 */
import assert from 'node:assert/strict';
import { test, e2eSkipReason } from './support/env.js';
import { observe, withLab } from './support/lab.js';
import { labApi } from '../src/lab/lab.js';
import { planLab } from '../src/lab/topology.js';
import { ApiClientError } from '../src/controller/client.js';

const skip = e2eSkipReason('ping', 'busybox', 'tcpdump');

const topology = {
  name: 'e2eprov',
  controller: true,
  hosts: [{ name: 'h1' }, { name: 'h2' }],
  networks: [{ name: 'flat', vni: 300, provider: {} }, { name: 'tagged', vni: 301, provider: { vlan: 100 } }],
  outside: { ip: '203.0.113.1/24' },
  // The physical network's machines may reach the VMs (the default group takes only its members).
  securityGroups: [{ name: 'open', rules: [{ direction: 'ingress' }, { direction: 'egress' }] }],
  vms: [
    { name: 'f1', host: 'h1', network: 'flat', ip: '203.0.113.11/24', dhcp: true },
    { name: 'f2', host: 'h2', network: 'flat', ip: '203.0.113.12/24', securityGroups: ['open'] },
    { name: 't1', host: 'h1', network: 'tagged', ip: '10.50.0.1/24' },
    { name: 't2', host: 'h2', network: 'tagged', ip: '10.50.0.2/24' },
  ],
};

test('provider networks: VMs on a flat network and a VLAN of the physical network, beside a machine on it', { skip, timeout: 90_000 }, async () => {
  await withLab(topology, async (lab) => {
    // A machine of the physical network and a VM share its flat segment; the VM got its
    // address from its own host's DHCP server.
    await lab.run('f1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '203.0.113.1');
    assert.match(await lab.run('f1', 'busybox', 'wget', '-q', '-O', '-', 'http://203.0.113.1/'), /hello from outside/);
    await lab.run('outside', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '203.0.113.12');

    // Across hosts, through the physical switch: tagged on VLAN 100, untagged on flat.
    const seen = await observe(lab.name, ['underlay:phys'], 'icmp or (vlan and icmp)', async () => {
      await lab.run('t1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.50.0.2');
      await lab.run('f1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '203.0.113.12');
    });
    const lines = seen['underlay:phys'];
    assert.ok(lines.filter((l) => /vlan 100, p 0, ethertype IPv4.*10\.50\.0\.1 > 10\.50\.0\.2: ICMP echo request/.test(l)).length >= 3, `tagged requests on the switch:\n${lines.join('\n')}`);
    assert.ok(lines.filter((l) => /10\.50\.0\.2 > 10\.50\.0\.1: ICMP echo reply/.test(l)).every((l) => /vlan 100/.test(l)), 'replies tagged too');
    const flat = lines.filter((l) => /203\.0\.113\.1[12] > 203\.0\.113\.1[12]: ICMP/.test(l));
    assert.ok(flat.length >= 6 && flat.every((l) => !/vlan/.test(l)), `flat frames untagged:\n${flat.join('\n')}`);

    // Not one frame of them crossed the overlay: no tunnel at all.
    const h1 = await lab.stats('h1');
    assert.deepEqual(h1.tunnels, []);
    const uplink = h1.ports.find((p) => p.name === 'uplink:physnet')!;
    assert.deepEqual([...uplink.networks].sort(), ['flat', 'tagged']);
    assert.ok(uplink.tx.frames > 0 && uplink.rx.frames > 0);

    // VLAN 100 is not the flat segment: an untagged machine in its subnet reaches no VM.
    await lab.run('outside', 'ip', 'addr', 'add', '10.50.0.9/24', 'dev', 'eth0');
    const r = await lab.exec('outside', 'ping', '-c', '2', '-i', '0.2', '-W', '1', '10.50.0.2');
    assert.notEqual(r.code, 0, 'untagged frames stay off the VLAN');

    // The API: a port of a provider network on a host without that physical network.
    const api = labApi(planLab(topology, 'test'));
    await api.call('POST', '/v1/hosts', { name: 'h3', address: '10.99.0.30' });
    await assert.rejects(api.call('POST', '/v1/ports', { name: 'f3', network: 'flat', host: 'h3' }), (err: ApiClientError) => {
      assert.equal(err.status, 422);
      assert.match(err.message, /host h3 has no interface on physical network physnet, which network flat is on; give its agent --physical-network physnet=INTERFACE/);
      return true;
    });
    await assert.rejects(api.call('POST', '/v1/networks', { name: 'again', provider: { physicalNetwork: 'physnet', vlan: 100 } }), (err: ApiClientError) => {
      assert.equal(err.status, 409);
      assert.match(err.message, /VLAN 100 of physical network physnet is network tagged's/);
      return true;
    });
  });
});
