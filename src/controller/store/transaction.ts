/**
 * A transaction over a Store: many commits made against a private, buffered view, carried
 * out on the real store as one conditional commit, or not at all.
 *
 * It is optimistic, like etcd's software transactional memory: every key the transaction
 * read (through get, list or a commit's conditions) is remembered with the modRevision it
 * had, and the final commit holds only if none of them changed meanwhile. The code that
 * runs inside (the NetworkService, unchanged) sees an ordinary Store: its own earlier writes
 * are visible to its later reads, and its conditions are checked against that view. So a
 * whole `weft apply` passes the same rules as the single requests it is made of, and lands
 * entirely or not at all, also when another writer races it.
 *
 * What it cannot see: a key that did not exist when a prefix was listed and was created
 * meanwhile (a phantom). The service's own commits claim names, VNIs, MACs and addresses
 * through index keys that must not exist (modRevision 0), and those claims are carried into
 * the final commit, so the rules that matter hold; this is the same isolation the single
 * requests have.
 */
import type { Change, CommitResult, Condition, Entry, Operation, Store } from './store.js';

/** Thrown by the final commit when something the transaction read has changed. */
export class TransactionConflict extends Error {
  readonly code = 'ECONFLICT';
  constructor(readonly key: string) {
    super(`${key} changed while the transaction ran`);
  }
}

export class Transaction implements Store {
  /** Keys written by the transaction: the entry, or null for a delete. */
  private readonly writes = new Map<string, Entry | null>();
  /** The keys written, by their folder (the key up to its last `/`): a list reads the
   * folders under its prefix, not every write, so a transaction of many writes lists in
   * time of what it lists. */
  private readonly written = new Map<string, Set<string>>();
  /** Keys read from the base store, with the modRevision seen (0: absent). */
  private readonly reads = new Map<string, number>();
  /** The revision every write of this transaction carries in its own view. */
  private readonly ownRevision: number;
  private wrote = false;

  private constructor(
    private readonly base: Store,
    /** The base store's revision when the transaction began. */
    readonly baseRevision: number,
  ) {
    this.ownRevision = baseRevision + 1;
  }

  static async begin(base: Store): Promise<Transaction> {
    return new Transaction(base, await base.revision());
  }

  /** How many operations the final commit will carry. */
  get size(): number {
    return this.writes.size;
  }

  async revision(): Promise<number> {
    return this.wrote ? this.ownRevision : this.baseRevision;
  }

  async get<T>(key: string): Promise<Entry<T> | null> {
    if (this.writes.has(key)) return clone(this.writes.get(key)!) as Entry<T> | null;
    const e = await this.base.get<T>(key);
    this.remember(key, e?.modRevision ?? 0);
    return e;
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    const merged = new Map<string, Entry<T>>();
    for (const e of await this.base.list<T>(prefix)) {
      this.remember(e.key, e.modRevision);
      merged.set(e.key, e);
    }
    let mine = false;
    for (const [folder, keys] of this.written) {
      // Every key of a folder under the prefix is under it; of a folder the prefix is
      // inside, those that start with it.
      const all = folder.startsWith(prefix);
      if (!all && !prefix.startsWith(folder)) continue;
      for (const key of keys) {
        if (!all && !key.startsWith(prefix)) continue;
        mine = true;
        const e = this.writes.get(key)!;
        if (e === null) merged.delete(key);
        else merged.set(key, clone(e) as Entry<T>);
      }
    }
    // The base store lists in key order; only the transaction's own writes need sorting in.
    const out = [...merged.values()];
    return mine ? out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)) : out;
  }

  async commit(conditions: Condition[], operations: Operation[]): Promise<CommitResult> {
    for (const c of conditions) {
      const actual = await this.modRevisionOf(c.key);
      if (actual !== c.modRevision) return { ok: false, failed: c, actual };
    }
    for (const op of operations) {
      if (op.type === 'put') {
        const prev = await this.get(op.key);
        this.write(op.key, { key: op.key, value: clone(op.value), createRevision: prev?.createRevision ?? this.ownRevision, modRevision: this.ownRevision });
      } else {
        await this.modRevisionOf(op.key);
        this.write(op.key, null);
      }
    }
    this.wrote = true;
    return { ok: true, revision: this.ownRevision };
  }

  /**
   * Carries out every write as one commit on the base store, conditioned on every key read
   * being as it was. Returns the new revision (the base's own, unchanged when the
   * transaction wrote nothing); throws TransactionConflict when something changed.
   */
  async finish(): Promise<number> {
    if (this.writes.size === 0) return this.baseRevision;
    const conditions = [...this.reads].map(([key, modRevision]) => ({ key, modRevision }));
    const operations: Operation[] = [...this.writes].map(([key, e]) => (e === null ? { type: 'delete', key } : { type: 'put', key, value: e.value }));
    const r = await this.base.commit(conditions, operations);
    if (!r.ok) throw new TransactionConflict(r.failed.key);
    return r.revision;
  }

  changesSince(): Promise<Change[]> {
    throw new Error('a transaction has no change log');
  }

  subscribe(): () => void {
    return () => {};
  }

  async close(): Promise<void> {}

  private async modRevisionOf(key: string): Promise<number> {
    if (this.writes.has(key)) return this.writes.get(key)?.modRevision ?? 0;
    const seen = this.reads.get(key);
    if (seen !== undefined) return seen;
    const e = await this.base.get(key);
    this.remember(key, e?.modRevision ?? 0);
    return e?.modRevision ?? 0;
  }

  private write(key: string, e: Entry | null): void {
    this.writes.set(key, e);
    const folder = key.slice(0, key.lastIndexOf('/') + 1);
    let keys = this.written.get(folder);
    if (!keys) this.written.set(folder, (keys = new Set()));
    keys.add(key);
  }

  /** The first revision seen of a key is the one the final commit checks. */
  private remember(key: string, modRevision: number): void {
    if (!this.reads.has(key)) this.reads.set(key, modRevision);
  }
}

function clone<T>(v: T): T {
  return v === null || v === undefined ? v : structuredClone(v);
}
