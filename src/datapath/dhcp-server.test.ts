import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseMac, poisoned, writeU32 } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { DhcpPacket, DhcpRepr, FLAG_BROADCAST, MessageType, Op, Option } from '../wire/dhcp.js';
import { EtherType } from '../wire/ethernet.js';
import { answerDhcp, isDhcpToServer, type DhcpLease } from './dhcp-server.js';

const VM = parseMac('02:00:00:00:00:07');
const SERVER = parseMac('02:57:46:ff:ff:fe');
const lease: DhcpLease = {
  mac: VM, ip: parseIpv4('10.10.0.7'), prefixLength: 24, gateway: parseIpv4('10.10.0.1'),
  dns: [parseIpv4('10.10.0.53')], leaseSeconds: 3600, hostName: 'vm7', search: ['lab.example'],
};

/** A client's message as a frame, as a VM would send it. */
function request(type: number, opts: { ciaddr?: string; requested?: string; server?: string; chaddr?: number; broadcast?: boolean; from?: number } = {}): Uint8Array {
  const dhcp = new Uint8Array(300);
  new DhcpRepr(Op.Request, 0x1234_5678, opts.broadcast ? FLAG_BROADCAST : 0, opts.ciaddr ? parseIpv4(opts.ciaddr) : 0, 0, 0, 0, opts.chaddr ?? VM, { messageType: type, serverId: 0 }).emit(dhcp, 0);
  // Replace the server-id option our emit always writes with what a client sends.
  const o = 240 + 3;
  dhcp.fill(0, o, 300);
  let i = o;
  if (opts.requested) { dhcp.set([Option.RequestedIp, 4], i); writeU32(dhcp, i + 2, parseIpv4(opts.requested)); i += 6; }
  if (opts.server) { dhcp.set([Option.ServerId, 4], i); writeU32(dhcp, i + 2, parseIpv4(opts.server)); i += 6; }
  dhcp[i] = Option.End;
  return compose.ethernet(0xffffffffffff, opts.from ?? VM, EtherType.Ipv4, compose.udpV4(opts.ciaddr ? parseIpv4(opts.ciaddr) : 0, 0xffffffff, 68, 67, dhcp));
}

function answer(frame: Uint8Array, mtu = 1450) {
  assert.ok(isDhcpToServer(frame, 0, frame.length));
  const out = poisoned(2048);
  const r = answerDhcp(frame, 0, frame.length, lease, SERVER, mtu, out, 0);
  const reply = out.subarray(0, r.length);
  const dhcp = r.length ? (DhcpPacket.checked(reply, 42) as DhcpPacket) : null;
  return { ...r, reply, dhcp };
}

test('DISCOVER gets an OFFER of the port\'s address, with mask, router, DNS, lease, host name, search list and the network\'s MTU', () => {
  const a = answer(request(MessageType.Discover));
  assert.equal(a.outcome, 'offer');
  const d = a.dhcp!;
  assert.equal(d.op, Op.Reply);
  assert.equal(d.xid, 0x1234_5678);
  assert.equal(d.yiaddr, lease.ip);
  assert.equal(d.messageType(), MessageType.Offer);
  assert.equal(d.addressOption(Option.ServerId), lease.gateway);
  assert.equal(d.addressOption(Option.SubnetMask), parseIpv4('255.255.255.0'));
  assert.equal(d.addressOption(Option.Router), lease.gateway);
  assert.equal(d.addressOption(Option.DnsServers), parseIpv4('10.10.0.53'));
  assert.equal(d.addressOption(Option.LeaseTime), 3600);
  const f = { len: 0 };
  const mtuAt = d.find(Option.InterfaceMtu, f);
  assert.deepEqual([f.len, (a.reply[mtuAt] << 8) | a.reply[mtuAt + 1]], [2, 1450]);
  const search = d.find(Option.DomainSearch, f);
  assert.deepEqual([...a.reply.subarray(search, search + f.len)], [3, ...Buffer.from('lab'), 7, ...Buffer.from('example'), 0]);
  // Unicast to the offered address at the client's MAC, from the gateway.
  assert.equal(Buffer.from(a.reply).readUIntBE(0, 6), VM);
  assert.equal(Buffer.from(a.reply).readUInt32BE(14 + 16), lease.ip);
  assert.equal(Buffer.from(a.reply).readUInt32BE(14 + 12), lease.gateway);
});

