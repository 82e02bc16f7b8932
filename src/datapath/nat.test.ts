import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseMac, readMac, readU16, readU32 } from '../wire/bytes.js';
import { finish, pseudoHeaderV4, sumBytes } from '../wire/checksum.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { TcpRepr } from '../wire/tcp.js';
import { Datapath } from './datapath.js';
import { TableBuilder } from './tables.js';
import { MemoryFabric } from './memory.js';
import { ROUTER_MAC } from './router-mac.js';

const NAT_MAC = parseMac('02:57:47:00:00:01');
const UPSTREAM_MAC = parseMac('02:aa:00:00:00:01');
const vmMac = (n: number) => parseMac(`02:00:00:00:00:0${n}`);
const vmIp = (n: number) => parseIpv4(`10.0.0.${n}`);
const EXTERNAL = parseIpv4('203.0.113.5');
const FLOATING = parseIpv4('203.0.113.9');
const UPSTREAM = parseIpv4('203.0.113.1');
const REMOTE = parseIpv4('198.51.100.7');
const SYN = 0x02;
const ACK = 0x10;

/** One host holding router r1's external gateway: VMs on blue (10.0.0.0/24), the external
 * network `ext` on an uplink, a floating address for VM 3 and a forward of tcp/8080 to VM 2. */
function gatewayHost() {
  const fabric = new MemoryFabric();
  const dp = new Datapath();
  const now = 1000;
  dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
  dp.addNetwork({ name: 'ext', vni: 300, encapsulation: 'vxlan', provider: true });
  const blue = new TableBuilder().gateways(['10.0.0.254/24']);
  for (const n of [1, 2, 3]) blue.arp(vmIp(n), vmMac(n));
  dp.setNat('r1', {
    router: 'r1', network: 'ext', address: EXTERNAL, prefixLength: 24, mac: NAT_MAC, nextHop: UPSTREAM,
    floating: [{ outside: FLOATING, inside: vmIp(3) }],
    forwards: [{ protocol: 'tcp', port: 8080, inside: vmIp(2), insidePort: 80 }],
    limit: 4,
  }, [{ cidr: '10.0.0.0/24', network: 'blue' }]);
  blue.external({ router: 'r1' });
  dp.setTables('blue', blue.build());
  const vms = [1, 2, 3].map((n) => {
    const backend = fabric.port(`vm${n}`);
    dp.addPort({ name: `vm${n}`, backend, mode: 'access', network: 'blue' });
    dp.startPort(`vm${n}`, () => now);
    return backend;
  });
  const uplink = fabric.port('uplink');
  dp.addPort({ name: 'uplink', backend: uplink, mode: 'trunk', vlans: {}, nativeNetwork: 'ext', uplink: true });
  dp.startPort('uplink', () => now);
  const stats = () => dp.stats((a) => String(a));
  return { dp, fabric, vms, uplink, stats };
}

/** Checks the IPv4 header checksum and the TCP/UDP/ICMP checksum of a frame. */
function checksumsValid(frame: Uint8Array): boolean {
  const ip = 14;
  const ihl = (frame[ip] & 0x0f) * 4;
  if (finish(sumBytes(frame, ip, ihl)) !== 0) return false;
  const total = readU16(frame, ip + 2);
  const proto = frame[ip + 9];
  const l4Len = total - ihl;
  const pseudo = proto === 1 ? 0 : pseudoHeaderV4(readU32(frame, ip + 12), readU32(frame, ip + 16), proto, l4Len);
  return finish(sumBytes(frame, ip + ihl, l4Len, pseudo)) === 0;
}

const tcp = (src: number, dst: number, sport: number, dport: number, flags: number) =>
  compose.tcpV4(src, dst, new TcpRepr(sport, dport, 1, flags & ACK ? 1 : 0, flags, 1000));

