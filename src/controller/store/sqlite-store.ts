/**
 * The default Store: one SQLite file, no server to run, in WAL mode. Each commit is one
 * SQLite transaction that checks the conditions, writes the keys, logs the changes and
 * bumps the revision, carried out when it is asked for; what makes it durable is grouped
 * (group commit): the write-ahead log is synced to disk once for all the commits of an
 * event-loop turn (SQLite itself syncs only at checkpoints, synchronous=NORMAL), and only
 * then are their promises resolved and their changes told to the listeners. So a commit is
 * on disk before it is acknowledged, as with a sync per commit, and a controller taking
 * many requests at once pays for one sync, not one each. A commit sees the ones before it
 * at once (their claims hold against it); since the log is written in order and synced as
 * a whole, no acknowledged commit can depend on one that is lost.
 *
 * A full filesystem (SQLITE_FULL) fails the commit with StoreFull, applying nothing. Deletes
 * must still work then, or an administrator could not free anything: the store keeps a
 * reserve file of RESERVE_BYTES beside the database, and a commit that only deletes and
 * finds the filesystem full gives the reserve up, checkpoints the write-ahead log into the
 * database and empties it, and tries again. Checkpoints come every WAL_CHECKPOINT_PAGES, so
 * what a checkpoint must add to the database then is smaller than the reserve. After that,
 * each delete gives a little room back (the oldest changes of the log beyond KEEP_WHEN_FULL,
 * and free pages at the end of the file), and the reserve is made again once the
 * filesystem has room for it twice over. (A watcher further behind than the changes kept
 * lists again, as after any compaction.)
 */
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { Listeners } from './listeners.js';
import { Compacted, StoreFull, StoreSyncFailed, type Change, type CommitResult, type Condition, type Entry, type Operation, type Store } from './store.js';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
  INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
  CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    revision INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT
  );
  CREATE INDEX IF NOT EXISTS changes_revision ON changes (revision);