test('REQUEST: the port\'s address is ACKed in every state; any other is NAKed, broadcast', () => {
  assert.equal(answer(request(MessageType.Request, { requested: '10.10.0.7', server: '10.10.0.1' })).outcome, 'ack'); // selecting
  assert.equal(answer(request(MessageType.Request, { requested: '10.10.0.7' })).outcome, 'ack'); // init-reboot
  const renew = answer(request(MessageType.Request, { ciaddr: '10.10.0.7' })); // renewing / rebinding
  assert.equal(renew.outcome, 'ack');
  assert.equal(Buffer.from(renew.reply).readUInt32BE(14 + 16), lease.ip, 'a renewal is answered at the client\'s address');
  const nak = answer(request(MessageType.Request, { requested: '10.10.0.99' }));
  assert.equal(nak.outcome, 'nak');
  assert.equal(nak.dhcp!.messageType(), MessageType.Nak);
  assert.equal(nak.dhcp!.yiaddr, 0);
  assert.equal(Buffer.from(nak.reply).readUInt32BE(14 + 16), 0xffffffff);
  assert.equal(answer(request(MessageType.Request, { requested: '10.10.0.7', server: '10.10.0.254' })).outcome, 'not-for-us', 'it chose another server');
});

test('INFORM is answered without a lease; RELEASE and DECLINE get no answer; a broadcast-flag client is answered by broadcast', () => {
  const inform = answer(request(MessageType.Inform, { ciaddr: '10.10.0.7' }));
  assert.equal(inform.outcome, 'inform');
  assert.equal(inform.dhcp!.addressOption(Option.LeaseTime), -1);
  assert.equal(inform.dhcp!.yiaddr, 0);
  assert.deepEqual([answer(request(MessageType.Release, { ciaddr: '10.10.0.7' })).outcome, answer(request(MessageType.Decline)).outcome], ['released', 'declined']);
  const b = answer(request(MessageType.Discover, { broadcast: true }));
  assert.equal(Buffer.from(b.reply).readUInt32BE(14 + 16), 0xffffffff);
  assert.equal(b.dhcp!.flags & FLAG_BROADCAST, FLAG_BROADCAST);
});

test('bad input: another client\'s MAC, broken options and non-DHCP bytes are refused by name, never answered', () => {
  assert.equal(answer(request(MessageType.Discover, { chaddr: parseMac('02:00:00:00:00:08') })).outcome, 'wrong-client');
  assert.equal(answer(request(MessageType.Discover, { from: parseMac('02:00:00:00:00:08') })).outcome, 'wrong-client');
  const broken = request(MessageType.Discover);
  broken[42 + 240] = 53;
  broken[42 + 241] = 200; // runs past the end
  assert.equal(answer(broken).outcome, 'malformed');
  const short = compose.ethernet(0xffffffffffff, VM, EtherType.Ipv4, compose.udpV4(0, 0xffffffff, 68, 67, new Uint8Array(10)));
  assert.equal(answer(short).outcome, 'malformed');
  const noCookie = request(MessageType.Discover);
  noCookie[42 + 236] = 0;
  assert.equal(answer(noCookie).outcome, 'malformed');
});

test('the reply is a well-formed frame: checksums verify', () => {
  const a = answer(request(MessageType.Discover));
  const b = Buffer.from(a.reply);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += b.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'IPv4 header checksum');
  assert.equal(b.readUInt16BE(34), 67);
  assert.equal(b.readUInt16BE(36), 68);
  assert.equal(b.readUInt16BE(38), a.reply.length - 34);
});
