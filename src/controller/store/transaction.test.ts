import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from './memory-store.js';
import { Transaction, TransactionConflict } from './transaction.js';

test('a transaction sees its own writes; the store sees none of them until finish, then all in one revision', async () => {
  const store = new MemoryStore();
  await store.commit([], [{ type: 'put', key: '/networks/old', value: 1 }]);
  const tx = await Transaction.begin(store);
  assert.deepEqual(await tx.commit([{ key: '/networks/blue', modRevision: 0 }], [{ type: 'put', key: '/networks/blue', value: { vni: 100 } }]), { ok: true, revision: 2 });
  await tx.commit([], [{ type: 'put', key: '/networks/red', value: { vni: 200 } }, { type: 'delete', key: '/networks/old' }]);
  assert.deepEqual((await tx.get('/networks/blue'))?.value, { vni: 100 });
  assert.deepEqual((await tx.list('/networks/')).map((e) => e.key), ['/networks/blue', '/networks/red']);
  assert.equal(await store.get('/networks/blue'), null, 'nothing reached the store yet');
  assert.equal(await store.revision(), 1);

  assert.equal(await tx.finish(), 2);
  assert.deepEqual((await store.list('/networks/')).map((e) => [e.key, e.modRevision]), [['/networks/blue', 2], ['/networks/red', 2]]);
});

test('a condition inside the transaction is checked against its own view', async () => {
  const store = new MemoryStore();
  const tx = await Transaction.begin(store);
  await tx.commit([], [{ type: 'put', key: '/index/vni/100', value: 'blue' }]);
  const r = await tx.commit([{ key: '/index/vni/100', modRevision: 0 }], [{ type: 'put', key: '/index/vni/100', value: 'red' }]);
  assert.equal(r.ok, false, 'a VNI the transaction claimed itself is taken');
  assert.equal((await tx.get('/index/vni/100'))?.value, 'blue');
});

test('finish refuses when a key it read changed meanwhile, and the store keeps the other writer\'s change only', async () => {
  const store = new MemoryStore();
  await store.commit([], [{ type: 'put', key: '/networks/blue', value: { mtu: 1400 } }]);
  const tx = await Transaction.begin(store);
  const seen = await tx.get<{ mtu: number }>('/networks/blue');
  await tx.commit([{ key: '/networks/blue', modRevision: seen!.modRevision }], [{ type: 'put', key: '/networks/blue', value: { mtu: 1300 } }]);
  await store.commit([], [{ type: 'put', key: '/networks/blue', value: { mtu: 1200 } }]);
  await assert.rejects(tx.finish(), (err: Error) => err instanceof TransactionConflict && err.message === '/networks/blue changed while the transaction ran');
  assert.deepEqual((await store.get('/networks/blue'))?.value, { mtu: 1200 });
  assert.equal(await store.revision(), 2);
});

test('a name claimed inside the transaction and by another writer meanwhile: only one of them wins', async () => {
  const store = new MemoryStore();
  const tx = await Transaction.begin(store);
  assert.equal((await tx.commit([{ key: '/index/mac/blue/02:00:00:00:00:01', modRevision: 0 }], [{ type: 'put', key: '/index/mac/blue/02:00:00:00:00:01', value: 'vm1' }])).ok, true);
  assert.equal((await store.commit([{ key: '/index/mac/blue/02:00:00:00:00:01', modRevision: 0 }], [{ type: 'put', key: '/index/mac/blue/02:00:00:00:00:01', value: 'vm9' }])).ok, true);
  await assert.rejects(tx.finish(), TransactionConflict);
  assert.equal((await store.get('/index/mac/blue/02:00:00:00:00:01'))?.value, 'vm9');
});

test('a transaction that wrote nothing finishes without a commit', async () => {
  const store = new MemoryStore();
  const tx = await Transaction.begin(store);
  await tx.list('/');
  assert.equal(await tx.finish(), 0);
  assert.equal(await store.revision(), 0);
});
