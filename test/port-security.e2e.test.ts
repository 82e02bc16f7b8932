/**
 * Port security, end to end, with real kernel stacks in the VMs: a VM sends only as itself.
 * A spoofed source address, a borrowed MAC, an ARP claim to a neighbour's address, a DHCP
 * server's reply and an IPv6 router advertisement from a VM are dropped and counted, each
 * under its own reason; an allowed address pair lets a VM carry a virtual address (with its
 * own MAC, as keepalived would); turning port security off for a port takes effect at once.
 */
import assert from 'node:assert/strict';
import { parseIpv6, parseMac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { Icmpv6Repr } from '../src/wire/icmpv6.js';
import { labApi, readLabState } from '../src/lab/lab.js';
import { test, e2eSkipReason } from './support/env.js';
import { observe, withLab, type Lab } from './support/lab.js';
import { waitFor } from './support/wait.js';

const skip = e2eSkipReason('ping', 'python3', 'arping', 'tcpdump');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const RAW_SEND = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(("eth0",0))\nfor h in sys.argv[1:]: s.send(bytes.fromhex(h))';

async function drops(lab: Lab, host: string, port: string): Promise<Record<string, number>> {
  return (await lab.stats(host)).ports.find((p) => p.name === port)!.drops as Record<string, number>;
}

test('port security: a VM sends only as itself; an allowed address pair and turning it off work at once', { skip, timeout: 120_000 }, async () => {
  await withLab({
    name: 'e2eportsec',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }],
    // blue2 takes anything in: what is refused here is port security's doing, not a group's.
    securityGroups: [{ name: 'open', rules: [{ direction: 'ingress' }, { direction: 'egress' }] }],
    vms: [
      { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', securityGroups: ['open', 'default'] },
      // Two VMs that may both carry 10.10.0.100, as a keepalived pair would.
      { name: 'vip1', host: 'h1', network: 'blue', ip: '10.10.0.3/24', allowedAddresses: ['10.10.0.100'] },
      { name: 'vip2', host: 'h2', network: 'blue', ip: '10.10.0.4/24', allowedAddresses: ['10.10.0.100'] },
    ],
  }, async (lab) => {
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');

    // A source address that is not the port's.
    await lab.run('blue1', 'ip', 'addr', 'add', '10.10.0.77/32', 'dev', 'eth0');
    assert.notEqual((await lab.exec('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '1', '-I', '10.10.0.77', '10.10.0.2')).code, 0);
    assert.ok((await drops(lab, 'h1', 'blue1'))['spoofed-ip'] >= 2);
    // A borrowed MAC, ARP claiming a neighbour's address (gratuitous, as an attacker
    // poisoning caches would), a DHCP server's reply, a router advertisement.
    const blue1Mac = parseMac('02:57:46:00:00:01');
    const claim = compose.ethernet(0xffffffffffff, blue1Mac, EtherType.Arp, compose.arp(2, blue1Mac, 0x0a0a0002, 0xffffffffffff, 0x0a0a0002));
    const borrowed = compose.ethernet(0xffffffffffff, parseMac('02:57:46:00:00:09'), EtherType.Ipv4, compose.udpV4(0x0a0a0001, 0x0a0a00ff, 5000, 5000, new Uint8Array(4)));
    const offer = compose.ethernet(0xffffffffffff, blue1Mac, EtherType.Ipv4, compose.udpV4(0x0a0a0001, 0xffffffff, 67, 68, new Uint8Array(240)));
    const ll = parseIpv6('fe80::57:46ff:fe00:1');
    // A router advertisement: hop limit 64, router lifetime 1800 s, no options.
    const ra = compose.ethernet(0x333300000001, blue1Mac, EtherType.Ipv6, compose.icmpv6(ll, parseIpv6('ff02::1'), new Icmpv6Repr(134, 0, 0x4000_0708, new Uint8Array(8))));
    // The victim, blue2, sees none of it (tcpdump in it).
    const seen = await observe(lab.name, ['blue2'], 'not icmp6 or icmp6[0] == 134', async () => {
      await lab.run('blue1', 'python3', '-c', RAW_SEND, hex(borrowed), hex(claim), hex(offer), hex(ra));
      // Until h1 has dropped all four (the observer's own tail then covers a late arrival).
      await waitFor(async () => {
        const d = await drops(lab, 'h1', 'blue1');
        return ['spoofed-mac', 'spoofed-arp', 'dhcp-server', 'router-advertisement'].every((r) => (d[r] ?? 0) >= 1);
      }, { what: 'h1 to drop the four spoofed frames from blue1' });
    });
    assert.deepEqual(seen.blue2.filter((l) => /02:57:46:00:00:09|10\.10\.0\.2 is-at 02:57:46:00:00:01|\.67 > |router advertisement/.test(l)), [], 'a spoofed frame reached blue2');
    const d = await drops(lab, 'h1', 'blue1');
    assert.equal(d['spoofed-mac'], 1);
    assert.equal(d['spoofed-arp'], 1);
    assert.equal(d['dhcp-server'], 1);
    assert.equal(d['router-advertisement'], 1);
    // blue1 itself still works.
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');

    // An allowed address: vip1 carries 10.10.0.100, announces it (gratuitous ARP) and is
    // reached there; then it moves to vip2, on the other host, and blue2 follows it.
    const neighbour = async () => (await lab.run('blue2', 'ip', 'neigh', 'show', '10.10.0.100')).trim();
    await lab.run('vip1', 'ip', 'addr', 'add', '10.10.0.100/24', 'dev', 'eth0');
    await lab.run('vip1', 'arping', '-U', '-c', '1', '-I', 'eth0', '10.10.0.100');
    await lab.run('blue2', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.100');
    assert.match(await neighbour(), /lladdr 02:57:46:00:00:03/);
    await lab.run('vip1', 'ip', 'addr', 'del', '10.10.0.100/24', 'dev', 'eth0');
    await lab.run('vip2', 'ip', 'addr', 'add', '10.10.0.100/24', 'dev', 'eth0');
    await lab.run('vip2', 'arping', '-U', '-c', '2', '-I', 'eth0', '10.10.0.100');
    await lab.run('blue2', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.100');
    assert.match(await neighbour(), /lladdr 02:57:46:00:00:04/, 'blue2 took the new holder\'s MAC from its gratuitous ARP');

    // Port security off for blue1, through the API: its second address works now, live.
    const api = labApi(readLabState(lab.name)!.plan);
    await api.call('PATCH', '/v1/ports/blue1', { portSecurity: false });
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) ok = (await lab.exec('blue1', 'ping', '-c', '1', '-W', '1', '-I', '10.10.0.77', '10.10.0.2')).code === 0;
    assert.ok(ok, 'with port security off, the port sends from any address');
  });
});
