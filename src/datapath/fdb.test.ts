import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fdb, NOT_FOUND, vtepDestination } from './fdb.js';

const halves = (mac: number): [number, number] => [Math.floor(mac / 2 ** 32), mac >>> 0];

test('learn, look up, move, and age out', () => {
  const fdb = new Fdb(16, 1000);
  const a = 0x020000000001;
  assert.equal(fdb.lookup(...halves(a)), NOT_FOUND);
  assert.equal(fdb.learn(...halves(a), 3, 0), true);
  assert.equal(fdb.lookup(...halves(a)), 3);
  fdb.learn(...halves(a), vtepDestination(2), 500);
  assert.equal(fdb.lookup(...halves(a)), vtepDestination(2));
  assert.equal(fdb.moves, 1);
  assert.equal(fdb.age(1400), 0, 'seen at 500, so alive at 1400');
  assert.equal(fdb.age(1501), 1);
  assert.equal(fdb.lookup(...halves(a)), NOT_FOUND);
});

test('at the limit a new MAC is refused and counted; known MACs still refresh', () => {
  const fdb = new Fdb(4, 1000);
  for (let i = 0; i < 4; i++) assert.equal(fdb.learn(0x0200, i, i, 0), true);
  assert.equal(fdb.learn(0x0200, 99, 0, 0), false);
  assert.equal(fdb.learnRefused, 1);
  assert.equal(fdb.size, 4);
  assert.equal(fdb.learn(0x0200, 2, 7, 10), true, 'a known MAC is not refused');
  assert.equal(fdb.lookup(0x0200, 2), 7);
});

test('agrees with a Map under random learns, removals and aging (backward-shift deletion)', () => {
  let seed = 42;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const fdb = new Fdb(200, 50);
  const model = new Map<number, { dest: number; seen: number }>();
  for (let step = 0; step < 30_000; step++) {
    const mac = 0x0200_0000_0000 + rand(600) * 7919; // collisions in a small table
    const op = rand(20);
    if (op < 14) {
      const dest = rand(8);
      const r = fdb.learn(...halves(mac), dest, step);
      if (model.has(mac) || model.size < 200) model.set(mac, { dest, seen: step });
      assert.equal(r, model.has(mac));
    } else if (op < 19) {
      assert.equal(fdb.remove(mac), model.delete(mac));
    } else {
      for (const [m, e] of model) if (step - e.seen > 50) model.delete(m);
      fdb.age(step);
    }
    assert.equal(fdb.size, model.size);
  }
  for (const [m, e] of model) assert.equal(fdb.lookup(...halves(m)), e.dest);
});
