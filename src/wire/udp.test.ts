import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, poisoned, WireError } from './bytes.js';
import { Ipv4Packet } from './ipv4.js';
import { UdpDatagram, UdpRepr, VXLAN_PORT } from './udp.js';
import { udpDatagram, vxlanIcmpEchoRequest } from './testdata/captured.js';

test('a captured datagram parses, verifies and re-emits with the same checksum', () => {
  const bytes = hex(udpDatagram);
  const ip = Ipv4Packet.checked(bytes, 14) as Ipv4Packet;
  const d = UdpDatagram.checked(bytes, ip.payloadOffset, ip.payloadLen) as UdpDatagram;
  assert.equal(d.dstPort, 5353);
  assert.equal(d.payloadLen, 6); // "hello\n"
  assert.ok(d.verifyChecksumV4(ip.src, ip.dst));
  const repr = UdpRepr.parse(d);
  const out = poisoned(repr.bufferLen());
  out.set(bytes.subarray(d.payloadOffset, d.payloadOffset + 6), 8);
  repr.emit(out);
  repr.fillChecksumV4(out, 0, ip.src, ip.dst);
  assert.deepEqual(out, bytes.subarray(ip.payloadOffset, ip.payloadOffset + 14));
});

test('the kernel VXLAN device sends to port 4789', () => {
  const bytes = hex(vxlanIcmpEchoRequest);
  const d = UdpDatagram.checked(bytes, 34) as UdpDatagram;
  assert.equal(d.dstPort, VXLAN_PORT);
});

test('a length field beyond the bytes is truncated, below the header malformed', () => {
  const b = hex('1234 5678 0064 0000');
  assert.equal((UdpDatagram.checked(b) as WireError).code, 'truncated');
  b[5] = 4;
  assert.equal((UdpDatagram.checked(b) as WireError).code, 'malformed');
});
