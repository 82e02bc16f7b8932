/**
 * The forwarding database of one bridge domain: MAC address -> where it lives (a local port
 * or a remote VTEP), learned from traffic or installed statically.
 *
 * An open-addressing hash table (linear probing, backward-shift deletion) over typed
 * arrays: a lookup or a learn allocates nothing. Two kinds of entry share it, each with its
 * own bound:
 * - learned entries, at most `limit` (the per-network learning limit). At the limit a new
 *   MAC is simply not learned: the frame is still forwarded (replies to it are flooded),
 *   and the refusal is counted in `learnRefused`.
 * - static entries (the controller's remote ports and the local ports' own MACs), bounded
 *   by the view that installs them, not by the learning limit: the table is sized for
 *   `limit` learned entries plus every static one, and grows (allocating, on the control
 *   plane) when a static entry would push it past half full. `staticLimit` is only a guard
 *   against a view no host could hold; past it `setStatic` refuses, and its caller must
 *   report the view as failed.
 */
import type { MacNumber } from '../wire/bytes.js';

/** Where a MAC lives: a local port index (>= 0) or a remote VTEP, encoded as -(vtep + 1). */
export type FdbDestination = number;
export const NOT_FOUND = 0x7fffffff;

export function vtepDestination(vtep: number): FdbDestination {
  return -(vtep + 1);
}

export function isRemote(dest: FdbDestination): boolean {
  return dest < 0;
}

export function vtepOf(dest: FdbDestination): number {
  return -dest - 1;
}

/** What `learn` found. */
export const Learned = {
  /** Learned or refreshed. */
  ok: 0,
  /** A new MAC and the table is full: not learned (the frame may still be forwarded). */
  full: 1,
  /** The MAC is pinned (a static entry) to another destination: the frame is a spoof. */
  pinnedElsewhere: 2,
} as const;

/** Static entries one network holds at most (ours: a guard on memory, about 40 MB of table;
 * a real view is far below it). */
export const STATIC_LIMIT = 1 << 20;

const EMPTY = 0;
const LEARNED = 1;
const STATIC = 2;

export class Fdb {
  private hi!: Uint16Array;
  private lo!: Uint32Array;
  private dest!: Int32Array;
  private state!: Uint8Array;
  private seen!: Float64Array;
  private mask = 0;
  private learnedCount = 0;
  private staticCount = 0;
  /** New MACs not learned because the table was at its limit. */
  learnRefused = 0;
  /** Learned MACs that moved to another port or VTEP. */
  moves = 0;

