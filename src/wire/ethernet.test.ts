import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, parseMac, poisoned, WireError } from './bytes.js';
import { EthernetFrame, EthernetRepr, EtherType, HEADER_LEN } from './ethernet.js';
import { icmpv4EchoRequest } from './testdata/captured.js';

test('a captured frame parses and re-emits byte for byte', () => {
  const bytes = hex(icmpv4EchoRequest);
  const frame = EthernetFrame.checked(bytes);
  assert.ok(frame instanceof EthernetFrame);
  assert.equal(frame.dst, parseMac('02:00:00:00:00:0b'));
  assert.equal(frame.src, parseMac('02:00:00:00:00:0a'));
  assert.equal(frame.ethertype, EtherType.Ipv4);
  const out = poisoned(HEADER_LEN);
  EthernetRepr.parse(frame).emit(out);
  assert.deepEqual(out, bytes.subarray(0, HEADER_LEN));
});

test('a frame shorter than the header is refused as truncated', () => {
  const err = EthernetFrame.checked(new Uint8Array(13));
  assert.ok(err instanceof WireError);
  assert.equal(err.code, 'truncated');
});

test('an unknown EtherType passes through the view untouched', () => {
  const bytes = new Uint8Array(20);
  bytes[12] = 0x88;
  bytes[13] = 0xb5; // local experimental
  const frame = EthernetFrame.checked(bytes) as EthernetFrame;
  assert.equal(frame.ethertype, 0x88b5);
});
