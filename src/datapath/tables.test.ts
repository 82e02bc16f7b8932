import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressTable, NO_PIN, PinTable, TableBuilder, localPin } from './tables.js';
import { parseIpv4 } from '../wire/bytes.js';

const halves = (mac: number): [number, number] => [Math.floor(mac / 2 ** 32), mac >>> 0];

test('a pin table agrees with a Map under random changes, and every old version stays as it was', () => {
  let seed = 7;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  let table = PinTable.EMPTY;
  const model = new Map<number, number>();
  const versions: Array<[PinTable, Map<number, number>]> = [];
  for (let step = 0; step < 400; step++) {
    const changes = new Map<number, number>();
    for (let k = rand(40); k >= 0; k--) {
      const mac = 0x02aa_0000_0000 + rand(3000) * 7919;
      const code = rand(4) === 0 ? NO_PIN : rand(3) === 0 ? localPin(rand(5)) : rand(100);
      changes.set(mac, code);
    }
    table = table.with(changes);
    for (const [mac, code] of changes) (code === NO_PIN ? model.delete(mac) : model.set(mac, code));
    assert.equal(table.size, model.size);
    if (step % 50 === 0) versions.push([table, new Map(model)]);
  }
  for (const [mac, code] of model) assert.equal(table.get(...halves(mac)), code);
  assert.equal(table.get(...halves(0x02bb_0000_0001)), NO_PIN);
  for (const [old, was] of versions) {
    assert.equal(old.size, was.size);
    for (const [mac, code] of was) assert.equal(old.get(...halves(mac)), code, 'an older version is never changed by a newer one');
  }
});

test('64,000 pins: one change makes a new table that shares all but one shard, and costs a shard\'s copy', () => {
  const mac = (i: number) => 0x0200_0000_0000 + i;
  const all = new Map<number, number>();
  for (let i = 0; i < 64_000; i++) all.set(mac(i), i % 100);
  const big = PinTable.EMPTY.with(all);
  assert.equal(big.size, 64_000);
  const next = big.with(new Map([[mac(5), 42]]));
  assert.equal(next.get(...halves(mac(5))), 42);
  assert.equal(big.get(...halves(mac(5))), 5, 'the old version is untouched');
  // Reach into the shards: every one but the changed one is the same object.
  const shardsOf = (t: PinTable) => (t as unknown as { shards: unknown[] }).shards;
  const shared = shardsOf(next).filter((s, i) => s === shardsOf(big)[i]).length;
  assert.equal(shared, shardsOf(big).length - 1);
  for (let i = 0; i < 64_000; i += 997) assert.equal(next.get(...halves(mac(i))), i === 5 ? 42 : i % 100);
});

test('an address table answers what it was given, copies only the shards it changes', () => {
  const t = AddressTable.EMPTY.with(new Map([[parseIpv4('10.0.0.1'), 1], [parseIpv4('10.0.0.2'), 2]]));
  const u = t.with(new Map([[parseIpv4('10.0.0.1'), null], [parseIpv4('10.0.0.3'), 3]]));
  assert.deepEqual([t.get(parseIpv4('10.0.0.1')), t.get(parseIpv4('10.0.0.3')), t.size], [1, undefined, 2]);
  assert.deepEqual([u.get(parseIpv4('10.0.0.1')), u.get(parseIpv4('10.0.0.2')), u.get(parseIpv4('10.0.0.3')), u.size], [undefined, 2, 3, 2]);
});

test('a builder shares what did not change between builds, keeps member ids, and refuses a pin to no member', () => {
  const b = new TableBuilder().members([{ address: '192.0.2.2', port: 4789 }, { address: '192.0.2.3', port: 4789 }]).gateways(['10.0.0.254/24']).arp('10.0.0.5', 5);
  const first = b.build();
  assert.equal(b.pinRemote(7, '192.0.2.9', 4789), false);
  assert.equal(b.pinRemote(7, '192.0.2.3', 4789), true);
  const second = b.build();
  assert.notEqual(second, first);
  assert.equal(second.members, first.members, 'members unchanged: the same list');
  assert.equal(second.gateways, first.gateways);
  assert.equal(second.arp, first.arp, 'no ARP change: the same table');
  assert.equal(second.pins.get(0, 7), first.members[1].id);
  // A member that goes and another that comes: the one that stays keeps its id.
  const third = b.members([{ address: '192.0.2.3', port: 4789 }, { address: '192.0.2.4', port: 4789 }]).build();
  assert.equal(third.members[0], first.members[1]);
  assert.ok(!first.members.some((m) => m.id === third.members[1].id), 'a new member never takes an id a pin may still name');
  assert.ok(Object.isFrozen(third));
});
