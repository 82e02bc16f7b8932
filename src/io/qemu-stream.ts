/**
 * A port backed by a QEMU guest's NIC over a unix stream socket: the agent listens, and
 *
 *   qemu-system-x86_64 -netdev stream,id=n0,server=off,addr.type=unix,addr.path=PATH \
 *                      -device virtio-net-pci,netdev=n0,mac=MAC
 *
 * connects. Each frame crosses the socket behind a four-byte big-endian length (QEMU's
 * net/stream.c, the same framing as -netdev socket). One guest at a time: a new connection
 * replaces the old one (a QEMU killed and started again, a guest rebooted with a new
 * process), so the port survives both.
 *
 * Bytes arrive on Node's event loop into a fixed receive ring; `readBatch` cuts frames out
 * of it into the data path's slots, allocating nothing per frame. A length of 0 or larger
 * than a slot is a protocol error: the connection is dropped (counted) and the next one
 * accepted. While no guest is connected, writes are refused with ENOTCONN (the data path
 * counts them as tx-error); while the guest reads too slowly, with EAGAIN (tx-busy).
 *
 * The agent runs as root, so where it listens is confined: a socket lives directly in the
 * agent's QEMU socket directory (made 0700, owned by the agent), and the only file the port
 * ever removes is a socket there that no port of this process listens on (a stale one from
 * an agent that was killed). A path elsewhere, or a file there that is not a socket, is
 * refused with a sentence and nothing is touched.
 */
import { chmodSync, lstatSync, mkdirSync, realpathSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, dirname } from 'node:path';
import type { PortBackend } from '../datapath/backend.js';
import { qemuSocketOutside, socketDirText } from '../config/qemu-socket.js';

/** Implementation limits (ours). */
const RING_BYTES = 4 * 1024 * 1024;
/** Stop reading the socket when the ring has less free than this (backpressure). */
const RING_LOW_WATER = 256 * 1024;
/** Refuse writes while this much is queued towards a slow guest. */
const WRITE_QUEUE_BYTES = 4 * 1024 * 1024;
const ENOTCONN = 107;

/** Sockets the ports of this process listen on: never taken over by another port. */
const listening = new Set<string>();

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/**
 * Makes the agent's QEMU socket directory if missing (0700) and checks that it is the
 * agent's own: a directory, not a symlink, owned by this process's user, that no one else
 * may write (one of ours that others may read is tightened to 0700). Returns its real path.
 */
export function ownSocketDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} (the QEMU socket directory) is not a directory${st.isSymbolicLink() ? ' but a symlink' : ''}; nothing was touched`);
  const uid = process.geteuid?.() ?? st.uid;
  if (st.uid !== uid) throw new Error(`${dir} (the QEMU socket directory) belongs to user ${st.uid}, not to this agent's (${uid}); nothing was touched`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return realpathSync(dir);
}

/**
 * Where a port may listen: `path`, when it lies directly in `dir` (after following every
 * symlink of its directory) and holds nothing but, at most, a stale socket, which is
 * removed. Throws a sentence otherwise, having changed nothing.
 */
