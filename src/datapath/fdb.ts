/**
 * The forwarding database of one bridge domain: MAC address -> where it lives (a local port
 * or a remote VTEP), learned from traffic. What the controller says (its ports' MACs) is
 * not here: it is pinned in the network's compiled tables (tables.ts), which the data path
 * consults first, so the learning limit bounds learned entries only.
 *
 * An open-addressing hash table (linear probing, backward-shift deletion) over typed
 * arrays: a lookup or a learn allocates nothing. At most `limit` entries (the per-network
 * learning limit): at the limit a new MAC is simply not learned, the frame is still
 * forwarded (replies to it are flooded), and the refusal is counted in `learnRefused`.
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

const EMPTY = 0;
const USED = 1;

export class Fdb {
  private hi!: Uint16Array;
  private lo!: Uint32Array;
  private dest!: Int32Array;
  private state!: Uint8Array;
  private seen!: Float64Array;
  private mask = 0;
  private count = 0;
  /** New MACs not learned because the table was at its limit. */
  learnRefused = 0;
  /** Learned MACs that moved to another port or VTEP. */
  moves = 0;

  /**
   * @param limit how many entries at most (the per-network learning limit)
   * @param agingMs how long an entry lives without being seen again
   */
  constructor(
    readonly limit: number,
    readonly agingMs: number,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`FDB limit must be a positive integer, not ${limit}`);
    // At most half full.
    let size = 8;
    while (size < limit * 2) size *= 2;
    this.allocate(size);
  }

  get size(): number {
    return this.count;
  }

  private allocate(size: number): void {
    this.mask = size - 1;
    this.hi = new Uint16Array(size);
    this.lo = new Uint32Array(size);
    this.dest = new Int32Array(size);
    this.state = new Uint8Array(size);
    this.seen = new Float64Array(size);
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

  /** Records that `mac` was seen at `destination`; false when it is new and the table is
   * full (not learned, counted in learnRefused). */
  learn(hi: number, lo: number, destination: FdbDestination, now: number): boolean {
    const i = this.find(hi, lo);
    if (i >= 0) {
      if (this.dest[i] !== destination) {
        this.dest[i] = destination;
        this.moves++;
      }
      this.seen[i] = now;
      return true;
    }
    if (this.count >= this.limit) {
      this.learnRefused++;
      return false;
    }
    this.count++;
    let j = this.slotOf(hi, lo);
    while (this.state[j] !== EMPTY) j = (j + 1) & this.mask;
    this.hi[j] = hi;
    this.lo[j] = lo;
    this.dest[j] = destination;
    this.state[j] = USED;
    this.seen[j] = now;
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
    this.count--;
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
      this.state[i] = USED;
      this.seen[i] = this.seen[j];
      this.state[j] = EMPTY;
      i = j;
    }
  }

  /** Removes every entry pointing at `destination` (a port or VTEP going away). */
  flushDestination(destination: FdbDestination): number {
    return this.removeWhere((i) => this.dest[i] === destination);
  }

  /** Removes entries not seen for `agingMs`. Returns how many went. */
  age(now: number): number {
    return this.removeWhere((i) => now - this.seen[i] > this.agingMs);
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
