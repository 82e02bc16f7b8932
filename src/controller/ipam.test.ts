import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressPool, allocate } from './ipam.js';

test('an address pool gives what allocate gives over the same taken set: the lowest free, skipping the gateway', () => {
  const taken = new Set([10, 11, 13]);
  const pool = new AddressPool(taken);
  const given: Array<number | null> = [];
  for (let i = 0; i < 4; i++) {
    const ip = pool.allocate(10, 16, 14);
    assert.equal(ip, allocate(10, 16, new Set([...taken, 14])));
    given.push(ip);
    if (ip !== null) {
      pool.take(ip);
      taken.add(ip);
    }
  }
  assert.deepEqual(given, [12, 15, 16, null]);
});

test('an address freed below where the pool got to is given again first; a full range gives null', () => {
  const pool = new AddressPool([]);
  for (let ip = 10; ip <= 12; ip++) {
    assert.equal(pool.allocate(10, 12, 0), ip);
    pool.take(ip);
  }
  assert.equal(pool.allocate(10, 12, 0), null);
  pool.free(11);
  assert.equal(pool.allocate(10, 12, 0), 11);
  pool.take(11);
  pool.free(10);
  pool.free(12);
  assert.equal(pool.allocate(10, 12, 0), 10, 'the lowest of those freed');
  assert.equal(pool.allocate(20, 21, 0), 20, 'another range of the network keeps its own mark');
});
