import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv4, parseIpv4, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { Tunnels } from '../tunnel/tunnels.js';
import { generateKeyPair } from '../tunnel/noise.js';
import { TableBuilder } from './tables.js';
import { Datapath } from './datapath.js';
import { MemoryFabric } from './memory.js';

const VXLAN = 4789;
const TUNNEL = 4793;
const H1 = parseIpv4('192.0.2.1');
const H2 = parseIpv4('192.0.2.2');
const mac = (n: number) => parseMac(`02:00:00:00:00:0${n}`);
const ip = (n: number) => parseIpv4(`10.0.0.${n}`);
const SECRET = 'a secret only the VMs know';

/** Two hosts with `green`, an encrypted network (VNI 300), and their VXLAN sockets too. */
function twoHosts() {
  const fabric = new MemoryFabric();
  const seen: Uint8Array[] = [];
  const deliver = fabric.deliver.bind(fabric);
  fabric.deliver = (toAddress, toPort, data, fromAddress, fromPort) => {
    seen.push(Uint8Array.from(data));
    deliver(toAddress, toPort, data, fromAddress, fromPort);
  };
  let now = 1000;
  const keys = [generateKeyPair(), generateKeyPair()];
  const hosts = [H1, H2].map((address, i) => {
    const dp = new Datapath();
    const vxlan = fabric.underlay(address, VXLAN);
    dp.attachUnderlay(vxlan, address, VXLAN, 'vxlan');
    const tunnels = new Tunnels({ privateKey: keys[i].privateKey, maxPlaintext: 2048 });
    dp.attachTunnels(fabric.underlay(address, TUNNEL), address, TUNNEL, tunnels);
    dp.startUnderlay(() => now);
    dp.addNetwork({ name: 'green', vni: 300, encapsulation: 'vxlan', encrypted: true });
    dp.setTables('green', new TableBuilder().members([{ address: address === H1 ? H2 : H1, port: TUNNEL, key: Buffer.from(keys[1 - i].publicKey).toString('base64') }]).build());
    const port = fabric.port(`green${i + 1}`);
    dp.addPort({ name: `green${i + 1}`, backend: port, mode: 'access', network: 'green' });
    dp.startPort(`green${i + 1}`, () => now);
    return { dp, vxlan, port, tunnels };
  });
  return { fabric, hosts, seen, advance: (ms: number) => (now += ms) };
}

const ping = (from: number, to: number) =>
  compose.ethernet(mac(to), mac(from), EtherType.Ipv4, compose.icmpEchoV4(ip(from), ip(to), 1, 1, new TextEncoder().encode(SECRET)));

test('an encrypted network: frames cross sealed, the first held for the handshake, and nothing of them shows on the underlay', () => {
  const { fabric, hosts, seen } = twoHosts();
  assert.equal(hosts[0].dp.networkMtu('green'), 1500 - 50 - 32, 'VXLAN plus the tunnel header and tag');
  hosts[0].port.send(compose.ethernet(0xffffffffffff, mac(1), EtherType.Arp, compose.arpRequest(mac(1), ip(1), ip(2))));
  fabric.run();
  assert.equal(hosts[1].port.take().length, 1, 'the ARP request, held and then sealed');
  for (let i = 0; i < 5; i++) hosts[0].port.send(ping(1, 2));
  hosts[1].port.send(ping(2, 1));
  fabric.run();
  assert.equal(hosts[1].port.take().length, 5);
  assert.equal(hosts[0].port.take().length, 1);
  const text = (d: Uint8Array) => Buffer.from(d).toString('latin1');
  assert.ok(seen.length >= 8);
  assert.ok(seen.every((d) => !text(d).includes(SECRET) && d[0] >= 1 && d[0] <= 4), 'every datagram is a tunnel message, none with the payload');
  const s = hosts[0].dp.stats(formatIpv4);
  assert.deepEqual(s.tunnels.map((t) => [t.remote, t.encrypted, t.tunnel?.handshakes]), [['192.0.2.2:4793', true, 1]]);
  assert.equal(s.networks[0].encrypted, true);
  assert.deepEqual(s.underlays.map((u) => u.encapsulation), ['vxlan', 'encrypted']);
});