`;

/** Room kept for deletes on a full filesystem (ours: a few checkpoints' worth of pages). */
export const RESERVE_BYTES = 256 * 1024;
/** Pages of write-ahead log between checkpoints (SQLite's default, 1000, is 4 MiB). */
const WAL_CHECKPOINT_PAGES = 32;
/** The reserve is made again when the filesystem has this many times its size free. */
const RESERVE_AGAIN_FACTOR = 2;
/** Changes kept for resuming watchers once the filesystem is full (keepChanges otherwise). */
const KEEP_WHEN_FULL = 100;
/** Changes dropped, and pages given back, after each delete while the reserve is missing. */
const REGAIN_STEP = 16;

const isFull = (err: unknown) => (err as { code?: string }).code === 'SQLITE_FULL' || (err as { code?: string }).code === 'ENOSPC';

interface Row {
  key: string;
  value: string;
  create_revision: number;
  mod_revision: number;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly listeners = new Listeners();
  private readonly stmt;

  /**
   * @param file the database file (created if missing)
   * @param keepChanges how many changes to keep for resuming watchers
   */
  constructor(
    readonly file: string,
    private readonly keepChanges = 100_000,
  ) {
    // The file holds the whole intended network: readable by its owner only, like the
    // tokens. SQLite gives its -wal and -shm files the main file's permissions.
    closeSync(openSync(file, 'a', 0o600));
    chmodSync(file, 0o600);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // Durability is the flush's (group commit): it syncs the log for each turn's commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    this.reserve = `${file}.reserve`;
    // Pages that deletes free can go back to the filesystem (incremental_vacuum), for the
    // reserve to be made again. A database made before is converted once, if there is room.
    if (this.db.pragma('auto_vacuum', { simple: true }) !== 2) {
      try {
        this.db.pragma('auto_vacuum = INCREMENTAL');
        this.db.exec('VACUUM');
      } catch (err) {
        if (!isFull(err)) throw err;
      }
    }
    this.db.exec(SCHEMA);
    this.keepReserve(0);
    this.stmt = {
      revision: this.db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'revision'"),
      compacted: this.db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'compacted'"),
      setMeta: this.db.prepare<[number, string]>('UPDATE meta SET value = ? WHERE name = ?'),
      get: this.db.prepare<[string], Row>('SELECT * FROM kv WHERE key = ?'),
      // Keys with the prefix: [prefix, prefix + U+FFFF) in binary collation.
      list: this.db.prepare<[string, string], Row>('SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
      modRevision: this.db.prepare<[string], { mod_revision: number }>('SELECT mod_revision FROM kv WHERE key = ?'),
      put: this.db.prepare<[string, string, number, number]>(
        'INSERT INTO kv (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision'),
      delete: this.db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      log: this.db.prepare<[number, string, string | null]>('INSERT INTO changes (revision, key, value) VALUES (?, ?, ?)'),
      since: this.db.prepare<[number], { revision: number; key: string; value: string | null }>('SELECT revision, key, value FROM changes WHERE revision > ? ORDER BY seq'),
      seqBounds: this.db.prepare<[], { lo: number | null; hi: number | null }>('SELECT min(seq) AS lo, max(seq) AS hi FROM changes'),
      trim: this.db.prepare<[number]>('DELETE FROM changes WHERE seq < ?'),
      oldestKept: this.db.prepare<[], { r: number | null }>('SELECT min(revision) AS r FROM changes'),
    };
    const bounds = this.stmt.seqBounds.get()!;
    this.firstSeq = bounds.lo ?? 1;
    this.lastSeq = bounds.hi ?? 0;
  }

  /** The file that keeps room for deletes (absent while given up, or never made). */
  private readonly reserve: string;
  private reserveHeld = false;
  /** The filesystem was found full since the reserve was last made. */
  private full = false;

  /** Makes the reserve file if it is missing and the filesystem has `factor` times its size
   * free (at least once). On a filesystem without that room it stays missing. */
  private keepReserve(factor: number): void {
    if (this.reserveHeld) return;
    try {
      const fs = statfsSync(dirname(this.file));
      if (fs.bavail * fs.bsize < RESERVE_BYTES * Math.max(factor, 1)) return;
      writeFileSync(this.reserve, Buffer.alloc(RESERVE_BYTES), { mode: 0o600, flush: true });
      this.reserveHeld = true;
      this.full = false;
    } catch {
      rmSync(this.reserve, { force: true });
    }
  }

  /**
   * After a commit without the reserve: a delete gives a little back to the filesystem (the
   * oldest changes beyond KEEP_WHEN_FULL, whose values fill a store as much as its keys, and
   * free pages at the end of the file), in steps small enough for the room a full
   * filesystem has; the reserve is made again when there is room enough.
   */
  private regainReserve(operations: Operation[]): void {
    if (this.full && operations.every((op) => op.type === 'delete')) {
      const seqs = [this.firstSeq, this.lastSeq];
      try {
        this.db.transaction(() => this.trimLog(Math.max(KEEP_WHEN_FULL, this.lastSeq - this.firstSeq + 1 - REGAIN_STEP), this.stmt.revision.get()!.value)).immediate();
        this.db.pragma(`incremental_vacuum(${REGAIN_STEP})`);
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch (err) {
        [this.firstSeq, this.lastSeq] = seqs;
        if (!isFull(err)) throw err;
      }
    }
    this.keepReserve(RESERVE_AGAIN_FACTOR);
  }

  /** Gives the reserve up and empties the write-ahead log into the database: room for a
   * commit that only deletes. */
  private releaseReserve(): void {
    rmSync(this.reserve, { force: true });
    this.reserveHeld = false;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (err) {
      if (!isFull(err)) throw err;
    }
  }

  /** Drops the oldest changes but `keep` (inside a transaction). */
  private trimLog(keep: number, revision: number): void {
    if (this.lastSeq - this.firstSeq + 1 <= keep) return;
    this.firstSeq = this.lastSeq - keep + 1;
    this.stmt.trim.run(this.firstSeq);
    // The oldest kept revision may have lost some of its changes: resuming needs later.
    this.stmt.setMeta.run(this.stmt.oldestKept.get()!.r ?? revision, 'compacted');
  }

  /** The change log's sequence numbers, kept here so a commit need not count the log. */
  private firstSeq: number;
  private lastSeq: number;

  private toEntry<T>(row: Row): Entry<T> {
    return { key: row.key, value: JSON.parse(row.value) as T, createRevision: row.create_revision, modRevision: row.mod_revision };
  }

  async revision(): Promise<number> {
    return this.stmt.revision.get()!.value;
  }

  async get<T>(key: string): Promise<Entry<T> | null> {
    const row = this.stmt.get.get(key);
    return row ? this.toEntry<T>(row) : null;
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    return this.stmt.list.all(prefix, `${prefix}\uffff`).map((r) => this.toEntry<T>(r));
  }

  async commit(conditions: Condition[], operations: Operation[]): Promise<CommitResult> {
    if (this.syncFailed) throw this.syncFailed;
    const txn = this.db.transaction((): { result: CommitResult; changes: Change[] } => {
      for (const c of conditions) {
        const actual = this.stmt.modRevision.get(c.key)?.mod_revision ?? 0;
        if (actual !== c.modRevision) return { result: { ok: false, failed: c, actual }, changes: [] };
      }
      const revision = this.stmt.revision.get()!.value + 1;
      const changes: Change[] = [];
      for (const op of operations) {
        if (op.type === 'put') {
          const text = JSON.stringify(op.value);
          this.stmt.put.run(op.key, text, revision, revision);
          this.lastSeq = Number(this.stmt.log.run(revision, op.key, text).lastInsertRowid);
          changes.push({ revision, key: op.key, value: JSON.parse(text) });
        } else if (this.stmt.delete.run(op.key).changes > 0) {
          this.lastSeq = Number(this.stmt.log.run(revision, op.key, null).lastInsertRowid);
          changes.push({ revision, key: op.key, value: null });
        }
      }
      this.stmt.setMeta.run(revision, 'revision');
      this.trimLog(this.keepChanges, revision);
      return { result: { ok: true, revision }, changes };
    });
    const seqs = [this.firstSeq, this.lastSeq];
    const attempt = () => {
      try {
        return txn.immediate();
      } catch (err) {
        [this.firstSeq, this.lastSeq] = seqs; // rolled back
        throw err;
      }
    };
    let out;
    try {
      out = attempt();
    } catch (err) {
      if (!isFull(err)) throw err;
      this.full = true;
      if (!operations.every((op) => op.type === 'delete')) throw new StoreFull(dirname(this.file));
      this.releaseReserve();
      try {
        out = attempt();
      } catch (again) {
        throw isFull(again) ? new StoreFull(dirname(this.file)) : again;
      }
    }
    const { result, changes } = out;
    if (!this.reserveHeld) this.regainReserve(operations);
    return new Promise((resolve, reject) => {
      this.pending.push({ result, changes, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  /** Commits carried out and not yet synced to disk, in revision order. */
  private pending: Array<{ result: CommitResult; changes: Change[]; resolve(r: CommitResult): void; reject(err: unknown): void }> = [];
  /** Set when a sync of the log failed: every later commit is refused with it. */
  private syncFailed: StoreSyncFailed | null = null;
  /** The write-ahead log, opened to sync it (null until it exists). */
  private wal: number | null = null;

  /**
   * Makes the pending commits durable with one sync of the write-ahead log (and, the first
   * time, of the directory holding it, which SQLite created), then tells the listeners and
   * resolves each, in order. A failed sync fails them all: what they wrote is in the file,
   * but not known to be on disk.
   */
  private flush(): void {
    const group = this.pending;
    if (group.length === 0) return;
    this.pending = [];
    try {
      if (this.wal === null && existsSync(`${this.file}-wal`)) {
        this.wal = openSync(`${this.file}-wal`, 'r');
        const dir = openSync(dirname(this.file), 'r');
        try {
          fsyncSync(dir);
        } finally {
          closeSync(dir);
        }
      }
      if (this.wal !== null) fsyncSync(this.wal);
    } catch (err) {
      // Fail-stop: after a failed fsync the kernel may have dropped pages of the log, so no
      // later sync could vouch for them. What the group wrote is in the file: the listeners
      // hear of it (the model stays what the file says), its clients are told it is not
      // known to be on disk, and the store takes no more writes until a restart.
      this.syncFailed = new StoreSyncFailed(this.file, err as Error);
      for (const c of group) if (c.result.ok) this.listeners.emit(c.changes);
      for (const c of group) c.reject(this.syncFailed);
      return;
    }
    for (const c of group) {
      if (c.result.ok) this.listeners.emit(c.changes);
      c.resolve(c.result);
    }
  }

  async changesSince(revision: number): Promise<Change[]> {
    const compacted = this.stmt.compacted.get()!.value;
    if (revision < compacted) throw new Compacted(revision, compacted);
    return this.stmt.since.all(revision).map((r) => ({ revision: r.revision, key: r.key, value: r.value === null ? null : JSON.parse(r.value) }));
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    return this.listeners.add(listener);
  }

  async close(): Promise<void> {
    this.flush(); // what was committed before the close is acknowledged
    this.listeners.clear();
    if (this.wal !== null) closeSync(this.wal);
    this.wal = null;
    this.db.close();
  }
}