test('source NAT: a VM connects out through the router\'s external address, and the reply comes back', () => {
  const { fabric, vms, uplink, stats } = gatewayHost();
  const syn = compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv4, tcp(vmIp(1), REMOTE, 40000, 443, SYN));
  vms[0].send(syn);
  fabric.run();
  // The next hop's MAC is not known yet: asked for, and the packet counted.
  const [ask] = uplink.take();
  assert.equal(readU16(ask, 12), EtherType.Arp);
  assert.equal(readU32(ask, 14 + 24), UPSTREAM);
  assert.equal(readMac(ask, 6), NAT_MAC);
  assert.equal(stats().ports.find((p) => p.name === 'vm1')!.drops['nat-arp-pending'], 1);
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
  fabric.run();
  vms[0].send(syn);
  fabric.run();
  const [out] = uplink.take();
  assert.equal(readMac(out, 0), UPSTREAM_MAC);
  assert.equal(readMac(out, 6), NAT_MAC);
  assert.equal(readU32(out, 14 + 12), EXTERNAL, 'source: the router\'s external address');
  assert.equal(readU16(out, 34), 40000, 'the VM\'s port, preserved');
  assert.equal(out[14 + 8], 63, 'one router hop');
  assert.ok(checksumsValid(out));

  const synAck = compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, tcp(REMOTE, EXTERNAL, 443, 40000, SYN | ACK));
  uplink.send(synAck);
  fabric.run();
  const [back] = vms[0].take();
  assert.equal(readMac(back, 0), vmMac(1));
  assert.equal(readMac(back, 6), ROUTER_MAC);
  assert.equal(readU32(back, 14 + 16), vmIp(1));
  assert.equal(readU16(back, 36), 40000);
  assert.ok(checksumsValid(back));
  assert.deepEqual(stats().nats.map((n) => [n.router, n.connections, n.translatedOut, n.translatedIn]), [['r1', 1, 1, 1]]);
});

test('nothing opens from outside but a forward or a floating address; a stray ACK opens nothing', () => {
  const { fabric, vms, uplink, stats } = gatewayHost();
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
  fabric.run();
  // To an unforwarded port, and an ACK to the forwarded one: both refused.
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, tcp(REMOTE, EXTERNAL, 5000, 22, SYN)));
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, tcp(REMOTE, EXTERNAL, 5000, 8080, ACK)));
  fabric.run();
  assert.equal(stats().ports.find((p) => p.name === 'uplink')!.drops['nat-no-mapping'], 2);
  assert.deepEqual(vms.map((v) => v.take().length), [0, 0, 0]);
  // A SYN to the forward reaches VM 2 on port 80; its reply leaves from 8080.
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, tcp(REMOTE, EXTERNAL, 5000, 8080, SYN)));
  fabric.run();
  const [inFwd] = vms[1].take();
  assert.equal(readU32(inFwd, 14 + 16), vmIp(2));
  assert.equal(readU16(inFwd, 36), 80);
  assert.ok(checksumsValid(inFwd));
  vms[1].send(compose.ethernet(ROUTER_MAC, vmMac(2), EtherType.Ipv4, tcp(vmIp(2), REMOTE, 80, 5000, SYN | ACK)));
  fabric.run();
  const [outFwd] = uplink.take();
  assert.equal(readU32(outFwd, 14 + 12), EXTERNAL);
  assert.equal(readU16(outFwd, 34), 8080);
  assert.ok(checksumsValid(outFwd));
  // A stray ACK from a VM opens no connection either.
  vms[0].send(compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv4, tcp(vmIp(1), REMOTE, 40001, 443, ACK)));
  fabric.run();
  assert.equal(stats().ports.find((p) => p.name === 'vm1')!.drops['nat-no-mapping'], 1);
});

test('a floating address: 1:1 both ways, and ARP for it answered on the external network', () => {
  const { fabric, vms, uplink } = gatewayHost();
  uplink.send(compose.ethernet(0xffff_ffff_ffff, UPSTREAM_MAC, EtherType.Arp, compose.arpRequest(UPSTREAM_MAC, UPSTREAM, FLOATING)));
  fabric.run();
  const [reply] = uplink.take();
  assert.equal(readU16(reply, 14 + 6), 2);
  assert.equal(readMac(reply, 14 + 8), NAT_MAC);
  assert.equal(readU32(reply, 14 + 14), FLOATING);
  // The ARP request taught the NAT the upstream's MAC, so the VM's ping goes straight out.
  vms[2].send(compose.ethernet(ROUTER_MAC, vmMac(3), EtherType.Ipv4, compose.icmpEchoV4(vmIp(3), REMOTE, 7, 1, new Uint8Array(8))));
  fabric.run();
  const [out] = uplink.take();
  assert.equal(readU32(out, 14 + 12), FLOATING);
  assert.equal(readU16(out, 14 + 20 + 4), 7, 'the identifier is the VM\'s: no port translation');
  assert.ok(checksumsValid(out));
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, compose.udpV4(REMOTE, FLOATING, 53, 9999, new Uint8Array(4))));
  fabric.run();
  const [inbound] = vms[2].take();
  assert.equal(readU32(inbound, 14 + 16), vmIp(3));
  assert.ok(checksumsValid(inbound));
});

