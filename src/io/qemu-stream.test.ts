import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
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
  const port = QemuStreamPort.open(join(dir, 'vm.sock'), dir);
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

/** A socket file no one listens on, as an agent killed with its ports open leaves behind. */
function staleSocket(path: string): void {
  const r = spawnSync(process.execPath, ['-e', 'require("node:net").createServer().listen(process.argv[1], () => process.exit(0))', path]);
  assert.equal(r.status, 0, String(r.stderr));
  assert.ok(lstatSync(path).isSocket());
}

test('a QEMU socket outside the agent\'s directory is refused, and the file there is left alone', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-qs-'));
  try {
    const dir = join(root, 'qemu');
    const precious = join(root, 'precious.txt');
    writeFileSync(precious, 'keep me\n');
    mkdirSync(join(root, 'elsewhere'));
    symlinkSync(join(root, 'elsewhere'), join(root, 'qemu-link'));
    const outside = [
      precious,
      `${dir}/../precious.txt`,
      `${dir}//vm.sock`,
      join(root, 'qemu-link', 'vm.sock'),
    ];
    mkdirSync(dir, { mode: 0o700 });
    // A symlink inside the directory, leading out of it.
    symlinkSync(join(root, 'elsewhere'), join(dir, 'out'));
    outside.push(join(dir, 'out', 'vm.sock'));
    for (const path of outside) {
      assert.throws(() => QemuStreamPort.open(path, dir), (err: Error) => {
        assert.equal(err.message, `QEMU socket ${path} is not in ${dir}/, the directory this agent keeps QEMU sockets in (weft agent --qemu-socket-dir); nothing was touched`);
        return true;
      });
    }
    assert.equal(readFileSync(precious, 'utf8'), 'keep me\n', 'the canary file survives');
    assert.equal(spawnSync('ls', [join(root, 'elsewhere')], { encoding: 'utf8' }).stdout, '', 'nothing was bound through the symlinks');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('in its directory, a port replaces a stale socket but never a regular file or a live port\'s socket', async () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-qs-'));
  const dir = join(root, 'qemu');
  try {
    const made = QemuStreamPort.open(join(dir, 'first.sock'), dir);
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'the directory is made 0700');
    made.close();
    assert.ok(!existsSync(join(dir, 'first.sock')), 'close removes its own socket');

    const file = join(dir, 'vm.sock');
    writeFileSync(file, 'not a socket\n');
    assert.throws(() => QemuStreamPort.open(file, dir), new Error(`${file} is not a socket; the agent removes only stale sockets of its own, and left it alone`));
    assert.equal(readFileSync(file, 'utf8'), 'not a socket\n');
    rmSync(file);

    staleSocket(file);
    const port = QemuStreamPort.open(file, dir);
    try {
      // The stale socket was replaced by one this port listens on: a guest reaches it.
      const guest = connect(file);
      await until(() => port.connections === 1);
      guest.destroy();
      assert.throws(() => QemuStreamPort.open(file, dir), new Error(`QEMU socket ${file} is another port's already`));
      assert.ok(lstatSync(file).isSocket(), 'the live socket stays');
    } finally {
      port.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the socket directory must be the agent\'s own: not a symlink, not someone else\'s; ours is tightened to 0700', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-qs-'));
  try {
    const loose = join(root, 'loose');
    mkdirSync(loose);
    chmodSync(loose, 0o777);
    QemuStreamPort.open(join(loose, 'a.sock'), loose).close();
    assert.equal(statSync(loose).mode & 0o777, 0o700);

    mkdirSync(join(root, 'real'));
    symlinkSync(join(root, 'real'), join(root, 'link'));
    assert.throws(() => QemuStreamPort.open(join(root, 'link', 'a.sock'), join(root, 'link')), /is not a directory but a symlink; nothing was touched/);

    if (process.geteuid?.() === 0) {
      const theirs = join(root, 'theirs');
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, 65534, 65534);
      assert.throws(() => QemuStreamPort.open(join(theirs, 'a.sock'), theirs), /belongs to user 65534, not to this agent's \(0\); nothing was touched/);
      assert.deepEqual(spawnSync('ls', [theirs], { encoding: 'utf8' }).stdout, '');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
