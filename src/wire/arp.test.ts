import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, parseIpv4, parseMac, poisoned, WireError } from './bytes.js';
import { ArpOperation, ArpPacket, ArpRepr, HEADER_LEN } from './arp.js';
import { vxlanArpRequest } from './testdata/captured.js';

// The captured frame: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
const ARP_AT = 14 + 20 + 8 + 8 + 14;

test('a captured ARP request (inside kernel VXLAN) parses and re-emits exactly', () => {
  const bytes = hex(vxlanArpRequest);
  const p = ArpPacket.checked(bytes, ARP_AT) as ArpPacket;
  assert.ok(p instanceof ArpPacket);
  const repr = ArpRepr.parse(p);
  assert.equal(repr.operation, ArpOperation.Request);
  assert.equal(repr.senderMac, parseMac('02:00:00:00:01:0a'));
  assert.equal(repr.senderIp, parseIpv4('10.201.0.1'));
  assert.equal(repr.targetIp, parseIpv4('10.201.0.2'));
  const out = poisoned(HEADER_LEN);
  repr.emit(out);
  assert.deepEqual(out, bytes.subarray(ARP_AT, ARP_AT + HEADER_LEN));
});

test('ARP for anything but Ethernet/IPv4 is malformed; short is truncated', () => {
  const bytes = hex(vxlanArpRequest).slice(ARP_AT);
  bytes[1] = 6; // hardware type IEEE 802
  assert.equal((ArpPacket.checked(bytes) as WireError).code, 'malformed');
  assert.equal((ArpPacket.checked(bytes, 0, 27) as WireError).code, 'truncated');
});
