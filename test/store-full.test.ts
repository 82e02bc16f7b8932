/**
 * A full disk, for real: the controller's store on a 2 MiB tmpfs, filled through the API
 * until a create is refused. The refusal is a 507 with a sentence, logged once with the
 * data directory and raised as an event; deletes still work (the store's reserve), every
 * resource can be deleted, and then creates work again. What was acknowledged survives a
 * reopen. Needs root (mount); run under the e2e lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { apiApp } from '../src/controller/api.js';
import { Applier } from '../src/controller/apply.js';
import { EventLog } from '../src/controller/events.js';
import { NetworkService } from '../src/controller/service.js';
import { SqliteStore } from '../src/controller/store/sqlite-store.js';

const ROOT = process.getuid?.() === 0;

test('a full disk: 507 with a sentence, logged once, an event; deletes still work, then creates again', { skip: ROOT ? false : 'needs root to mount a small tmpfs', timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-full-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dir], { encoding: 'utf8' });
  assert.equal(mount.status, 0, mount.stderr);
  let store: SqliteStore | null = null;
  try {
    store = new SqliteStore(join(dir, 'weft.db'));
    const logged: Array<{ level: number; msg: string; dataDir?: string }> = [];
    const log = pino({ level: 'info' }, new Writable({ write(chunk, _enc, done) { logged.push(JSON.parse(String(chunk))); done(); } }));
    const events = new EventLog();
    const s = store;
    const app = apiApp({ service: new NetworkService(s), applier: new Applier(s), adminToken: 't', agents: { status: () => ({ connected: false }) }, events, log });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await app.request(path, { method, headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    // Security groups of 40 rules each: a few KiB a create.
    const rules = Array.from({ length: 40 }, (_, i) => ({ direction: 'ingress', protocol: 'tcp', ports: { min: 1000 + i, max: 1000 + i }, remote: { cidr: `10.${i}.0.0/16` } }));
    const made: string[] = [];
    let refused: { status: number; body: { title: string; detail: string } } | null = null;
    while (made.length < 5000) {
      const name = `g${made.length}`;
      const r = await call('POST', '/v1/security-groups', { name, description: 'x'.repeat(200), rules });
      if (r.status !== 201) {
        refused = r;
        break;
      }
      made.push(name);
    }
    assert.ok(refused, 'the disk filled');
    assert.ok(made.length > 10, `${made.length} groups before it filled`);
    assert.equal(refused.status, 507, JSON.stringify(refused.body));
    assert.equal(refused.body.title, 'Insufficient Storage');
    assert.equal(refused.body.detail, `the controller's store has no room: the filesystem of its data directory (${dir}) is full. Deleting resources still works; free space on that filesystem (or give it more), then try again`);
    assert.equal((await call('POST', '/v1/security-groups', { name: 'one-more', rules })).status, 507);
    assert.equal((await call('GET', '/v1/security-groups/g0')).status, 200, 'reads go on');
    const full = logged.filter((l) => l.level === 50);
    assert.equal(full.length, 1, `logged once: ${JSON.stringify(full)}`);
    assert.equal(full[0].dataDir, dir);
    assert.match(full[0].msg, /filesystem is full/);
    assert.deepEqual(events.since(0).map((e) => e.kind), ['store.full']);

    // Every group can be deleted, on the full disk.
    for (const name of made) {
      const r = await call('DELETE', `/v1/security-groups/${name}`);
      assert.equal(r.status, 204, `delete ${name}: ${JSON.stringify(r.body)}`);
    }
    assert.deepEqual(await call('GET', '/v1/security-groups').then((r) => r.body), []);
    // And then there is room for creates again.
    const again = await call('POST', '/v1/security-groups', { name: 'again', description: 'x'.repeat(200), rules });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.deepEqual(events.since(0).map((e) => e.kind), ['store.full', 'store.writable']);
    const revision = await s.revision();
    await s.close();

    // What was acknowledged is what a restarted controller finds.
    store = new SqliteStore(join(dir, 'weft.db'));
    assert.equal(await store.revision(), revision);
    assert.deepEqual((await store.list<{ name: string }>('/security-groups/')).map((e) => e.value.name), ['again']);
  } finally {
    await store?.close().catch(() => {});
    const umount = spawnSync('umount', [dir], { encoding: 'utf8' });
    if (umount.status !== 0) spawnSync('umount', ['-l', dir]);
    rmdirSync(dir);
  }
});
