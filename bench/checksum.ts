/**
 * npm run bench:checksum: why the offloads' checksums are summed in the native addon. The
 * Internet checksum over a segment's payload (1,400 bytes) and a super-frame's (64 KiB) in
 * JavaScript (src/wire/checksum.ts, 16 bits at a time), in the addon alone, and in the
 * addon while the bytes are copied (what cutting and joining segments does), next to a
 * plain copy (Uint8Array.set): the last two should be within a little of each other.
 */
import { native } from '../src/io/native.js';
import { sumBytes } from '../src/wire/checksum.js';

const src = Uint8Array.from({ length: 65536 }, (_, i) => (i * 31) & 255);
const dst = new Uint8Array(65536);

function time(what: string, size: number, run: () => void): void {
  const n = Math.max(2000, Math.floor(400_000_000 / size / 20));
  for (let i = 0; i < n / 10; i++) run(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run();
  const ns = ((performance.now() - t0) * 1e6) / n;
  console.log(`${what.padEnd(34)} ${String(size).padStart(5)} bytes: ${ns.toFixed(0).padStart(6)} ns, ${(size / ns).toFixed(2)} GB/s`);
}

for (const size of [1400, 65536]) {
  const part = src.subarray(0, size);
  time('copy (Uint8Array.set)', size, () => dst.set(part));
  time('sum in JavaScript', size, () => sumBytes(src, 0, size));
  time('sum in the addon', size, () => native.checksum(src, 0, size, null, 0));
  time('copy and sum in one pass (addon)', size, () => native.checksum(src, 0, size, dst, 0));
}
