/**
 * A host interface as a port: the uplink of provider networks. Frames go out and come in on
 * the interface as they are, through a raw packet socket (AF_PACKET), in batches like a TAP:
 * a VLAN network's frames carry its 802.1Q tag, a flat network's none, so the data path
 * treats the uplink as a trunk port whose native network is the flat one.
 *
 * The kernel hands a packet socket each received frame without its tag (reporting it
 * beside); the addon puts the tag back, so the data path sees the wire. The socket does not
 * see what it sent itself, and holds the interface in promiscuous mode while open. A frame
 * from this host's own stack whose checksum was left for a NIC is finished by the addon.
 * A run of one TCP flow's segments goes out as one super-frame with the virtio-net header
 * (as from a TAP to a VM): the NIC, or the kernel for one that cannot, cuts it again.
 */
import { existsSync } from 'node:fs';
import type { KernelCounters } from '../datapath/backend.js';
import { FdPort, netnsPath } from './fd-port.js';
import { IoError, native, RAW_CAPACITY } from './native.js';

export class PacketPort extends FdPort {
  /** Where a run of one TCP flow's segments is joined to go out as one super-frame. */
  private readonly join = new Uint8Array(RAW_CAPACITY);

  private constructor(fd: number, device: string, netns: string | null) {
    super(fd, device, netns, 'interface');
  }

  /** Opens interface `device` (which must exist), in network namespace `netns` if given. */
  static open(device: string, netns?: string): PacketPort {
    const ns = netns ? netnsPath(netns) : null;
    if (ns && !existsSync(ns)) throw new Error(`network namespace ${netns} does not exist (${ns})`);
    try {
      return new PacketPort(native.packetOpen(device, ns), device, netns ?? null);
    } catch (err) {
      throw new Error(`cannot use interface ${device} as an uplink: ${(err as Error).message}`);
    }
  }

  readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number {
    const n = native.packetRecv(this.fd, mem, base, stride, capacity, max, lengths);
    if (n < 0) throw new IoError(`reading ${this.description}`, -n);
    return n;
  }

  writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number {
    return native.packetSend(this.fd, mem, offsets, lengths, count, this.join);
  }

  /** The interface's own drop counters (a physical NIC's ring overruns show here). */
  kernelCounters(): KernelCounters | null {
    const s = this.linkStats();
    return s && { rxDropped: s.rxDropped, txDropped: s.txDropped };
  }
}
