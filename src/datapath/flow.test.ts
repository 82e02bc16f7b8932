import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseIpv6, parseMac, writeU16 } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { TcpRepr } from '../wire/tcp.js';
import { Drop } from './counters.js';
import { Flow, MAX_EXTENSION_HEADERS, parseFlow } from './flow.js';

const MAC = parseMac('02:00:00:00:00:01');
const A = parseIpv4('10.0.0.1');
const B = parseIpv4('10.0.0.2');
const A6 = parseIpv6('fd00::1');
const B6 = parseIpv6('fd00::2');
const SYN = 0x02;

const eth = (type: number, payload: Uint8Array) => compose.ethernet(MAC, MAC, type, payload);
const syn = () => compose.tcpV4(A, B, new TcpRepr(40000, 80, 1, 0, SYN, 1000));
const syn6 = () => compose.tcpV6(A6, B6, new TcpRepr(40000, 80, 1, 0, SYN, 1000));
/** An IPv4 packet with its header bytes changed after it was made. */
const edit = (packet: Uint8Array, change: (p: Uint8Array) => void) => {
  const p = Uint8Array.from(packet);
  change(p);
  return p;
};
const parse = (frame: Uint8Array, len = frame.length) => {
  const flow = new Flow();
  return { refused: parseFlow(frame, 0, len, flow), flow };
};
const refused = (frame: Uint8Array) => parse(frame).refused;

test('flow key: a whole IPv4 TCP segment, its addresses, protocol and upper-layer header found once', () => {
  const { refused: r, flow } = parse(eth(EtherType.Ipv4, syn()));
  assert.equal(r, -1);
  assert.deepEqual([flow.type, flow.ipv6, flow.protocol, flow.l3, flow.l4, flow.l4Len, flow.len, flow.laterFragment], [EtherType.Ipv4, false, 6, 14, 34, 20, 54, false]);
});

test('flow key: Ethernet padding is left out of the frame\'s length, not refused', () => {
  const frame = new Uint8Array(60);
  frame.set(eth(EtherType.Ipv4, syn()));
  const { refused: r, flow } = parse(frame);
  assert.equal(r, -1);
  assert.equal(flow.len, 54, 'the 6 bytes of padding are not the packet\'s');
  const arp = new Uint8Array(60);
  arp.set(eth(EtherType.Arp, compose.arpRequest(MAC, A, B)));
  assert.equal(refused(arp), -1, 'ARP padded to the minimum frame');
});

test('flow key: an IPv4 header cut, zero-length or saying more than arrived is malformed', () => {
  const packet = syn();
  assert.equal(refused(eth(EtherType.Ipv4, packet.subarray(0, 19))), Drop.malformed, 'shorter than 20 bytes');
  assert.equal(refused(eth(EtherType.Ipv4, edit(packet, (p) => (p[0] = 0x40)))), Drop.malformed, 'a zero-length header (IHL 0)');
  assert.equal(refused(eth(EtherType.Ipv4, edit(packet, (p) => (p[0] = 0x44)))), Drop.malformed, 'IHL 4: 16 bytes');
  assert.equal(refused(eth(EtherType.Ipv4, edit(packet, (p) => (p[0] = 0x4f)))), Drop.malformed, 'IHL 15: 60 bytes, more than the packet');
  assert.equal(refused(eth(EtherType.Ipv4, edit(packet, (p) => (p[0] = 0x65)))), Drop.malformed, 'version 6 in an IPv4 frame');
  assert.equal(refused(eth(EtherType.Ipv4, edit(packet, (p) => writeU16(p, 2, 19)))), Drop.malformed, 'a total length under the header\'s');
  // tcpdump in the receiving VM: "truncated-ip - 20 bytes missing".
  assert.equal(refused(eth(EtherType.Ipv4, edit(packet, (p) => writeU16(p, 2, 60)))), Drop.malformed, 'a total length beyond the frame');
  assert.equal(refused(eth(EtherType.Ipv4, packet.subarray(0, 34))), Drop.malformed, 'the frame cut short of its total length');
});

test('flow key: a cut TCP, UDP or ICMP header is malformed, also in a first fragment', () => {
  const cutTcp = (keep: number) => edit(syn().subarray(0, 20 + keep), (p) => writeU16(p, 2, 20 + keep));
  assert.equal(refused(eth(EtherType.Ipv4, cutTcp(14))), Drop.malformed, 'TCP flags but no whole header');
  assert.equal(refused(eth(EtherType.Ipv4, cutTcp(4))), Drop.malformed, 'TCP ports only');
  assert.equal(refused(eth(EtherType.Ipv4, edit(syn(), (p) => (p[20 + 12] = 0x40)))), Drop.malformed, 'a TCP data offset of 4 words');
  assert.equal(refused(eth(EtherType.Ipv4, edit(syn(), (p) => (p[20 + 12] = 0x60)))), Drop.malformed, 'a TCP data offset beyond the segment');
  const udp = compose.udpV4(A, B, 5000, 53, new Uint8Array(4));
  assert.equal(refused(eth(EtherType.Ipv4, udp)), -1);
  assert.equal(refused(eth(EtherType.Ipv4, edit(udp.subarray(0, 24), (p) => writeU16(p, 2, 24)))), Drop.malformed, 'the UDP header cut off');
  assert.equal(refused(eth(EtherType.Ipv4, edit(udp, (p) => writeU16(p, 24, 40)))), Drop.malformed, 'a UDP length beyond the packet');
  const firstFragment = edit(udp, (p) => { writeU16(p, 6, 0x2000); writeU16(p, 24, 1400); });
  assert.equal(refused(eth(EtherType.Ipv4, firstFragment)), -1, 'a first fragment\'s UDP length is the whole datagram\'s');
  assert.equal(refused(eth(EtherType.Ipv4, edit(cutTcp(14), (p) => writeU16(p, 6, 0x2000)))), Drop.malformed, 'a tiny first fragment (RFC 1858)');
  const icmp = compose.icmpEchoV4(A, B, 1, 1, new Uint8Array(0));
  assert.equal(refused(eth(EtherType.Ipv4, icmp)), -1);
  assert.equal(refused(eth(EtherType.Ipv4, edit(icmp.subarray(0, 24), (p) => writeU16(p, 2, 24)))), Drop.malformed, 'ICMP under 8 bytes');
  assert.equal(refused(eth(EtherType.Ipv4, compose.ipv4(A, B, 47, new Uint8Array(2)))), -1, 'a protocol not looked into');
});

