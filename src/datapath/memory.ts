/**
 * In-memory ports and underlay, so that several hosts' data paths can run in one process
 * (unit tests, the control-plane benchmark). A MemoryFabric joins the underlays of many
 * hosts like a switch joins their NICs, and runs every backend with waiting input until
 * the whole system is idle: deterministic, and without a single sleep.
 *
 * These copy every frame (they are test doubles, not the fast path).
 */
import type { PortBackend, UnderlayBackend } from './backend.js';

interface Runnable {
  hasInput(): boolean;
  poke(): void;
}

export class MemoryFabric {
  private readonly underlays = new Map<string, MemoryUnderlay>();
  private readonly backends: Runnable[] = [];
  /** Datagrams sent to an address no underlay has. */
  lost = 0;
  /** Datagrams delivered since the current run began: a forwarding loop shows here. */
  private delivered = 0;
  private maxDeliveries = Number.POSITIVE_INFINITY;

  port(description = 'memory'): MemoryPort {
    const p = new MemoryPort(description);
    this.backends.push(p);
    return p;
  }

  underlay(address: number, port: number): MemoryUnderlay {
    const u = new MemoryUnderlay(this, address, port);
    this.underlays.set(`${address}:${port}`, u);
    this.backends.push(u);
    return u;
  }

  /** Removes an underlay (a host going down): what is sent to it is lost. */
  detach(u: MemoryUnderlay): void {
    this.underlays.delete(`${u.address}:${u.port}`);
  }

  deliver(toAddress: number, toPort: number, data: Uint8Array, fromAddress: number, fromPort: number): void {
    if (++this.delivered > this.maxDeliveries) {
      throw new Error(`more than ${this.maxDeliveries} datagrams in one run: a forwarding loop?`);
    }
    const u = this.underlays.get(`${toAddress}:${toPort}`);
    if (!u) {
      this.lost++;
      return;
    }
    u.inbox.push({ data, fromAddress, fromPort });
  }

  /** Calls each backend that has input once; returns how many had any. */
  step(): number {
    const busy = this.backends.filter((b) => b.hasInput());
    for (const b of busy) b.poke();
    return busy.length;
  }

  /** Lets every backend with input read it, again and again, until none has any.
   * Returns the number of rounds; throws if the system does not settle. */
  run(maxRounds = 10_000, maxDeliveries = 1_000_000): number {
    this.delivered = 0;
    this.maxDeliveries = maxDeliveries;
    try {
      for (let round = 0; round < maxRounds; round++) {
        if (this.step() === 0) return round;
      }
    } finally {
      this.maxDeliveries = Number.POSITIVE_INFINITY;
    }
    throw new Error(`the in-memory network did not settle in ${maxRounds} rounds (a forwarding loop?)`);
  }
}

export class MemoryPort implements PortBackend {
  /** Frames waiting to be read by the data path (what the VM sent). */
  readonly inbox: Uint8Array[] = [];
  /** Frames the data path wrote (what the VM received). */
  readonly received: Uint8Array[] = [];
  /** How many frames one writeBatch accepts (lower it to make the port look busy). */
  acceptPerBatch = Number.POSITIVE_INFINITY;
  closed = false;
  private onReadable: (() => void) | null = null;

  constructor(readonly description: string) {}

  /** The VM sends a frame. */
  send(frame: Uint8Array): void {
    this.inbox.push(frame.slice());
  }

  /** Takes what the VM received so far. */
  take(): Uint8Array[] {
    return this.received.splice(0);
  }

  hasInput(): boolean {
    return this.inbox.length > 0 && this.onReadable !== null && !this.closed;
  }

  poke(): void {
    this.onReadable?.();
  }

  readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number {
    let n = 0;
    while (n < max && this.inbox.length > 0) {
      const f = this.inbox.shift()!;
      const len = Math.min(f.length, capacity);
      mem.set(f.subarray(0, len), base + n * stride);
      lengths[n++] = len;
    }
    return n;
  }

  writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number {
    const n = Math.min(count, this.acceptPerBatch);
    for (let i = 0; i < n; i++) this.received.push(mem.slice(offsets[i], offsets[i] + lengths[i]));
    return n;
  }

  start(onReadable: () => void): void {
    this.onReadable = onReadable;
  }

  close(): void {
    this.closed = true;
    this.onReadable = null;
  }
}

export class MemoryUnderlay implements UnderlayBackend {
  readonly inbox: Array<{ data: Uint8Array; fromAddress: number; fromPort: number }> = [];
  readonly description: string;
  private onReadable: (() => void) | null = null;

  constructor(
    private readonly fabric: MemoryFabric,
    readonly address: number,
    readonly port: number,
  ) {
    this.description = `memory underlay ${address}:${port}`;
  }

  /** Something else on the underlay sends this host a datagram (bad input, say). */
  inject(data: Uint8Array, fromAddress: number, fromPort: number): void {
    this.inbox.push({ data: data.slice(), fromAddress, fromPort });
  }

  hasInput(): boolean {
    return this.inbox.length > 0 && this.onReadable !== null;
  }

  poke(): void {
    this.onReadable?.();
  }

  recvBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number,
    lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array): number {
    let n = 0;
    while (n < max && this.inbox.length > 0) {
      const d = this.inbox.shift()!;
      if (d.data.length > capacity) {
        lengths[n] = -1;
      } else {
        mem.set(d.data, base + n * stride);
        lengths[n] = d.data.length;
      }
      addrs[n] = d.fromAddress;
      ports[n] = d.fromPort;
      n++;
    }
    return n;
  }

  sendBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array, count: number): number {
    for (let i = 0; i < count; i++) {
      this.fabric.deliver(addrs[i], ports[i], mem.slice(offsets[i], offsets[i] + lengths[i]), this.address, this.port);
    }
    return count;
  }

  start(onReadable: () => void): void {
    this.onReadable = onReadable;
  }

  close(): void {
    this.onReadable = null;
    this.fabric.detach(this);
  }
}