function claimSocketPath(path: string, dir: string): void {
  const textual = qemuSocketOutside(path, dir);
  const real = ownSocketDir(dir);
  let parent: string | null = null;
  try {
    parent = realpathSync(dirname(path));
  } catch (err) {
    if (errno(err) !== 'ENOENT' && errno(err) !== 'ENOTDIR') throw err;
  }
  if (textual !== null || parent !== real || basename(path) === '') {
    throw new Error(`QEMU socket ${path} is not in ${socketDirText(dir)}/, the directory this agent keeps QEMU sockets in (weft agent --qemu-socket-dir); nothing was touched`);
  }
  if (listening.has(path)) throw new Error(`QEMU socket ${path} is another port's already`);
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${path} is not a socket; the agent removes only stale sockets of its own, and left it alone`);
  unlinkSync(path);
}

export class QemuStreamPort implements PortBackend {
  private readonly ring = Buffer.alloc(RING_BYTES);
  private head = 0;
  private tail = 0;
  private client: Socket | null = null;
  private onReadable: (() => void) | null = null;
  private scheduled = false;
  /** Connections dropped for a broken length prefix. */
  protocolErrors = 0;
  /** Guests that connected (a reconnect after a reboot or a restart counts again). */
  connections = 0;

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {
    server.on('connection', (s) => this.accept(s));
  }

  /** The socket file as bound (device and inode): close removes that file and no other. */
  private bound: { dev: number; ino: number } | null = null;

  /** A listening failure (reported by the server after open returned): reads then throw,
   * and the data path marks the port failed. */
  private failure: Error | null = null;

  /**
   * Listens on `path` (mode 0600), which must lie directly in `dir`, the agent's QEMU
   * socket directory (made 0700 if missing), replacing a stale socket file there. Throws,
   * having touched nothing, for a path elsewhere or a file there that is not a socket.
   * Node binds a unix socket synchronously, so the file exists when this returns; a later
   * server error makes the next read throw.
   */
  static open(path: string, dir: string): QemuStreamPort {
    claimSocketPath(path, dir);
    const server = createServer();
    const port = new QemuStreamPort(server, path);
    server.on('error', (err) => (port.failure = err));
    server.listen(path);
    listening.add(path);
    try {
      const st = lstatSync(path);
      if (st.isSocket()) port.bound = { dev: st.dev, ino: st.ino };
      chmodSync(path, 0o600);
    } catch (err) {
      port.close();
      throw err;
    }
    return port;
  }

  get description(): string {
    return `qemu stream ${this.path} (${this.client ? 'guest connected' : 'no guest'})`;
  }

  private accept(s: Socket): void {
    this.client?.destroy();
    this.client = s;
    this.head = this.tail = 0;
    this.connections++;
    s.on('data', (chunk: Buffer) => this.received(s, chunk));
    s.on('error', () => {});
    s.on('close', () => {
      if (this.client === s) this.client = null;
    });
  }

  private received(s: Socket, chunk: Buffer): void {
    if (s !== this.client) return;
    if (this.tail + chunk.length > RING_BYTES) this.compact();
    if (this.tail + chunk.length > RING_BYTES) {
      // Cannot happen while backpressure works; a guest that overruns it is dropped.
      this.protocolError();
      return;
    }
    chunk.copy(this.ring, this.tail);
    this.tail += chunk.length;
    if (RING_BYTES - (this.tail - this.head) < RING_LOW_WATER) s.pause();
    this.wake();
  }

  /** Moves what is unread to the front of the ring. */
  private compact(): void {
    if (this.head === 0) return;
    this.ring.copy(this.ring, 0, this.head, this.tail);
    this.tail -= this.head;
    this.head = 0;
  }

  private protocolError(): void {
    this.protocolErrors++;
    this.client?.destroy();
    this.client = null;
    this.head = this.tail = 0;
  }

  /** Calls onReadable once per event-loop turn while a whole frame waits. */
  private wake(): void {
    if (this.scheduled || this.onReadable === null || this.tail - this.head < 4) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.onReadable?.();
    });
  }

  readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number {
    if (this.failure) throw new Error(`listening on ${this.path}: ${this.failure.message}`);
    let n = 0;
    while (n < max && this.tail - this.head >= 4) {
      const len = this.ring.readUInt32BE(this.head);
      if (len === 0 || len > capacity) {
        this.protocolError();
        break;
      }
      if (this.tail - this.head < 4 + len) break;
      mem.set(this.ring.subarray(this.head + 4, this.head + 4 + len), base + n * stride);
      lengths[n++] = len;
      this.head += 4 + len;
    }
    if (this.head === this.tail) this.head = this.tail = 0;
    if (this.client?.isPaused() && RING_BYTES - (this.tail - this.head) >= RING_LOW_WATER) this.client.resume();
    // More may wait than one batch took: come back on the next turn.
    if (this.tail - this.head >= 4) this.wake();
    return n;
  }

  writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number {
    const c = this.client;
    if (c === null) {
      for (let i = 0; i < count; i++) lengths[i] = -ENOTCONN;
      return count;
    }
    if (c.writableLength > WRITE_QUEUE_BYTES) return 0;
    let total = 0;
    for (let i = 0; i < count; i++) total += 4 + lengths[i];
    // One buffer per batch: the frames, each behind its length.
    const out = Buffer.allocUnsafe(total);
    let o = 0;
    for (let i = 0; i < count; i++) {
      out.writeUInt32BE(lengths[i], o);
      out.set(mem.subarray(offsets[i], offsets[i] + lengths[i]), o + 4);
      o += 4 + lengths[i];
    }
    c.write(out);
    return count;
  }

  start(onReadable: () => void): void {
    this.onReadable = onReadable;
    this.wake();
  }

  close(): void {
    this.onReadable = null;
    this.client?.destroy();
    this.client = null;
    this.server.close();
    if (listening.has(this.path)) listening.delete(this.path);
    else return;
    // Only the socket this port bound: not whatever may have replaced it since.
    try {
      const st = lstatSync(this.path);
      if (st.isSocket() && this.bound && st.dev === this.bound.dev && st.ino === this.bound.ino) unlinkSync(this.path);
    } catch {
      // gone already
    }
  }
}