test('an ICMP error about a translated packet reaches the VM with its own address and port quoted', () => {
  const { fabric, vms, uplink } = gatewayHost();
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
  fabric.run();
  vms[0].send(compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv4, compose.udpV4(vmIp(1), REMOTE, 700, 53, new Uint8Array(8))));
  fabric.run();
  const [out] = uplink.take().filter((f) => readU16(f, 12) === EtherType.Ipv4);
  const outsidePort = readU16(out, 34);
  assert.notEqual(outsidePort, 700, 'ports below 1024 are not preserved');
  // Port unreachable from the remote, quoting the translated datagram (its IP header + 8).
  const quoted = out.slice(14, 14 + 28);
  const icmp = new Uint8Array(8 + quoted.length);
  icmp[0] = 3;
  icmp[1] = 3;
  icmp.set(quoted, 8);
  const sum = finish(sumBytes(icmp, 0, icmp.length));
  icmp[2] = sum >> 8;
  icmp[3] = sum & 0xff;
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, compose.ipv4(REMOTE, EXTERNAL, 1, icmp)));
  fabric.run();
  const [err] = vms[0].take();
  assert.equal(readU32(err, 14 + 16), vmIp(1));
  assert.equal(readU32(err, 14 + 20 + 8 + 12), vmIp(1), 'the quoted source');
  assert.equal(readU16(err, 14 + 20 + 8 + 20), 700, 'the quoted source port');
  assert.ok(checksumsValid(err));
  assert.equal(finish(sumBytes(err, 14 + 20 + 8, 20)), 0, 'the quoted header\'s checksum');
});

test('the table is bounded: a full table refuses new connections and keeps the established', () => {
  const { fabric, vms, uplink, stats } = gatewayHost();
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
  fabric.run();
  for (let p = 0; p < 5; p++) {
    vms[0].send(compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv4, compose.udpV4(vmIp(1), REMOTE, 5000 + p, 53, new Uint8Array(1))));
  }
  fabric.run();
  assert.equal(uplink.take().filter((f) => readU16(f, 12) === EtherType.Ipv4).length, 4);
  assert.equal(stats().ports.find((p) => p.name === 'vm1')!.drops['nat-table-full'], 1);
  vms[0].send(compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv4, compose.udpV4(vmIp(1), REMOTE, 5000, 53, new Uint8Array(1))));
  fabric.run();
  assert.equal(uplink.take().length, 1, 'an established connection carries on');
});

test('a trunk carrying a VM\'s network and the external network: a translated packet is switched on the external network as it came from elsewhere, so it may go back out of that trunk', () => {
  const { dp, fabric, uplink, stats } = gatewayHost();
  const trunk = fabric.port('t1');
  dp.addPort({ name: 't1', backend: trunk, mode: 'trunk', vlans: { 10: 'blue', 20: 'ext' } });
  dp.startPort('t1', () => 1000);
  uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
  fabric.run();
  // The next hop's MAC moves behind the trunk's VLAN 20 (a router VM there takes over its
  // address, as VRRP does): ext learns it at t1.
  trunk.send(compose.ethernet(0xffff_ffff_ffff, UPSTREAM_MAC, EtherType.Arp, compose.arp(1, UPSTREAM_MAC, UPSTREAM, 0, UPSTREAM), [{ vid: 20 }]));
  fabric.run();
  uplink.take();
  trunk.take();
  // From the trunk's VLAN 10 (blue) to the outside: translated, then to the next hop on
  // ext, which is back out of the trunk, tagged 20; not a hairpin, it came in on blue.
  trunk.send(compose.ethernet(ROUTER_MAC, vmMac(4), EtherType.Ipv4, compose.udpV4(vmIp(4), REMOTE, 5000, 53, new Uint8Array(8)), [{ vid: 10 }]));
  fabric.run();
  const out = trunk.take();
  assert.equal(out.length, 1, JSON.stringify(stats().ports.find((p) => p.name === 't1')!.drops));
  assert.deepEqual([readU16(out[0], 12), readU16(out[0], 14) & 0x0fff, readMac(out[0], 0), readMac(out[0], 6)], [EtherType.Vlan, 20, UPSTREAM_MAC, NAT_MAC]);
  assert.equal(readU32(out[0], 18 + 12), EXTERNAL, 'translated');
  assert.deepEqual(uplink.take(), []);
  assert.deepEqual(stats().ports.find((p) => p.name === 't1')!.drops, {});
});
