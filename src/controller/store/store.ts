/**
 * The controller's store: where the intended network lives. Deliberately small and shaped
 * like etcd's API, so that an etcd-backed store for a highly available control plane can
 * implement it later: keys with JSON values, one global revision that every commit bumps,
 * conditional multi-key commits (compare a key's modRevision, then put/delete), and the
 * changes after a revision, so a watcher can resume where it left off.
 *
 * Contract (test/store.conformance.test.ts runs it against every implementation):
 * - a commit is durable before its promise resolves;
 * - a commit applies all of its operations or none;
 * - revisions strictly increase, by one per successful commit, and survive a restart;
 * - `changesSince(r)` returns every change after r in commit order, or throws Compacted
 *   when the store no longer has them all (the watcher must then re-list).
 */

export interface Entry<T = unknown> {
  key: string;
  value: T;
  /** The revision of the commit that created the key. */
  createRevision: number;
  /** The revision of the commit that last changed it. */
  modRevision: number;
}

/** Holds when the key's modRevision equals `modRevision`; 0 means "the key does not exist". */
export interface Condition {
  key: string;
  modRevision: number;
}

export type Operation = { type: 'put'; key: string; value: unknown } | { type: 'delete'; key: string };

export interface Change {
  revision: number;
  key: string;
  /** The new value, or null for a delete. */
  value: unknown | null;
}

export type CommitResult = { ok: true; revision: number } | { ok: false; failed: Condition; actual: number };

export class Compacted extends Error {
  readonly code = 'ECOMPACTED';
  constructor(
    readonly requested: number,
    /** The oldest revision a watcher can resume from. */
    readonly oldest: number,
  ) {
    super(`changes after revision ${requested} are no longer kept (resume from ${oldest} or later); list again`);
  }
}

/** The store cannot grow: the filesystem holding it is full. Nothing of the commit was
 * applied. A commit that only deletes still succeeds where the store keeps room for it. */
export class StoreFull extends Error {
  readonly code = 'ESTOREFULL';
  constructor(
    /** The directory whose filesystem is full. */
    readonly dir: string,
  ) {
    super(`the filesystem holding the store (${dir}) is full`);
  }
}

export interface Store {
  revision(): Promise<number>;
  get<T = unknown>(key: string): Promise<Entry<T> | null>;
  /** Every key starting with `prefix`, in key order. */
  list<T = unknown>(prefix: string): Promise<Entry<T>[]>;
  /** Applies `operations` atomically if every condition holds. */
  commit(conditions: Condition[], operations: Operation[]): Promise<CommitResult>;
  changesSince(revision: number): Promise<Change[]>;
  /** Calls `listener` after each successful commit with its changes. Returns unsubscribe. */
  subscribe(listener: (changes: Change[]) => void): () => void;
  close(): Promise<void>;
}

/** The store's log could not be synced to disk: what was written may not survive a crash,
 * and the store takes no more writes. */
export class StoreSyncFailed extends Error {
  readonly code = 'ESTORESYNC';
  constructor(file: string, cause: Error) {
    super(`the store could not sync ${file}-wal to disk (${cause.message}); it takes no more writes: check the disk, then restart the controller (what was acknowledged before is on disk)`);
  }
}
