/**
 * The replay window of one session's receive side (RFC 6479's bitmap, as WireGuard keeps it):
 * a counter is accepted once, and only if it is newer than the greatest seen less the
 * window. Datagrams may arrive out of order by up to WINDOW - 32 counters.
 */

/** Bits in the bitmap (a power of two). At least WireGuard's 2,048 usable: 8,192 - 32. */
const BITS = 8192;
const WORDS = BITS / 32;
export const REPLAY_WINDOW = BITS - 32;

export class ReplayWindow {
  private readonly bitmap = new Uint32Array(WORDS);
  /** The greatest counter accepted so far; -1 before the first. */
  private greatest = -1;

  /** Whether `counter` could still be accepted: not seen, not too old. Changes nothing, so
   * a forged datagram (checked before its tag is) cannot move the window. */
  fresh(counter: number): boolean {
    if (counter > this.greatest) return true;
    if (counter + REPLAY_WINDOW <= this.greatest) return false;
    const bit = counter % BITS;
    return (this.bitmap[bit >>> 5] & (1 << (bit & 31))) === 0;
  }

  /** Marks `counter` seen (after its datagram authenticated); false if it was already. */
  accept(counter: number): boolean {
    if (!this.fresh(counter)) return false;
    if (counter > this.greatest) {
      // Clear the words between the old greatest and the new one: they describe counters
      // that are now new.
      const from = Math.floor(this.greatest / 32) + 1;
      const to = Math.floor(counter / 32);
      const clear = Math.min(to - from + 1, WORDS);
      for (let i = 0; i < clear; i++) this.bitmap[(from + i) % WORDS] = 0;
      this.greatest = counter;
    }
    const bit = counter % BITS;
    this.bitmap[bit >>> 5] |= 1 << (bit & 31);
    return true;
  }
}
