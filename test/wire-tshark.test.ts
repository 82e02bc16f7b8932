/**
 * Cross-check against a decoder nobody here wrote: frames built by Weft's codecs are
 * written to a pcap with Weft's writer, tshark decodes them, and every field tshark reports
 * must equal what Weft meant to write, with no malformed packet and no bad checksum.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIpv4 as ip4, parseIpv6 as ip6, parseMac as mac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { Icmpv6Repr } from '../src/wire/icmpv6.js';
import { pcapGlobalHeader, pcapRecord } from '../src/wire/pcap.js';
import { TcpFlag, TcpRepr } from '../src/wire/tcp.js';
import { GENEVE_PORT, VXLAN_PORT } from '../src/wire/udp.js';
import { test, hasCommand } from './support/env.js';
import { answerDhcp } from '../src/datapath/dhcp-server.js';
import { DhcpRepr, FLAG_BROADCAST, MessageType, Op } from '../src/wire/dhcp.js';

/** The OFFER Weft's DHCP server sends a client whose DISCOVER asked for broadcast. */
function dhcpOffer(): Uint8Array {
  const discover = new Uint8Array(300);
  new DhcpRepr(Op.Request, 0xabcdef01, FLAG_BROADCAST, 0, 0, 0, 0, A, { messageType: MessageType.Discover, serverId: 0 }).emit(discover, 0);
  const frame = compose.ethernet(0xffffffffffff, A, EtherType.Ipv4, compose.udpV4(0, 0xffffffff, 68, 67, discover));
  const out = new Uint8Array(1500);
  const lease = { mac: A, ip: ip4('10.10.0.7'), prefixLength: 24, gateway: ip4('10.10.0.1'), dns: [ip4('10.10.0.53')], leaseSeconds: 3600, hostName: 'vm7', search: ['lab.example'] };
  const r = answerDhcp(frame, 0, frame.length, lease, B, 1450, out, 0);
  return out.slice(0, r.length);
}

const A = mac('02:00:00:00:00:0a');
const B = mac('02:00:00:00:00:0b');
const payload = new TextEncoder().encode('weft cross-check payload');

interface Case {
  name: string;
  frame: Uint8Array;
  /** tshark field name -> the value it must print. */
  expect: Record<string, string>;
}

