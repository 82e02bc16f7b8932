/**
 * A port backed by a Linux TAP device. The fd is non-blocking and watched on libuv's event
 * loop; frames are read and written in batches by the native addon, never on the thread
 * pool. A TAP may live in another network namespace (the lab's VMs, a container): the addon
 * enters that namespace only for the open, and the fd works from ours afterwards.
 */
import { existsSync } from 'node:fs';
import type { KernelCounters } from '../datapath/backend.js';
import { FdPort, netnsPath } from './fd-port.js';
import { IoError, native } from './native.js';

export class TapPort extends FdPort {
  private constructor(fd: number, device: string, netns: string | null) {
    super(fd, device, netns, 'tap');
  }

  /**
   * Attaches to the TAP device `device` (made by `ip tuntap add ... mode tap`, or by a
   * hypervisor), creating it when it does not exist. With `netns`, the device is looked up
   * (or made) in that network namespace.
   */
  static open(device: string, netns?: string): TapPort {
    const ns = netns ? netnsPath(netns) : null;
    if (ns && !existsSync(ns)) throw new Error(`network namespace ${netns} does not exist (${ns})`);
    const { fd, name } = native.tapOpen(device, ns);
    return new TapPort(fd, name, netns ?? null);
  }

  readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number {
    const n = native.readFrames(this.fd, mem, base, stride, capacity, max, lengths);
    if (n < 0) throw new IoError(`reading ${this.description}`, -n);
    return n;
  }

  writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number {
    return native.writeFrames(this.fd, mem, offsets, lengths, count);
  }

  /**
   * The TAP device's own counters. The kernel "transmits" what the VM sends towards our fd,
   * so its tx_dropped is what was lost before Weft read it (its queue was full), and its
   * rx_dropped what Weft wrote that the VM's side did not take.
   */
  kernelCounters(): KernelCounters | null {
    const s = this.linkStats();
    return s && { rxDropped: s.txDropped, txDropped: s.rxDropped };
  }
}
