/**
 * What the ports on a device's fd share (a TAP, a host interface): the fd watched on the
 * event loop and closed once, a description naming the device and its namespace, and the
 * device's own kernel counters.
 */
import type { KernelCounters, PortBackend } from '../datapath/backend.js';
import { native, type LinkStats } from './native.js';
import { WatchedFd } from './watched-fd.js';

/** Where `ip netns add NAME` puts a namespace. */
export function netnsPath(nameOrPath: string): string {
  return nameOrPath.includes('/') ? nameOrPath : `/run/netns/${nameOrPath}`;
}

export abstract class FdPort implements PortBackend {
  readonly description: string;
  protected readonly watched: WatchedFd;

  protected constructor(
    protected readonly fd: number,
    readonly device: string,
    readonly netns: string | null,
    kind: string,
  ) {
    this.description = netns ? `${kind} ${device} in netns ${netns}` : `${kind} ${device}`;
    this.watched = new WatchedFd(fd);
  }

  abstract readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number;
  abstract writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  abstract kernelCounters(): KernelCounters | null;

  /** A poll error (the device is gone) also calls back: the next read throws, and the data
   * path marks the port failed and closes it. */
  start(onReadable: () => void): void {
    this.watched.start(onReadable);
  }

  close(): void {
    this.watched.close();
  }

  /** The device's counters, read in its namespace (null when it cannot be read). */
  protected linkStats(): LinkStats | null {
    try {
      return native.linkStats(this.device, this.netns ? netnsPath(this.netns) : null);
    } catch {
      return null;
    }
  }
}
