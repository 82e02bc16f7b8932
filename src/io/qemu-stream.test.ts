import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuStreamPort } from './qemu-stream.js';

async function until(f: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 5000; !f();) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

const framed = (...frames: Uint8Array[]) => Buffer.concat(frames.flatMap((f) => {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length);
  return [h, Buffer.from(f)];
}));

test('a guest that breaks the framing is dropped and counted; the next guest is served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-qs-'));
  const port = QemuStreamPort.open(join(dir, 'vm.sock'));
  try {
    assert.equal(statSync(join(dir, 'vm.sock')).mode & 0o777, 0o600);
    let readable = 0;
    port.start(() => readable++);
    const mem = new Uint8Array(4 * 2048);
    const lens = new Int32Array(4);
    // Before any guest: nothing to read, and writes are refused as not connected.
    assert.equal(port.readBatch(mem, 0, 2048, 2000, 4, lens), 0);
    const l = Int32Array.of(60);
    assert.equal(port.writeBatch(mem, Int32Array.of(0), l, 1), 1);
    assert.equal(l[0], -107, 'ENOTCONN');

    const bad: Socket = connect(join(dir, 'vm.sock'));
    await until(() => port.connections === 1);
    bad.write(framed(new Uint8Array(60).fill(1)));
    const zero = Buffer.alloc(4);
    bad.write(zero); // a zero length: not a frame
    await until(() => readable > 0);
    assert.equal(port.readBatch(mem, 0, 2048, 2000, 4, lens), 1, 'the good frame before the error is read');
    assert.equal(port.readBatch(mem, 0, 2048, 2000, 4, lens), 0);
    assert.equal(port.protocolErrors, 1);
    await until(() => bad.destroyed || bad.readyState === 'closed');

    const good: Socket = connect(join(dir, 'vm.sock'));
    await until(() => port.connections === 2 && port.description.includes('guest connected'));
    const got: Buffer[] = [];
    good.on('data', (d) => got.push(d));
    mem.fill(7, 100, 160);
    assert.equal(port.writeBatch(mem, Int32Array.of(100), Int32Array.of(60), 1), 1);
    await until(() => Buffer.concat(got).length >= 64);
    assert.deepEqual(Buffer.concat(got), framed(new Uint8Array(60).fill(7)));
    // Larger than a slot: refused as a protocol error too.
    good.write(framed(new Uint8Array(3000)));
    await until(() => readable > 1 || port.protocolErrors > 1);
    port.readBatch(mem, 0, 2048, 2000, 4, lens);
    assert.equal(port.protocolErrors, 2);
    good.destroy();
  } finally {
    port.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
