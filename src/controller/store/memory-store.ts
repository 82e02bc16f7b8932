/** A Store in memory: for unit tests and the control-plane benchmark. Not durable. */
import { Compacted, type Change, type CommitResult, type Condition, type Entry, type Operation, type Store } from './store.js';
import { Listeners } from './listeners.js';

export class MemoryStore implements Store {
  private readonly data = new Map<string, Entry>();
  private readonly history: Change[] = [];
  private rev = 0;
  /** Changes up to this revision may be gone. */
  private compacted = 0;
  private readonly listeners = new Listeners();

  /** @param keepChanges how many changes to keep for resuming watchers */
  constructor(private readonly keepChanges = 100_000) {}

  async revision(): Promise<number> {
    return this.rev;
  }

  async get<T>(key: string): Promise<Entry<T> | null> {
    const e = this.data.get(key);
    return e ? (structuredClone(e) as Entry<T>) : null;
  }

  async list<T>(prefix: string): Promise<Entry<T>[]> {
    return [...this.data.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : 1)).map((e) => structuredClone(e) as Entry<T>);
  }

  async commit(conditions: Condition[], operations: Operation[]): Promise<CommitResult> {
    for (const c of conditions) {
      const actual = this.data.get(c.key)?.modRevision ?? 0;
      if (actual !== c.modRevision) return { ok: false, failed: c, actual };
    }
    const revision = ++this.rev;
    const changes: Change[] = [];
    for (const op of operations) {
      if (op.type === 'put') {
        const value = structuredClone(op.value);
        const prev = this.data.get(op.key);
        this.data.set(op.key, { key: op.key, value, createRevision: prev?.createRevision ?? revision, modRevision: revision });
        changes.push({ revision, key: op.key, value: structuredClone(value) });
      } else if (this.data.delete(op.key)) {
        changes.push({ revision, key: op.key, value: null });
      }
    }
    this.history.push(...changes);
    if (this.history.length > this.keepChanges) {
      this.history.splice(0, this.history.length - this.keepChanges);
      // The oldest kept revision may have lost some of its changes: resuming needs later.
      this.compacted = this.history[0].revision;
    }
    this.listeners.emit(changes);
    return { ok: true, revision };
  }

  async changesSince(revision: number): Promise<Change[]> {
    if (revision < this.compacted) throw new Compacted(revision, this.compacted);
    return this.history.filter((c) => c.revision > revision).map((c) => structuredClone(c));
  }

  subscribe(listener: (changes: Change[]) => void): () => void {
    return this.listeners.add(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
