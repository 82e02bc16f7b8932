import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, parseIpv4, poisoned, WireError } from './bytes.js';
import { IpProtocol, Ipv4Packet, Ipv4Repr, HEADER_LEN } from './ipv4.js';
import { icmpv4EchoRequest } from './testdata/captured.js';

const bytes = hex(icmpv4EchoRequest);

test('a captured IPv4 header parses, its checksum verifies, and it re-emits exactly', () => {
  const p = Ipv4Packet.checked(bytes, 14) as Ipv4Packet;
  assert.ok(p instanceof Ipv4Packet);
  assert.equal(p.totalLen, 84);
  assert.equal(p.protocol, IpProtocol.Icmp);
  assert.equal(p.src, parseIpv4('10.200.0.1'));
  assert.equal(p.dst, parseIpv4('10.200.0.2'));
  assert.equal(p.dontFragment, true);
  const repr = Ipv4Repr.parse(p) as Ipv4Repr;
  assert.ok(repr instanceof Ipv4Repr);
  const out = poisoned(HEADER_LEN);
  repr.emit(out);
  assert.deepEqual(out, bytes.subarray(14, 14 + HEADER_LEN));
});

test('bad IPv4 headers are refused with the reason', () => {
  const mutate = (at: number, v: number) => {
    const b = bytes.slice(14);
    b[at] = v;
    return b;
  };
  assert.equal((Ipv4Packet.checked(mutate(0, 0x65)) as WireError).code, 'malformed'); // version 6
  assert.equal((Ipv4Packet.checked(mutate(0, 0x44)) as WireError).code, 'malformed'); // IHL 4
  assert.equal((Ipv4Packet.checked(mutate(3, 0xff)) as WireError).code, 'truncated'); // total length 255
  assert.equal((Ipv4Packet.checked(bytes, 14, 19) as WireError).code, 'truncated');
  const corrupt = Ipv4Packet.checked(mutate(8, 1)) as Ipv4Packet; // TTL changed, checksum stale
  assert.ok(Ipv4Repr.parse(corrupt) instanceof WireError);
});
