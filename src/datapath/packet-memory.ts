/**
 * The data path's packet memory: one Uint8Array cut into equal slots. Receive rings and the
 * scratch area are runs of slots in it; transmit queues hold only offsets into it. Because
 * everything lives in one buffer, moving bytes inside it is `copyWithin` (a memmove, no
 * allocation), and a backend needs only one buffer per batch call.
 */

export class PacketMemory {
  readonly bytes: Uint8Array;
  /** Free runs of slots as [first, count], sorted by first. */
  private free: Array<[number, number]>;

  constructor(
    readonly slotSize: number,
    readonly slotCount: number,
  ) {
    this.bytes = new Uint8Array(slotSize * slotCount);
    this.free = [[0, slotCount]];
  }

  /** Byte offset of a slot. */
  offsetOf(slot: number): number {
    return slot * this.slotSize;
  }

  /** Takes `count` contiguous slots; returns the first, or -1 when no run is long enough. */
  alloc(count: number): number {
    for (let i = 0; i < this.free.length; i++) {
      const [first, n] = this.free[i];
      if (n < count) continue;
      if (n === count) this.free.splice(i, 1);
      else this.free[i] = [first + count, n - count];
      return first;
    }
    return -1;
  }

  release(first: number, count: number): void {
    this.free.push([first, count]);
    this.free.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const run of this.free) {
      const last = merged[merged.length - 1];
      if (last !== undefined && last[0] + last[1] === run[0]) last[1] += run[1];
      else merged.push([run[0], run[1]]);
    }
    this.free = merged;
  }

  get freeSlots(): number {
    return this.free.reduce((n, [, c]) => n + c, 0);
  }
}
