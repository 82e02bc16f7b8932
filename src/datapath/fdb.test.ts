import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fdb, Learned, NOT_FOUND, vtepDestination } from './fdb.js';

const halves = (mac: number): [number, number] => [Math.floor(mac / 2 ** 32), mac >>> 0];

test('learn, look up, move, and age out', () => {
  const fdb = new Fdb(16, 1000);
  const a = 0x020000000001;
  assert.equal(fdb.lookup(...halves(a)), NOT_FOUND);
  assert.equal(fdb.learn(...halves(a), 3, 0), Learned.ok);
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
  for (let i = 0; i < 4; i++) assert.equal(fdb.learn(0x0200, i, i, 0), Learned.ok);
  assert.equal(fdb.learn(0x0200, 99, 0, 0), Learned.full);
  assert.equal(fdb.learnRefused, 1);
  assert.equal(fdb.size, 4);
  assert.equal(fdb.learn(0x0200, 2, 7, 10), Learned.ok, 'a known MAC is not refused');
  assert.equal(fdb.lookup(0x0200, 2), 7);
});

test('static entries are not aged and not overwritten by learning', () => {
  const fdb = new Fdb(8, 10);
  fdb.setStatic(0x020000000009, vtepDestination(0), 0);
  assert.equal(fdb.learn(...halves(0x020000000009), 5, 1), Learned.pinnedElsewhere, 'a frame claiming a pinned MAC from elsewhere');
  assert.equal(fdb.learn(...halves(0x020000000009), vtepDestination(0), 1), Learned.ok, 'from where it is pinned');
  assert.equal(fdb.lookup(...halves(0x020000000009)), vtepDestination(0));
  assert.equal(fdb.age(1_000_000), 0);
});

test('static entries are outside the learning limit: 10,000 pins on a network that learns 4,096', () => {
  const fdb = new Fdb(4096, 1000);
  const pinned = (i: number) => 0x02aa_0000_0000 + i;
  for (let i = 0; i < 10_000; i++) assert.equal(fdb.setStatic(pinned(i), vtepDestination(i % 100), 0), true);
  for (let i = 0; i < 10_000; i++) assert.equal(fdb.lookup(...halves(pinned(i))), vtepDestination(i % 100));
  for (let i = 0; i < 5000; i++) fdb.learn(0x0200, i, 1, 0);
  assert.equal(fdb.size, 10_000 + 4096, 'learning still stops at its limit');
  assert.equal(fdb.statics, 10_000);
  assert.equal(fdb.learnRefused, 5000 - 4096);
  assert.equal(fdb.setStatic(pinned(10_000), vtepDestination(0), 0), true, 'a pin is never refused for the learned entries');
  for (let i = 0; i <= 10_000; i++) assert.notEqual(fdb.lookup(...halves(pinned(i))), NOT_FOUND);
});

test('a learned MAC that becomes static frees its place in the learning limit', () => {
  const fdb = new Fdb(2, 1000);
  fdb.learn(0x0200, 1, 1, 0);
  fdb.learn(0x0200, 2, 1, 0);
  assert.equal(fdb.learn(0x0200, 3, 1, 0), Learned.full);
  fdb.setStatic(0x0200_0000_0001, 5, 0);
  assert.equal(fdb.learn(0x0200, 3, 1, 0), Learned.ok);
  assert.equal(fdb.lookup(0x0200, 1), 5);
  fdb.remove(0x0200_0000_0001);
  assert.equal(fdb.statics, 0);
  assert.equal(fdb.size, 2);
});

test('past its static limit setStatic refuses, installing nothing', () => {
  const fdb = new Fdb(4, 1000, 2);
  assert.equal(fdb.setStatic(0x020000000001, 1, 0), true);
  assert.equal(fdb.setStatic(0x020000000002, 1, 0), true);
  assert.equal(fdb.setStatic(0x020000000003, 1, 0), false);
  assert.equal(fdb.lookup(...halves(0x020000000003)), NOT_FOUND);
  assert.equal(fdb.setStatic(0x020000000002, 2, 0), true, 'moving a pin is not a new one');
  assert.equal(fdb.learnRefused, 0, 'not a learning refusal');
});

test('agrees with a Map under random inserts, removals and aging (backward-shift deletion)', () => {
  let seed = 42;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const fdb = new Fdb(200, 50);
  const model = new Map<number, { dest: number; seen: number; pinned: boolean }>();
  const learned = () => [...model.values()].filter((e) => !e.pinned).length;
  for (let step = 0; step < 30_000; step++) {
    const mac = 0x0200_0000_0000 + rand(600) * 7919; // collisions in a small table
    const op = rand(20);
    if (op < 12) {
      const dest = rand(8);
      const e = model.get(mac);
      const r = fdb.learn(...halves(mac), dest, step);
      if (e?.pinned) {
        assert.equal(r, e.dest === dest ? Learned.ok : Learned.pinnedElsewhere);
      } else {
        if (e || learned() < 200) model.set(mac, { dest, seen: step, pinned: false });
        assert.equal(r === Learned.ok, model.has(mac));
      }
    } else if (op < 15) {
      // Pins grow the table past its first size (it rehashes) and never count as learned.
      const dest = rand(8);
      assert.equal(fdb.setStatic(mac, dest, step), true);
      model.set(mac, { dest, seen: step, pinned: true });
    } else if (op < 19) {
      assert.equal(fdb.remove(mac), model.delete(mac));
    } else {
      for (const [m, e] of model) if (!e.pinned && step - e.seen > 50) model.delete(m);
      fdb.age(step);
    }
    assert.equal(fdb.size, model.size);
    assert.equal(fdb.statics, model.size - learned());
  }
  for (const [m, e] of model) assert.equal(fdb.lookup(...halves(m)), e.dest);
});