const cases: Case[] = [
  {
    name: 'IPv4 ICMP echo',
    frame: compose.ethernet(B, A, EtherType.Ipv4, compose.icmpEchoV4(ip4('10.0.0.1'), ip4('10.0.0.2'), 0x1234, 7, payload)),
    expect: { 'eth.src': '02:00:00:00:00:0a', 'eth.dst': '02:00:00:00:00:0b', 'ip.src': '10.0.0.1', 'ip.dst': '10.0.0.2', 'ip.ttl': '64', 'icmp.type': '8', 'icmp.ident': '4660', 'icmp.seq': '7' },
  },
  {
    name: '802.1Q ARP request',
    frame: compose.ethernet(0xffffffffffff, A, EtherType.Arp, compose.arpRequest(A, ip4('10.0.0.1'), ip4('10.0.0.2')), [{ vid: 42, pcp: 3 }]),
    expect: { 'vlan.id': '42', 'vlan.priority': '3', 'arp.opcode': '1', 'arp.src.proto_ipv4': '10.0.0.1', 'arp.dst.proto_ipv4': '10.0.0.2', 'arp.src.hw_mac': '02:00:00:00:00:0a' },
  },
  {
    name: 'QinQ UDP',
    frame: compose.ethernet(B, A, EtherType.Ipv4, compose.udpV4(ip4('10.0.0.1'), ip4('10.0.0.2'), 40000, 53000, payload), [{ vid: 100, tpid: EtherType.QinQ }, { vid: 42 }]),
    expect: { 'ieee8021ad.id': '100', 'vlan.id': '42', 'udp.srcport': '40000', 'udp.dstport': '53000', 'udp.length': String(8 + payload.length), 'udp.checksum.status': '1' },
  },
  {
    name: 'IPv6 neighbor advertisement',
    frame: compose.ethernet(A, B, EtherType.Ipv6, compose.icmpv6(ip6('fd00::2'), ip6('fd00::1'), Icmpv6Repr.neighborAdvertisement(ip6('fd00::2'), B))),
    expect: { 'ipv6.src': 'fd00::2', 'ipv6.dst': 'fd00::1', 'icmpv6.type': '136', 'icmpv6.nd.na.target_address': 'fd00::2', 'icmpv6.opt.linkaddr': '02:00:00:00:00:0b', 'icmpv6.checksum.status': '1' },
  },
  {
    name: 'IPv6 UDP',
    frame: compose.ethernet(B, A, EtherType.Ipv6, compose.udpV6(ip6('fd00::1'), ip6('fd00::2'), 5000, 6000, payload)),
    expect: { 'ipv6.nxt': '17', 'udp.srcport': '5000', 'udp.checksum.status': '1' },
  },
  {
    name: 'TCP SYN with options and data',
    frame: compose.ethernet(B, A, EtherType.Ipv4, compose.tcpV4(ip4('10.0.0.1'), ip4('10.0.0.2'),
      new TcpRepr(33000, 5201, 0xdeadbeef, 0, TcpFlag.Syn, 64240, Uint8Array.of(2, 4, 0x05, 0xb4), payload))),
    expect: { 'tcp.srcport': '33000', 'tcp.dstport': '5201', 'tcp.seq_raw': String(0xdeadbeef), 'tcp.flags': '0x0002', 'tcp.options.mss_val': '1460', 'tcp.len': String(payload.length), 'tcp.checksum.status': '1' },
  },
  {
    name: 'VXLAN around ARP',
    frame: compose.ethernet(B, A, EtherType.Ipv4, compose.udpV4(ip4('192.0.2.1'), ip4('192.0.2.2'), 49152, VXLAN_PORT,
      compose.vxlan(5000, compose.ethernet(0xffffffffffff, A, EtherType.Arp, compose.arpRequest(A, ip4('10.1.0.1'), ip4('10.1.0.2')))))),
    expect: { 'vxlan.vni': '5000', 'vxlan.flags': '0x0800', 'arp.dst.proto_ipv4': '10.1.0.2' },
  },
  {
    name: 'Geneve with an option around ICMP',
    frame: compose.ethernet(B, A, EtherType.Ipv4, compose.udpV4(ip4('192.0.2.1'), ip4('192.0.2.2'), 49153, GENEVE_PORT,
      compose.geneve(7000, compose.ethernet(B, A, EtherType.Ipv4, compose.icmpEchoV4(ip4('10.2.0.1'), ip4('10.2.0.2'), 1, 2, payload)),
        [{ optionClass: 0x0104, type: 0x01, data: Uint8Array.of(0, 0, 0, 42) }]))),
    expect: { 'geneve.vni': '0x001b58', 'geneve.option.class': '0x0104', 'geneve.option.type': '0x01', 'geneve.proto_type': '0x6558', 'icmp.seq': '2' },
  },
  {
    name: 'DHCP offer from Weft\'s server',
    frame: dhcpOffer(),
    expect: {
      'dhcp.option.dhcp': '2', 'dhcp.ip.your': '10.10.0.7', 'dhcp.id': '0xabcdef01', 'dhcp.flags.bc': '1', 'dhcp.option.subnet_mask': '255.255.255.0',
      'dhcp.option.router': '10.10.0.1', 'dhcp.option.domain_name_server': '10.10.0.53', 'dhcp.option.ip_address_lease_time': '3600',
      'dhcp.option.hostname': 'vm7', 'dhcp.option.interface_mtu': '1450', 'dhcp.option.dhcp_server_id': '10.10.0.1', 'udp.checksum.status': '1', 'ip.dst': '255.255.255.255',
    },
  },
];

test('tshark decodes every frame Weft writes, with the fields Weft meant', { skip: hasCommand('tshark') ? false : 'tshark is not installed (apt-get install tshark)' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tshark-'));
  try {
    const file = join(dir, 'frames.pcap');
    writeFileSync(file, Buffer.concat([pcapGlobalHeader(), ...cases.map((c, i) => pcapRecord(1_700_000_000_000 + i, c.frame, 0, c.frame.length))]));
    const checks = ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE'];
    const bad = execFileSync('tshark', ['-r', file, ...checks, '-Y', '_ws.malformed || _ws.expert.severity >= "error"'], { encoding: 'utf8' });
    assert.equal(bad.trim(), '', `tshark found malformed frames or bad checksums:\n${bad}`);
    cases.forEach((c, i) => {
      const fields = Object.keys(c.expect);
      const out = execFileSync('tshark', ['-r', file, ...checks, '-Y', `frame.number == ${i + 1}`, '-T', 'fields', '-E', 'separator=/t', '-E', 'aggregator=,', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
      const got = out.replace(/\n$/, '').split('\t');
      fields.forEach((f, k) => assert.equal(got[k], c.expect[f], `${c.name}: ${f}`));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