test('flow key: a later fragment carries no upper-layer header, and is not refused for it', () => {
  const later = edit(compose.ipv4(A, B, 6, new Uint8Array(8)), (p) => writeU16(p, 6, 185));
  const { refused: r, flow } = parse(eth(EtherType.Ipv4, later));
  assert.equal(r, -1);
  assert.deepEqual([flow.protocol, flow.laterFragment, flow.fragmented], [6, true, true]);
  assert.equal(refused(eth(EtherType.Ipv4, edit(later, (p) => writeU16(p, 6, 1)))), Drop.malformed, 'a TCP fragment at offset 8 overwrites the header (RFC 1858 §4)');
});

test('flow key: IPv6, its extension headers walked to the upper layer; anything cut is malformed', () => {
  const { refused: r, flow } = parse(eth(EtherType.Ipv6, syn6()));
  assert.equal(r, -1);
  assert.deepEqual([flow.ipv6, flow.protocol, flow.l4, flow.l4Len, flow.len], [true, 6, 54, 20, 74]);
  const packet = syn6();
  assert.equal(refused(eth(EtherType.Ipv6, packet.subarray(0, 39))), Drop.malformed, 'the fixed header cut');
  assert.equal(refused(eth(EtherType.Ipv6, edit(packet, (p) => (p[0] = 0x45)))), Drop.malformed, 'version 4 in an IPv6 frame');
  assert.equal(refused(eth(EtherType.Ipv6, edit(packet, (p) => writeU16(p, 4, 21)))), Drop.malformed, 'a payload length beyond the frame');
  assert.equal(refused(eth(EtherType.Ipv6, edit(packet.subarray(0, 54), (p) => writeU16(p, 4, 14)))), Drop.malformed, 'TCP cut');
  // A hop-by-hop header (8 bytes) before TCP: found behind it.
  const hopByHop = (next: number, payload: Uint8Array) => new Uint8Array([next, 0, 1, 4, 0, 0, 0, 0, ...payload]);
  const behind = compose.ipv6(A6, B6, 0, hopByHop(6, syn6().subarray(40)));
  const p2 = parse(eth(EtherType.Ipv6, behind));
  assert.equal(p2.refused, -1);
  assert.deepEqual([p2.flow.protocol, p2.flow.l4], [6, 14 + 48]);
  assert.equal(refused(eth(EtherType.Ipv6, compose.ipv6(A6, B6, 0, hopByHop(6, new Uint8Array(14))))), Drop.malformed, 'TCP cut behind an extension header');
  assert.equal(refused(eth(EtherType.Ipv6, compose.ipv6(A6, B6, 0, new Uint8Array([6, 1, 0, 0, 0, 0, 0, 0])))), Drop.malformed, 'an extension header longer than the payload');
  let chain = syn6().subarray(40);
  for (let i = 0; i <= MAX_EXTENSION_HEADERS; i++) chain = new Uint8Array([i === 0 ? 6 : 60, 0, 1, 4, 0, 0, 0, 0, ...chain]);
  assert.equal(refused(eth(EtherType.Ipv6, compose.ipv6(A6, B6, 60, chain))), Drop.malformed, 'a chain longer than we follow');
  // A fragment header: the first fragment carries TCP whole; a later one carries no ports.
  const fragment = (offset: number, payload: Uint8Array) => new Uint8Array([6, 0, (offset << 3) >>> 8, ((offset << 3) & 0xf8) | 1, 0, 0, 0, 1, ...payload]);
  assert.equal(refused(eth(EtherType.Ipv6, compose.ipv6(A6, B6, 44, fragment(0, syn6().subarray(40))))), -1);
  assert.equal(refused(eth(EtherType.Ipv6, compose.ipv6(A6, B6, 44, fragment(0, new Uint8Array(8))))), Drop.malformed, 'a first fragment without the whole TCP header');
  const later = parse(eth(EtherType.Ipv6, compose.ipv6(A6, B6, 44, fragment(100, new Uint8Array(8)))));
  assert.equal(later.refused, -1);
  assert.deepEqual([later.flow.protocol, later.flow.laterFragment], [6, true]);
});

test('flow key: ARP is at least the 28 bytes of Ethernet/IPv4 ARP, or malformed; other EtherTypes are not looked into', () => {
  const arp = compose.arpRequest(MAC, A, B);
  assert.equal(refused(eth(EtherType.Arp, arp)), -1);
  assert.equal(refused(eth(EtherType.Arp, arp.subarray(0, 27))), Drop.malformed, 'cut');
  const { refused: r, flow } = parse(eth(0x88cc, new Uint8Array(3)));
  assert.deepEqual([r, flow.protocol], [-1, -1]);
});
