/**
 * The router, the NAT and the IPv6 services under generated hostile input: the gateway host
 * of a router (VMs on blue, the external network on an uplink, a floating address, a port
 * forward, IPv6 on blue) fed IPv4, IPv6, ICMP errors quoting anything, ARP and router
 * solicitations with hostile fields, from the VMs and from the physical network.
 *
 * The rules, for every input: no exception; at most one drop reason counted; every frame
 * the NAT sends out carries one of the router's external addresses as its source and a
 * valid IPv4 header checksum (the router checks what it forwards), and a valid TCP/UDP/ICMP
 * checksum when the packet came with one (translation updates checksums incrementally: it
 * keeps a good one good, and does not vouch for a bad one, as no NAT does); every frame the
 * router sends a VM has a valid IPv4 header checksum; the connection table never holds
 * more than its limit.
 * WEFT_NAT_FUZZ_RUNS and WEFT_NAT_FUZZ_SEED scale and replay it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Datapath } from '../src/datapath/datapath.js';
import { TableBuilder } from '../src/datapath/tables.js';
import { MemoryFabric } from '../src/datapath/memory.js';
import { ROUTER_MAC } from '../src/datapath/router-mac.js';
import { parseIpv4, parseIpv6, parseMac, readMac, readU16, readU32 } from '../src/wire/bytes.js';
import { finish, pseudoHeaderV4, sumBytes } from '../src/wire/checksum.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { TcpRepr } from '../src/wire/tcp.js';

const NAT_MAC = parseMac('02:57:47:00:00:01');
const UPSTREAM_MAC = parseMac('02:aa:00:00:00:01');
const EXTERNAL = parseIpv4('203.0.113.5');
const FLOATING = parseIpv4('203.0.113.9');
const UPSTREAM = parseIpv4('203.0.113.1');
const LIMIT = 32;
const vmMac = (n: number) => parseMac(`02:00:00:00:00:0${n}`);
const vmIp = (n: number) => parseIpv4(`10.0.0.${n}`);

function gatewayHost() {
  const fabric = new MemoryFabric();
  const dp = new Datapath();
  let now = 1000;
  dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
  dp.addNetwork({ name: 'red', vni: 200, encapsulation: 'vxlan', mtu: 1300 });
  dp.addNetwork({ name: 'ext', vni: 300, encapsulation: 'vxlan', provider: true });
  const blue = new TableBuilder()
    .arp(vmIp(1), vmMac(1)).arp(vmIp(2), vmMac(2)).arp('10.0.0.254', ROUTER_MAC)
    .ndp('fd00:10::1', vmMac(1)).ndp('fe80::57:46ff:feff:fffe', ROUTER_MAC)
    .gateways(['10.0.0.254/24'])
    .routes([{ cidr: '10.1.0.0/24', network: 'red' }, { cidr: 'fd00:20::/64', network: 'red' }])
    .ipv6({ prefix: 'fd00:10::/64', dns: ['fd00:10::53'], routed: true });
  dp.setTables('red', new TableBuilder().arp('10.1.0.1', vmMac(3)).ndp('fd00:20::1', vmMac(3)).build());
  dp.setNat('r1', {
    router: 'r1', network: 'ext', address: EXTERNAL, prefixLength: 24, mac: NAT_MAC, nextHop: UPSTREAM,
    floating: [{ outside: FLOATING, inside: vmIp(2) }], forwards: [{ protocol: 'udp', port: 53, inside: vmIp(1), insidePort: 5353 }], limit: LIMIT,
  }, [{ cidr: '10.0.0.0/24', network: 'blue' }]);
  blue.external({ router: 'r1' });
  dp.setTables('blue', blue.build());
  const ports = {
    vm1: fabric.port('vm1'), vm2: fabric.port('vm2'), red1: fabric.port('red1'), uplink: fabric.port('uplink'),
  };
  dp.addPort({ name: 'vm1', backend: ports.vm1, mode: 'access', network: 'blue' });
  dp.addPort({ name: 'vm2', backend: ports.vm2, mode: 'access', network: 'blue' });
  dp.addPort({ name: 'red1', backend: ports.red1, mode: 'access', network: 'red' });
  dp.addPort({ name: 'uplink', backend: ports.uplink, mode: 'trunk', vlans: {}, nativeNetwork: 'ext', uplink: true });
  for (const p of Object.keys(ports)) dp.startPort(p, () => now);
  // The upstream's MAC is known, so that translated packets leave.
  ports.uplink.send(compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Arp, compose.arp(2, UPSTREAM_MAC, UPSTREAM, NAT_MAC, EXTERNAL)));
  fabric.run();
  for (const p of Object.values(ports)) p.take();
  return { dp, fabric, ports, tick: () => dp.age((now += 1000)) };
}

function ipv4Valid(f: Uint8Array): boolean {
  const ihl = (f[14] & 0x0f) * 4;
  return f.length >= 14 + ihl && finish(sumBytes(f, 14, ihl)) === 0;
}

function l4Valid(f: Uint8Array): boolean {
  const ihl = (f[14] & 0x0f) * 4;
  const total = readU16(f, 16);
  const proto = f[23];
  if ((readU16(f, 20) & 0x3fff) !== 0 || total > f.length - 14) return true; // fragments: no whole L4 to check
  const l4Len = total - ihl;
  if (proto === 17 && l4Len >= 8 && readU16(f, 14 + ihl + 6) === 0) return true; // UDP without a checksum
  if (proto !== 6 && proto !== 17 && proto !== 1) return true;
  const pseudo = proto === 1 ? 0 : pseudoHeaderV4(readU32(f, 26), readU32(f, 30), proto, l4Len);
  return finish(sumBytes(f, 14 + ihl, l4Len, pseudo)) === 0;
}

// ---- generated inputs ------------------------------------------------------------------

const v4 = fc.constantFrom(vmIp(1), vmIp(2), vmIp(9), EXTERNAL, FLOATING, UPSTREAM, parseIpv4('198.51.100.7'), parseIpv4('10.1.0.1'), 0, 0xffffffff);
const port = fc.oneof(fc.constantFrom(0, 53, 80, 1023, 1024, 5353, 40000, 65535), fc.integer({ min: 0, max: 65535 }));
const tcpFlags = fc.constantFrom(0x02, 0x12, 0x10, 0x01, 0x04, 0x11, 0x00, 0xff);
const payload = fc.uint8Array({ maxLength: 48 });

/** An IPv4 packet: TCP, UDP or ICMP with hostile fields, sometimes broken afterwards. */
const ipv4Packet = fc.record({
  src: v4, dst: v4, sport: port, dport: port, flags: tcpFlags, data: payload,
  kind: fc.constantFrom('tcp', 'udp', 'echo', 'reply', 'error', 'other'),
  ttl: fc.constantFrom(64, 1, 0, 2),
  fragment: fc.constantFrom(0, 0, 0, 0x2000, 0x0001),
  flips: fc.array(fc.tuple(fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
  cut: fc.option(fc.integer({ min: 0, max: 60 }), { freq: 6 }),
}).map((p) => {
  let bytes: Uint8Array;
  if (p.kind === 'tcp') bytes = compose.tcpV4(p.src, p.dst, new TcpRepr(p.sport, p.dport, 1, 1, p.flags, 1000, new Uint8Array(0), p.data));
  else if (p.kind === 'udp') bytes = compose.udpV4(p.src, p.dst, p.sport, p.dport, p.data);
  else if (p.kind === 'echo' || p.kind === 'reply') {
    bytes = compose.icmpEchoV4(p.src, p.dst, p.sport, 1, p.data);
    if (p.kind === 'reply') bytes[20] = 0;
  } else if (p.kind === 'error') {
    // An ICMP error quoting a translated-looking packet (the router's address as source).
    const quoted = compose.udpV4(EXTERNAL, p.src, p.dport, p.sport, new Uint8Array(0)).subarray(0, 28);
    const icmp = new Uint8Array(8 + quoted.length);
    icmp[0] = 3;
    icmp[1] = p.flags & 0x0f;
    icmp.set(quoted, 8);
    const sum = finish(sumBytes(icmp, 0, icmp.length));
    icmp[2] = sum >> 8;
    icmp[3] = sum & 0xff;
    bytes = compose.ipv4(p.src, p.dst, 1, icmp);
  } else bytes = compose.ipv4(p.src, p.dst, 47, p.data);
  bytes = bytes.slice();
  bytes[8] = p.ttl;
  bytes[6] = (bytes[6] & 0x40) | (p.fragment >> 8);
  bytes[7] = p.fragment & 0xff;
  for (const [at, value] of p.flips) if (at < bytes.length) bytes[at] = value;
  return p.cut === null ? bytes : bytes.subarray(0, p.cut);
});

const ipv6Packet = fc.record({ dst: fc.constantFrom('fd00:20::1', 'fd00:20::2', 'fd00:30::1', 'fe80::1', 'ff02::2'), hop: fc.constantFrom(64, 1, 255), type: fc.constantFrom(128, 133, 135, 1), len: fc.integer({ min: 0, max: 1400 }) })
  .map((p) => compose.ipv6(parseIpv6('fd00:10::1'), parseIpv6(p.dst), 58, new Uint8Array([p.type, 0, 0, 0, ...new Uint8Array(Math.max(0, p.len - 4))]), p.hop));

const arp = fc.record({ op: fc.constantFrom(1, 2, 3), sender: v4, target: v4, mac: fc.constantFrom(UPSTREAM_MAC, vmMac(1), 0, 0xffffffffffff) })
  .map((a) => compose.arp(a.op, a.mac || UPSTREAM_MAC, a.sender, 0, a.target));

type Input = { to: 'vm1' | 'vm2' | 'red1' | 'uplink'; frame: Uint8Array };

const input: fc.Arbitrary<Input> = fc.oneof(
  ipv4Packet.map((p): Input => ({ to: 'vm1', frame: compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv4, p) })),
  ipv4Packet.map((p): Input => ({ to: 'vm2', frame: compose.ethernet(ROUTER_MAC, vmMac(2), EtherType.Ipv4, p) })),
  ipv4Packet.map((p): Input => ({ to: 'uplink', frame: compose.ethernet(NAT_MAC, UPSTREAM_MAC, EtherType.Ipv4, p) })),
  ipv6Packet.map((p): Input => ({ to: 'vm1', frame: compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Ipv6, p) })),
  ipv6Packet.map((p): Input => ({ to: 'vm1', frame: compose.ethernet(0x333300000002, vmMac(1), EtherType.Ipv6, p) })),
  arp.map((a): Input => ({ to: 'uplink', frame: compose.ethernet(0xffffffffffff, UPSTREAM_MAC, EtherType.Arp, a) })),
  arp.map((a): Input => ({ to: 'vm1', frame: compose.ethernet(ROUTER_MAC, vmMac(1), EtherType.Arp, a) })),
);