test('an encrypted network refuses plain VXLAN for its VNI, and counts what the tunnels refuse', () => {
  const { fabric, hosts, seen } = twoHosts();
  hosts[0].port.send(ping(1, 2));
  fabric.run();
  hosts[1].port.take();
  // Someone who can reach the underlay sends plain VXLAN for green's VNI, from H1's address.
  hosts[1].vxlan.inject(compose.vxlan(300, ping(1, 2)), H1, VXLAN);
  // And replays the sealed datagrams it saw.
  for (const d of seen.filter((x) => x[0] === 4)) fabric.deliver(H2, TUNNEL, d, H1, TUNNEL);
  fabric.run();
  assert.equal(hosts[1].port.take().length, 0, 'nothing delivered');
  const u = hosts[1].dp.stats(formatIpv4).underlays;
  assert.equal(u[0].drops['not-encrypted'], 1);
  assert.ok((u[1].drops['tunnel-replay'] ?? 0) >= 1, JSON.stringify(u[1].drops));
});

test('a remote host removed from every encrypted network is cut off; one added back handshakes anew', () => {
  const { fabric, hosts } = twoHosts();
  hosts[0].port.send(ping(1, 2));
  fabric.run();
  assert.equal(hosts[1].port.take().length, 1);
  hosts[1].dp.setTables('green', new TableBuilder().members([]).build());
  hosts[0].port.send(ping(1, 2));
  fabric.run();
  assert.equal(hosts[1].port.take().length, 0);
  assert.equal(hosts[1].dp.stats(formatIpv4).underlays[1].drops['tunnel-unknown-session'], 1);
});

test('a peer on one encrypted network cannot reach another through its own valid session', () => {
  const { fabric, hosts } = twoHosts();
  // H2 also has blue (VNI 400, encrypted), shared only with a third host: H1 is no member.
  const h3 = generateKeyPair();
  const [h1, h2] = hosts;
  h2.dp.addNetwork({ name: 'blue', vni: 400, encapsulation: 'vxlan', encrypted: true });
  h2.dp.setTables('blue', new TableBuilder().members([{ address: '192.0.2.3', port: TUNNEL, key: Buffer.from(h3.publicKey).toString('base64') }]).build());
  const blueVm = fabric.port('blue2');
  h2.dp.addPort({ name: 'blue2', backend: blueVm, mode: 'access', network: 'blue' });
  h2.dp.startPort('blue2', () => 1000);
  // H1 and H2 have a session, through green.
  h1.port.send(ping(1, 2));
  fabric.run();
  assert.equal(h2.port.take().length, 1);

  // H1's operator puts blue on H1 with H2 as its remote: H1 seals blue's VNI in the session
  // it has with H2, which opens it (the session is valid) and must refuse it.
  h1.dp.addNetwork({ name: 'blue', vni: 400, encapsulation: 'vxlan', encrypted: true });
  h1.dp.setTables('blue', new TableBuilder().members([{ address: H2, port: TUNNEL, key: Buffer.from(h2.tunnels.publicKey).toString('base64') }]).build());
  const intruder = fabric.port('blue1');
  h1.dp.addPort({ name: 'blue1', backend: intruder, mode: 'access', network: 'blue' });
  h1.dp.startPort('blue1', () => 1000);
  intruder.send(ping(5, 6));
  intruder.send(compose.ethernet(0xffffffffffff, mac(5), EtherType.Arp, compose.arpRequest(mac(5), ip(5), ip(6))));
  fabric.run();
  assert.equal(blueVm.take().length, 0, 'nothing reaches blue\'s VM');
  const fromH1 = h2.dp.stats(formatIpv4).tunnels.find((t) => t.remote === '192.0.2.1:4793')!;
  assert.equal(fromH1.drops['unknown-vtep'], 2, JSON.stringify(fromH1.drops));
  assert.equal(fromH1.tunnel?.handshakes, 1, 'through the one session H1 already had');
});
