/**
 * A failed sync of the store's write-ahead log: the group's clients are told, the model
 * still hears what the file holds, and the store takes no more writes (fail-stop: after a
 * failed fsync no later sync can vouch for the pages before it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from './sqlite-store.js';
import { StoreSyncFailed, type Change } from './store.js';

test('a failed sync of the log rejects its commits, tells the listeners what the file holds, and refuses every later write', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sync-'));
  const store = new SqliteStore(join(dir, 'weft.db'));
  try {
    const heard: Change[] = [];
    store.subscribe((changes) => heard.push(...changes));
    assert.equal((await store.commit([], [{ type: 'put', key: '/a', value: 1 }])).ok, true);
    // The store's descriptor of the log, closed behind its back (and its number taken by a
    // directory, which fsync accepts, were it reused: so make it a descriptor of nothing).
    const internals = store as unknown as { wal: number | null };
    assert.notEqual(internals.wal, null, 'the log was opened by the first commit');
    closeSync(internals.wal!);
    const placeholder = openSync(dir, 'r');
    closeSync(placeholder);
    await assert.rejects(store.commit([], [{ type: 'put', key: '/b', value: 2 }]), (err: unknown) => err instanceof StoreSyncFailed && /could not sync .*weft\.db-wal/.test((err as Error).message));
    assert.deepEqual(heard.map((c) => c.key), ['/a', '/b'], 'the listeners hear what the file holds');
    await assert.rejects(store.commit([], [{ type: 'put', key: '/c', value: 3 }]), StoreSyncFailed);
    assert.equal(await store.get('/c'), null, 'nothing written after the failure');
    internals.wal = null; // closed already
  } finally {
    await store.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
