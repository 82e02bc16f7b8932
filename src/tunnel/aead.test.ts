import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { native, type Native } from '../io/native.js';

/** node:crypto's ChaCha20-Poly1305 with the tunnels' nonce: the reference. (A function
 * declaration on its own: the worker test sends its text to the workers.) */
function referenceSeal(key: Buffer, counter: number, plain: Buffer): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(BigInt(counter), 4);
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}
const reference = referenceSeal;

test('the addon seals as node:crypto does and opens what it sealed, in place and across buffers', () => {
  const key = randomBytes(32);
  for (const [counter, len] of [[0, 0], [1, 1], [2 ** 32 + 5, 64], [2 ** 52, 1500], [7, 9000]] as const) {
    const plain = randomBytes(len);
    const buf = new Uint8Array(len + 64);
    buf.set(plain, 8);
    assert.equal(native.aeadSeal(key, counter, buf, 8, len, buf, 8), len + 16);
    assert.deepEqual(Buffer.from(buf.subarray(8, 8 + len + 16)), reference(key, counter, plain), `counter ${counter}, ${len} bytes`);
    const out = new Uint8Array(len + 1);
    assert.equal(native.aeadOpen(key, counter, buf, 8, len + 16, out, 1), len);
    assert.deepEqual(Buffer.from(out.subarray(1)), plain);
    assert.equal(native.aeadOpen(key, counter, buf, 8, len + 16, buf, 8), len, 'in place');
    assert.deepEqual(Buffer.from(buf.subarray(8, 8 + len)), plain);
  }
});

test('the addon refuses a datagram with a flipped bit, the wrong counter or the wrong key', () => {
  const key = randomBytes(32);
  const sealed = new Uint8Array(100 + 16);
  native.aeadSeal(key, 42, randomBytes(100), 0, 100, sealed, 0);
  const out = new Uint8Array(200);
  for (const at of [0, 50, 99, 100, 115]) {
    const bad = Uint8Array.from(sealed);
    bad[at] ^= 1;
    assert.equal(native.aeadOpen(key, 42, bad, 0, bad.length, out, 0), -1, `bit flipped at ${at}`);
  }
  assert.equal(native.aeadOpen(key, 43, sealed, 0, sealed.length, out, 0), -1);
  assert.equal(native.aeadOpen(randomBytes(32), 42, sealed, 0, sealed.length, out, 0), -1);
  assert.equal(native.aeadOpen(key, 42, sealed, 0, sealed.length, out, 0), 100);
});

test('the addon checks its arguments instead of reading or writing out of bounds', () => {
  const key = randomBytes(32);
  const buf = new Uint8Array(64);
  assert.throws(() => native.aeadSeal(key, 0, buf, 0, 64, buf, 0), /bad arguments/, 'no room for the tag');
  assert.throws(() => native.aeadSeal(key.subarray(0, 16), 0, buf, 0, 8, buf, 0), /bad arguments/, 'a short key');
  assert.throws(() => native.aeadSeal(key, -1, buf, 0, 8, buf, 0), /bad arguments/, 'a negative counter');
  assert.throws(() => native.aeadOpen(key, 0, buf, 0, 8, buf, 0), /bad arguments/, 'shorter than a tag');
  assert.throws(() => native.aeadOpen(key, 0, buf, 60, 16, buf, 0), /bad arguments/, 'past the end');
});

test('each thread that loads the addon seals with contexts of its own: three threads at once, every datagram as node:crypto makes it', async () => {
  // The same work in two workers and here, started together: with one process-wide context
  // the threads would interleave key setups and seal with each other's keys.
  const work = (rounds: number, reference: typeof referenceSeal, seal: Native['aeadSeal'], open: Native['aeadOpen']): number => {
    let wrong = 0;
    const key = randomBytes(32);
    for (let i = 0; i < rounds; i++) {
      const plain = randomBytes(1 + (i % 1400));
      const out = new Uint8Array(plain.length + 16);
      seal(key, i, plain, 0, plain.length, out, 0);
      if (!Buffer.from(out).equals(reference(key, i, plain))) wrong++;
      else if (open(key, i, out, 0, out.length, out, 0) !== plain.length || !Buffer.from(out.subarray(0, plain.length)).equals(plain)) wrong++;
    }
    return wrong;
  };
  const start = new Int32Array(new SharedArrayBuffer(4));
  const nativeUrl = new URL('../io/native.js', import.meta.url).href;
  const code = `
    import { workerData, parentPort } from 'node:worker_threads';
    import { createCipheriv, randomBytes } from 'node:crypto';
    import { native } from ${JSON.stringify(nativeUrl)};
    const referenceSeal = ${referenceSeal.toString()};
    const work = ${work.toString()};
    parentPort.postMessage('ready');
    Atomics.wait(workerData.start, 0, 0);
    parentPort.postMessage(work(workerData.rounds, referenceSeal, native.aeadSeal, native.aeadOpen));`;
  const ROUNDS = 20_000;
  const workers = [0, 1].map(() => new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: { start, rounds: ROUNDS } }));
  try {
    const results = workers.map((w) => new Promise<number>((resolve, reject) => {
      w.on('message', (m) => { if (m !== 'ready') resolve(m as number); });
      w.on('error', reject);
    }));
    await Promise.all(workers.map((w) => once(w, 'message')));
    Atomics.store(start, 0, 1);
    Atomics.notify(start, 0);
    const here = work(ROUNDS, referenceSeal, native.aeadSeal.bind(native), native.aeadOpen.bind(native));
    assert.deepEqual([here, ...(await Promise.all(results))], [0, 0, 0], 'datagrams sealed or opened wrong, per thread');
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  // The workers' contexts went with them; this thread's are still there.
  assert.equal(work(10, referenceSeal, native.aeadSeal.bind(native), native.aeadOpen.bind(native)), 0);
});
