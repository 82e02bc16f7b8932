/**
 * Packet capture for `weft capture`: a FrameTap that turns frames into pcapng blocks, with
 * microsecond timestamps and each frame's direction. A port capture has one interface, the
 * port; an inner tunnel capture one per network (named after it), so each frame says which
 * network it crossed; an outer capture one, the underlay. Capturing copies each frame (it is
 * off the fast path only while someone watches), and a reader that falls behind loses
 * records, counted, instead of growing memory without bound.
 */
import { performance } from 'node:perf_hooks';
import type { FrameTap } from '../datapath/datapath.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { enhancedPacket, interfaceDescription, sectionHeader } from '../wire/pcapng.js';
import type { FramePredicate } from './capture-filter.js';

export type CaptureLayer = 'inner' | 'outer';

export interface CaptureSink {
  /** Takes a record; returns false when the reader is too far behind (the record is lost),
   * unless `always` (a block the file needs to make sense). */
  write(record: Uint8Array, always?: boolean): boolean;
  end(): void;
}

export interface CaptureOptions {
  /** What is captured, for the interface's name: a port's name, or 'tunnels'. */
  what: { port: string } | { tunnels: string };
  layer: CaptureLayer;
  /** Stop after this many frames (0: no limit). */
  limit: number;
  /** Only the frames (as written) it passes; null: all. */
  filter: FramePredicate | null;
  /** A network's name by its VNI (for inner tunnel captures' interfaces). */
  networkOf(vni: number): string | undefined;
}

/** Microseconds since the epoch, at the clock's own resolution (the data path's `now` is
 * a whole millisecond). */
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

export class PcapTap implements FrameTap {
  captured = 0;
  lost = 0;
  private done = false;
  /** Interface ids by key (a VNI, or 0 for the one interface of a port or the underlay). */
  private readonly interfaces = new Map<number, number>();

  constructor(
    private readonly sink: CaptureSink,
    private readonly opts: CaptureOptions,
    private readonly onDone: () => void,
  ) {
    sink.write(sectionHeader(), true);
    if ('port' in opts.what) this.iface(0, opts.what.port, `port ${opts.what.port}: rx is what the VM sent, tx what it was sent`);
    else if (opts.layer === 'outer') this.iface(0, 'underlay', `the underlay's datagrams of tunnels to ${opts.what.tunnels}`);
  }

  frame(mem: Uint8Array, off: number, len: number, direction: 'rx' | 'tx', _now: number): void {
    if (this.done || (this.opts.filter !== null && !this.opts.filter(mem, off, len))) return;
    this.record(enhancedPacket(0, nowUs(), mem, off, len, direction === 'rx' ? 'in' : 'out'));
  }

  datagram(mem: Uint8Array, off: number, len: number, innerOff: number, innerLen: number, direction: 'rx' | 'tx',
    local: number, localPort: number, remote: number, remotePort: number, vni: number, _now: number): void {
    if (this.done) return;
    const way = direction === 'rx' ? 'in' : 'out';
    if (this.opts.layer === 'inner') {
      if (this.opts.filter !== null && !this.opts.filter(mem, innerOff, innerLen)) return;
      let id = this.interfaces.get(vni);
      if (id === undefined) {
        const name = this.opts.networkOf(vni) ?? `vni ${vni}`;
        id = this.iface(vni, name, `inner frames of network ${name} (VNI ${vni}), tunnels to ${'tunnels' in this.opts.what ? this.opts.what.tunnels : '?'}`);
      }
      this.record(enhancedPacket(id, nowUs(), mem, innerOff, innerLen, way));
      return;
    }
    // The outer packet as the underlay carried it: the kernel wrote the IP and UDP headers,
    // so they are rebuilt here (with zero MACs) for Wireshark to decode the whole stack.
    const payload = mem.slice(off, off + len);
    const [src, sport, dst, dport] = direction === 'tx' ? [local, localPort, remote, remotePort] : [remote, remotePort, local, localPort];
    const frame = compose.ethernet(0, 0, EtherType.Ipv4, compose.udpV4(src, dst, sport, dport, payload));
    if (this.opts.filter !== null && !this.opts.filter(frame, 0, frame.length)) return;
    this.record(enhancedPacket(0, nowUs(), frame, 0, frame.length, way));
  }

  /** Declares an interface (before its first frame, as pcapng wants); returns its id. */
  private iface(key: number, name: string, description: string): number {
    const id = this.interfaces.size;
    this.interfaces.set(key, id);
    // An interface description must not be lost: it is written even past the queue's mark.
    this.sink.write(interfaceDescription(name, description), true);
    return id;
  }

  private record(rec: Uint8Array): void {
    if (this.done) return;
    if (this.sink.write(rec)) this.captured++;
    else this.lost++;
    if (this.opts.limit > 0 && this.captured >= this.opts.limit) this.stop();
  }

  stop(): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    this.sink.end();
  }
}
