import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6, hex, poisoned, WireError } from './bytes.js';
import { IpProtocol } from './ipv4.js';
import { Ipv6Packet, Ipv6Repr, HEADER_LEN } from './ipv6.js';
import { icmpv6EchoRequest } from './testdata/captured.js';

const bytes = hex(icmpv6EchoRequest);

test('a captured IPv6 header parses and re-emits exactly', () => {
  const p = Ipv6Packet.checked(bytes, 14) as Ipv6Packet;
  assert.ok(p instanceof Ipv6Packet);
  assert.equal(p.payloadLen, 64);
  assert.equal(p.nextHeader, IpProtocol.Icmpv6);
  assert.equal(p.hopLimit, 64);
  assert.equal(formatIpv6(p.src), 'fd00::1');
  assert.equal(formatIpv6(p.dst), 'fd00::2');
  assert.equal(p.flowLabel, 0x256e6);
  const out = poisoned(HEADER_LEN);
  Ipv6Repr.parse(p).emit(out);
  assert.deepEqual(out, bytes.subarray(14, 14 + HEADER_LEN));
});

test('a payload length past the bytes at hand is truncated; version 4 is malformed', () => {
  assert.equal((Ipv6Packet.checked(bytes, 14, 100) as WireError).code, 'truncated');
  const v4 = bytes.slice(14);
  v4[0] = 0x40;
  assert.equal((Ipv6Packet.checked(v4) as WireError).code, 'malformed');
});
