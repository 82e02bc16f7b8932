import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, parseMac, poisoned, WireError } from './bytes.js';
import { EthernetFrame } from './ethernet.js';
import { HEADER_LEN, VxlanHeader, VxlanRepr, writeVxlanHeader } from './vxlan.js';
import { vxlanIcmpEchoRequest } from './testdata/captured.js';

const AT = 14 + 20 + 8;

test('a header sent by the Linux kernel parses, and ours is identical', () => {
  const bytes = hex(vxlanIcmpEchoRequest);
  const h = VxlanHeader.checked(bytes, AT) as VxlanHeader;
  assert.ok(h.vniValid);
  assert.equal(h.vni, 4242);
  const inner = EthernetFrame.checked(bytes, h.payloadOffset) as EthernetFrame;
  assert.equal(inner.src, parseMac('02:00:00:00:01:0a'));
  const out = poisoned(HEADER_LEN);
  (VxlanRepr.parse(h) as VxlanRepr).emit(out);
  assert.deepEqual(out, bytes.subarray(AT, AT + HEADER_LEN));
  const fast = poisoned(HEADER_LEN);
  writeVxlanHeader(fast, 0, 4242);
  assert.deepEqual(fast, out);
});

test('a header without the I flag is refused by the repr, not the view', () => {
  const b = hex('00000000 00109200');
  const h = VxlanHeader.checked(b) as VxlanHeader;
  assert.equal(h.vni, 0x1092);
  assert.equal(h.vniValid, false);
  assert.ok(VxlanRepr.parse(h) instanceof WireError);
  assert.equal((VxlanHeader.checked(b, 0, 7) as WireError).code, 'truncated');
});
