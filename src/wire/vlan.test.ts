import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, poisoned, WireError } from './bytes.js';
import { EthernetFrame, EtherType, HEADER_LEN as ETH_LEN } from './ethernet.js';
import { VlanRepr, VlanTag, HEADER_LEN } from './vlan.js';

// A QinQ frame: S-tag 100 (PCP 5), C-tag 42 (DEI set), then IPv4.
const qinq = hex(`
  ffffffffffff 020000000001 88a8
  a064 8100
  102a 0800
  45000014 00000000 40000000 00000000 00000000
`);

test('QinQ: an S-tag then a C-tag, each read with the same view', () => {
  const eth = EthernetFrame.checked(qinq) as EthernetFrame;
  assert.equal(eth.ethertype, EtherType.QinQ);
  const outer = VlanTag.checked(qinq, ETH_LEN) as VlanTag;
  assert.equal(outer.vid, 100);
  assert.equal(outer.pcp, 5);
  assert.equal(outer.dei, false);
  assert.equal(outer.ethertype, EtherType.Vlan);
  const inner = VlanTag.checked(qinq, outer.payloadOffset) as VlanTag;
  assert.equal(inner.vid, 42);
  assert.equal(inner.dei, true);
  assert.equal(inner.ethertype, EtherType.Ipv4);

  const out = poisoned(2 * HEADER_LEN);
  VlanRepr.parse(outer).emit(out, 0);
  VlanRepr.parse(inner).emit(out, HEADER_LEN);
  assert.deepEqual(out, qinq.subarray(ETH_LEN, ETH_LEN + 2 * HEADER_LEN));
});

test('a tag cut short is truncated', () => {
  assert.ok(VlanTag.checked(new Uint8Array(3)) instanceof WireError);
});
