/**
 * npm run bench:aead: what sealing one datagram costs in the native addon (ChaCha20-
 * Poly1305 through the OpenSSL Node is built with), per call, at 64 and 1,400 bytes; the
 * cipher alone, for comparison, is `openssl speed -evp chacha20-poly1305 -bytes 1408`.
 */
import { native } from '../src/io/native.js';

const key = new Uint8Array(32).fill(7);
const buf = new Uint8Array(2048);
for (const size of [64, 1400]) {
  const n = 300_000;
  for (let i = 0; i < 10_000; i++) native.aeadSeal(key, i, buf, 0, size, buf, 0); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) native.aeadSeal(key, i, buf, 0, size, buf, 0);
  const ms = performance.now() - t0;
  console.log(`seal ${String(size).padStart(4)} bytes: ${((ms * 1000) / n).toFixed(2)} µs a datagram, ${((n * size * 8) / ms / 1e6).toFixed(2)} Gbit/s on one core`);
}