test('the router, the NAT and the IPv6 services under hostile input keep their rules', () => {
  const host = gatewayHost();
  const runs = Number(process.env.WEFT_NAT_FUZZ_RUNS ?? 20000);
  const seed = process.env.WEFT_NAT_FUZZ_SEED === undefined ? undefined : Number(process.env.WEFT_NAT_FUZZ_SEED);
  let n = 0;
  const drops = () => host.dp.stats(String).ports.reduce((sum, p) => sum + Object.values(p.drops).reduce((a, b) => a + (b ?? 0), 0), 0);
  fc.assert(fc.property(input, (i) => {
    const before = drops();
    const l4WasValid = i.frame.length >= 34 && readU16(i.frame, 12) === EtherType.Ipv4 && l4Valid(i.frame);
    host.ports[i.to].send(i.frame);
    host.fabric.run(100, 1000);
    if (++n % 50 === 0) host.tick(); // time passes: connections expire, advertisements go out
    const dropped = drops() - before;
    assert.ok(dropped <= 1, `counted under ${dropped} reasons`);
    for (const f of host.ports.uplink.take()) {
      if (readMac(f, 6) !== NAT_MAC || readU16(f, 12) !== EtherType.Ipv4) continue;
      assert.ok([EXTERNAL, FLOATING].includes(readU32(f, 26)), 'the NAT sent from an address not the router\'s');
      assert.ok(ipv4Valid(f), 'the NAT sent a packet with a bad IPv4 header checksum');
      if (l4WasValid) assert.ok(l4Valid(f), 'the NAT turned a good TCP/UDP/ICMP checksum bad');
    }
    for (const p of ['vm1', 'vm2', 'red1'] as const) {
      for (const f of host.ports[p].take()) {
        if (readMac(f, 6) === ROUTER_MAC && readU16(f, 12) === EtherType.Ipv4) assert.ok(ipv4Valid(f), `the router sent ${p} a bad IPv4 header checksum`);
      }
    }
    const nat = host.dp.stats(String).nats[0];
    assert.ok(nat.connections <= LIMIT, `${nat.connections} connections in a table of ${LIMIT}`);
  }), { numRuns: runs, seed, includeErrorInReport: true });
  const s = host.dp.stats(String).nats[0];
  assert.equal(n, runs);
  assert.ok(s.translatedOut > 0 && s.translatedIn > 0, 'the generated traffic exercised both directions');
});