  /**
   * @param limit how many learned entries at most (the per-network limit)
   * @param agingMs how long a learned entry lives without being seen again
   * @param staticLimit how many static entries at most (a guard, see STATIC_LIMIT)
   */
  constructor(
    readonly limit: number,
    readonly agingMs: number,
    readonly staticLimit = STATIC_LIMIT,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`FDB limit must be a positive integer, not ${limit}`);
    this.allocate(this.sizeFor(0));
  }

  /** Every entry, learned and static. */
  get size(): number {
    return this.learnedCount + this.staticCount;
  }

  /** Static entries (they do not count against `limit`). */
  get statics(): number {
    return this.staticCount;
  }

  /** Slots for `statics` static entries plus a full learning limit, at most half full. */
  private sizeFor(statics: number): number {
    let size = 8;
    while (size < (this.limit + statics) * 2) size *= 2;
    return size;
  }

  private allocate(size: number): void {
    this.mask = size - 1;
    this.hi = new Uint16Array(size);
    this.lo = new Uint32Array(size);
    this.dest = new Int32Array(size);
    this.state = new Uint8Array(size);
    this.seen = new Float64Array(size);
  }

  /** Makes room for one more static entry: rehashes into a table twice the size if needed. */
  private reserveStatic(): void {
    const size = this.sizeFor(this.staticCount + 1);
    if (size <= this.mask + 1) return;
    const { hi, lo, dest, state, seen } = this;
    this.allocate(size);
    for (let j = 0; j < state.length; j++) {
      if (state[j] === EMPTY) continue;
      let i = this.slotOf(hi[j], lo[j]);
      while (this.state[i] !== EMPTY) i = (i + 1) & this.mask;
      this.hi[i] = hi[j];
      this.lo[i] = lo[j];
      this.dest[i] = dest[j];
      this.state[i] = state[j];
      this.seen[i] = seen[j];
    }
  }

  private slotOf(hi: number, lo: number): number {
    // Multiplicative hashing of both halves; Math.imul keeps it in int32.
    return (Math.imul(lo ^ (hi << 16) ^ hi, 0x9e3779b1) >>> 0) & this.mask;
  }

  private find(hi: number, lo: number): number {
    let i = this.slotOf(hi, lo);
    for (;;) {
      if (this.state[i] === EMPTY) return -1;
      if (this.lo[i] === lo && this.hi[i] === hi) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** The destination of `mac` (given as its two halves), or NOT_FOUND. */
  lookup(hi: number, lo: number): FdbDestination {
    const i = this.find(hi, lo);
    return i < 0 ? NOT_FOUND : this.dest[i];
  }

  /**
   * Records that `mac` was seen at `destination`. A static entry (a MAC the controller put
   * at a port or a remote host) is never moved by learning: a frame claiming it from
   * anywhere else gets `Learned.pinnedElsewhere`. A new MAC with the table full is not
   * learned (counted in learnRefused): `Learned.full`.
   */
  learn(hi: number, lo: number, destination: FdbDestination, now: number): number {
    const i = this.find(hi, lo);
    if (i >= 0) {
      if (this.state[i] === STATIC) return this.dest[i] === destination ? Learned.ok : Learned.pinnedElsewhere;
      if (this.dest[i] !== destination) {
        this.dest[i] = destination;
        this.moves++;
      }
      this.seen[i] = now;
      return Learned.ok;
    }
    return this.insert(hi, lo, destination, LEARNED, now) ? Learned.ok : Learned.full;
  }

  /** Whether `mac` is a static entry pointing at `destination`. */
  isStaticAt(mac: MacNumber, destination: FdbDestination): boolean {
    const i = this.find(Math.floor(mac / 0x1_0000_0000), mac >>> 0);
    return i >= 0 && this.state[i] === STATIC && this.dest[i] === destination;
  }

  /**
   * Installs a static entry (pushed by the controller, say); replaces a learned one. The
   * learning limit does not apply; false only past `staticLimit` (nothing installed).
   */
  setStatic(mac: MacNumber, destination: FdbDestination, now: number): boolean {
    const hi = Math.floor(mac / 0x1_0000_0000);
    const lo = mac >>> 0;
    let i = this.find(hi, lo);
    if (i >= 0 && this.state[i] === STATIC) {
      this.dest[i] = destination;
      this.seen[i] = now;
      return true;
    }
    if (this.staticCount >= this.staticLimit) return false;
    this.reserveStatic(); // may rehash: find the entry again
    i = this.find(hi, lo);
    if (i >= 0) {
      this.learnedCount--;
      this.staticCount++;
      this.dest[i] = destination;
      this.state[i] = STATIC;
      this.seen[i] = now;
      return true;
    }
    this.insert(hi, lo, destination, STATIC, now);
    return true;
  }

  /** Puts a new entry in; a learned one only below the learning limit. */
  private insert(hi: number, lo: number, destination: FdbDestination, state: number, now: number): boolean {
    if (state === LEARNED) {
      if (this.learnedCount >= this.limit) {
        this.learnRefused++;
        return false;
      }
      this.learnedCount++;
    } else {
      this.staticCount++;
    }
    let i = this.slotOf(hi, lo);
    while (this.state[i] !== EMPTY) i = (i + 1) & this.mask;
    this.hi[i] = hi;
    this.lo[i] = lo;
    this.dest[i] = destination;
    this.state[i] = state;
    this.seen[i] = now;
    return true;
  }

  remove(mac: MacNumber): boolean {
    const i = this.find(Math.floor(mac / 0x1_0000_0000), mac >>> 0);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  /** Backward-shift deletion: keeps every probe chain unbroken without tombstones. */
  private removeAt(i: number): void {
    if (this.state[i] === STATIC) this.staticCount--;
    else this.learnedCount--;
    this.state[i] = EMPTY;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      if (this.state[j] === EMPTY) return;
      const home = this.slotOf(this.hi[j], this.lo[j]);
      // Move j back to i unless its home lies cyclically in (i, j].
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      this.hi[i] = this.hi[j];
      this.lo[i] = this.lo[j];
      this.dest[i] = this.dest[j];
      this.state[i] = this.state[j];
      this.seen[i] = this.seen[j];
      this.state[j] = EMPTY;
      i = j;
    }
  }

  /** Removes every entry pointing at `destination` (a port or VTEP going away). */
  flushDestination(destination: FdbDestination): number {
    return this.removeWhere((i) => this.dest[i] === destination);
  }

  /** Removes learned entries not seen for `agingMs`. Returns how many went. */
  age(now: number): number {
    return this.removeWhere((i) => this.state[i] === LEARNED && now - this.seen[i] > this.agingMs);
  }

  private removeWhere(pred: (i: number) => boolean): number {
    let removed = 0;
    // Backward shifts move entries to lower slots (cyclically); rescan a slot after removal.
    for (let i = 0; i <= this.mask; ) {
      if (this.state[i] !== EMPTY && pred(i)) {
        this.removeAt(i);
        removed++;
      } else {
        i++;
      }
    }
    return removed;
  }
}
