import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex } from './bytes.js';
import { internetChecksum, sumBytes, finish } from './checksum.js';

test('RFC 1071 §3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2, checksum 220d', () => {
  const b = hex('0001 f203 f4f5 f6f7');
  assert.equal(finish(sumBytes(b, 0, b.length)), 0x220d);
  assert.equal(internetChecksum(b, 0, b.length), 0x220d);
});

test('an odd length pads with a zero byte; a large buffer folds correctly', () => {
  assert.equal(internetChecksum(hex('ff'), 0, 1), ~0xff00 & 0xffff);
  const big = new Uint8Array(65536).fill(0xff);
  assert.equal(internetChecksum(big, 0, big.length), 0);
});
