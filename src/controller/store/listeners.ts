import type { Change } from './store.js';

/** Subscribers to committed changes. A listener that throws does not stop the others. */
export class Listeners {
  private readonly set = new Set<(changes: Change[]) => void>();

  add(listener: (changes: Change[]) => void): () => void {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }

  emit(changes: Change[]): void {
    if (changes.length === 0) return;
    for (const l of this.set) {
      try {
        l(changes);
      } catch {
        // A subscriber's bug must not undo or block a commit that is already durable.
      }
    }
  }

  clear(): void {
    this.set.clear();
  }
}
