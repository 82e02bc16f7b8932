import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, poisoned, WireError } from './bytes.js';
import { GeneveHeader, GeneveRepr, PROTOCOL_ETHERNET, writeGeneveHeader } from './geneve.js';

// RFC 8926 layout, written out by hand: Opt Len 3 (12 bytes of options), C bit set,
// protocol 0x6558, VNI 0x123456; one option, class 0x0102, type 0x80 (critical), 8 bytes.
const withOption = hex(`
  03 40 6558  123456 00
  0102 80 02  deadbeef cafef00d
`);

test('a header with an option parses field by field and re-emits exactly', () => {
  const h = GeneveHeader.checked(withOption) as GeneveHeader;
  assert.ok(h instanceof GeneveHeader);
  assert.equal(h.version, 0);
  assert.equal(h.optionsLen, 12);
  assert.equal(h.critical, true);
  assert.equal(h.oam, false);
  assert.equal(h.protocol, PROTOCOL_ETHERNET);
  assert.equal(h.vni, 0x123456);
  const repr = GeneveRepr.parse(h) as GeneveRepr;
  assert.ok(repr instanceof GeneveRepr);
  assert.equal(repr.options.length, 1);
  assert.equal(repr.options[0].optionClass, 0x0102);
  assert.equal(repr.options[0].type, 0x80);
  assert.deepEqual([...repr.options[0].data], [0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xf0, 0x0d]);
  const out = poisoned(repr.bufferLen());
  repr.emit(out);
  assert.deepEqual(out, withOption);
});

test('the hot-path writer equals the repr for an option-less header', () => {
  const a = poisoned(8);
  const b = poisoned(8);
  writeGeneveHeader(a, 0, 77);
  new GeneveRepr(77).emit(b);
  assert.deepEqual(a, b);
  assert.deepEqual(a, hex('00006558 00004d00'));
});

test('options announced but missing are truncated; an option overrunning them malformed', () => {
  assert.equal((GeneveHeader.checked(withOption, 0, 16) as WireError).code, 'truncated');
  const overrun = withOption.slice();
  overrun[11] = 0x05; // option says 20 bytes of data, only 8 are there
  const h = GeneveHeader.checked(overrun) as GeneveHeader;
  assert.ok(h.options() instanceof WireError);
  const v1 = withOption.slice();
  v1[0] |= 0x40; // version 1
  assert.ok(GeneveRepr.parse(GeneveHeader.checked(v1) as GeneveHeader) instanceof WireError);
});
