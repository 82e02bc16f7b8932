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
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { PortBackend } from '../datapath/backend.js';

/** Implementation limits (ours). */
const RING_BYTES = 4 * 1024 * 1024;
/** Stop reading the socket when the ring has less free than this (backpressure). */
const RING_LOW_WATER = 256 * 1024;
/** Refuse writes while this much is queued towards a slow guest. */
const WRITE_QUEUE_BYTES = 4 * 1024 * 1024;
const ENOTCONN = 107;

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

  /** A listening failure (reported by the server after open returned): reads then throw,
   * and the data path marks the port failed. */
  private failure: Error | null = null;

  /**
   * Listens on `path` (mode 0600), replacing a stale socket file. Node binds a unix socket
   * synchronously, so the file exists when this returns; a later server error makes the
   * next read throw.
   */
  static open(path: string): QemuStreamPort {
    rmSync(path, { force: true });
    const server = createServer();
    const port = new QemuStreamPort(server, path);
    server.on('error', (err) => (port.failure = err));
    server.listen(path);
    chmodSync(path, 0o600);
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
    rmSync(this.path, { force: true });
  }
}
