/**
 * A port backed by a Linux TAP device. The fd is non-blocking and watched on libuv's event
 * loop; frames are read and written in batches by the native addon, never on the thread
 * pool. A TAP may live in another network namespace (the lab's VMs, a container): the addon
 * enters that namespace only for the open, and the fd works from ours afterwards.
 *
 * Offloads (on unless asked not to): the TAP is opened with the virtio-net header and tells
 * the kernel Weft takes TCP super-frames of up to 64 KiB and checksums left unfinished, as a
 * NIC would. The VM's stack then crosses into Weft once per 64 KiB instead of once per
 * segment. The addon cuts a super-frame into segments the overlay carries as it reads it,
 * and joins a flow's segments back into super-frames as it writes them, so the data path
 * between never sees anything but ordinary frames.
 */
import { existsSync } from 'node:fs';
import type { KernelCounters } from '../datapath/backend.js';
import { FdPort, netnsPath } from './fd-port.js';
import { IoError, native, RAW_CAPACITY, TAP_READ_STATE } from './native.js';
import { parseMac, writeMac } from '../wire/bytes.js';

export class TapPort extends FdPort {
  /** With offload: where a super-frame is read (and kept while its segments wait for
   * slots), and where a super-frame for the VM is joined. */
  private readonly raw: Uint8Array | null;
  private readonly join: Uint8Array | null;
  private readonly readState = new Int32Array(TAP_READ_STATE);

  private constructor(fd: number, device: string, netns: string | null, readonly offload: boolean) {
    super(fd, device, netns, 'tap');
    this.raw = offload ? new Uint8Array(RAW_CAPACITY) : null;
    this.join = offload ? new Uint8Array(RAW_CAPACITY) : null;
  }

  /**
   * Attaches to the TAP device `device` (made by `ip tuntap add ... mode tap`, or by a
   * hypervisor), creating it when it does not exist. With `netns`, the device is looked up
   * (or made) in that network namespace. `offload: false` keeps to one frame at a time
   * (the kernel finishes every checksum and cuts every segment before Weft sees it).
   *
   * With `mac`, the device is given that MAC when it has another. The kernel side of a TAP
   * is the VM's NIC (moved into the VM's namespace or a container, it is what sends), so it
   * must send as the port's MAC, or port security drops everything it sends. The MAC is set
   * through the TAP's own fd, which reaches the device wherever it is moved afterwards; and
   * it stays when the device moves. Throws when the kernel refuses it (the fd is closed).
   */
  static open(device: string, netns?: string, options: { offload?: boolean; mac?: string } = {}): TapPort {
    const ns = netns ? netnsPath(netns) : null;
    if (ns && !existsSync(ns)) throw new Error(`network namespace ${netns} does not exist (${ns})`);
    const { fd, name, offload, mac } = native.tapOpen(device, ns, options.offload ?? true);
    const port = new TapPort(fd, name, netns ?? null, offload);
    if (options.mac !== undefined && options.mac !== mac) {
      const bytes = new Uint8Array(6);
      writeMac(bytes, 0, parseMac(options.mac));
      try {
        native.tapSetMac(fd, bytes);
      } catch (err) {
        port.close();
        throw new Error(`TAP ${name}: cannot give it the port's MAC ${options.mac}: ${(err as Error).message}`);
      }
    }
    return port;
  }

  readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number {
    const n = this.raw === null
      ? native.readFrames(this.fd, mem, base, stride, capacity, max, lengths)
      : native.tapRead(this.fd, mem, base, stride, capacity, max, lengths, this.raw, this.readState);
    if (n < 0) throw new IoError(`reading ${this.description}`, -n);
    // Segments of a super-frame left for want of slots: read on, though the fd is quiet.
    if (this.readState[0] > 0) this.watched.kick();
    return n;
  }

  writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number {
    return this.join === null
      ? native.writeFrames(this.fd, mem, offsets, lengths, count)
      : native.tapWrite(this.fd, mem, offsets, lengths, count, this.join);
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
