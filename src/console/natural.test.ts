import { test } from 'node:test';
import assert from 'node:assert/strict';
import { naturalCompare, naturalSort } from './natural.js';

const sorted = (names: string[]) => [...names].sort(naturalCompare);

test('numbers in names compare as numbers: h2 before h10', () => {
  assert.deepEqual(sorted(['h10', 'h1', 'h11', 'h2', 'h9', 'h100', 'h0']), ['h0', 'h1', 'h2', 'h9', 'h10', 'h11', 'h100']);
  assert.deepEqual(sorted(['p-10', 'p-2', 'p-1']), ['p-1', 'p-2', 'p-10']);
  assert.deepEqual(sorted(['10.0.0.10', '10.0.0.9', '10.0.1.1', '9.0.0.0']), ['9.0.0.0', '10.0.0.9', '10.0.0.10', '10.0.1.1']);
  assert.deepEqual(sorted(['rack2-h10', 'rack10-h1', 'rack2-h9']), ['rack2-h9', 'rack2-h10', 'rack10-h1']);
});

test('letters before and after numbers, case aside, and a prefix first', () => {
  assert.deepEqual(sorted(['blue', 'Red', 'green', 'blue2', 'blue10', 'blue']), ['blue', 'blue', 'blue2', 'blue10', 'green', 'Red']);
  assert.deepEqual(sorted(['h1a', 'h1', 'h1b', 'h']), ['h', 'h1', 'h1a', 'h1b']);
  assert.ok(naturalCompare('host:h2', 'host:h10') < 0);
});

test('names equal but for case or leading zeros still get one order', () => {
  assert.deepEqual(sorted(['net1', 'net01', 'net2', 'net001']), ['net001', 'net01', 'net1', 'net2']);
  assert.deepEqual(sorted(['h1', 'H1']), ['H1', 'h1']);
  assert.equal(naturalCompare('h1', 'h1'), 0);
  // Numbers longer than any integer type compare right too.
  assert.ok(naturalCompare('x123456789012345678901234567890', 'x123456789012345678901234567891') < 0);
  assert.ok(naturalCompare('x99999999999999999999', 'x100000000000000000000') < 0);
});

test('the order is total: antisymmetric and transitive on a mix of names', () => {
  const names = ['h10', 'h2', 'H2', 'h02', 'h', 'h2a', 'a10b2', 'a10b10', 'a9', '', '1', '01', 'x-1', 'x_1', 'x1'];
  const s = sorted(names);
  for (let i = 0; i < s.length; i++) {
    for (let k = 0; k < s.length; k++) {
      const c = Math.sign(naturalCompare(s[i], s[k]));
      assert.equal(c, -Math.sign(naturalCompare(s[k], s[i])) || 0, `${s[i]} vs ${s[k]}`);
      if (s[i] !== s[k]) assert.equal(c, Math.sign(i - k), `${s[i]} vs ${s[k]} in ${s.join(' ')}`);
    }
  }
});

test('naturalSort sorts a copy by name', () => {
  const hosts = [{ name: 'h10' }, { name: 'h2' }];
  assert.deepEqual(naturalSort(hosts).map((h) => h.name), ['h2', 'h10']);
  assert.deepEqual(hosts.map((h) => h.name), ['h10', 'h2']);
});
