/**
 * Packet capture for `weft capture`: a FrameTap that turns frames into pcap records.
 * Capturing copies each frame (it is off the fast path only while someone watches), and a
 * reader that falls behind loses records, counted, instead of growing memory without bound.
 */
import type { FrameTap } from '../datapath/datapath.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { pcapGlobalHeader, pcapRecord } from '../wire/pcap.js';

export type CaptureLayer = 'inner' | 'outer';

export interface CaptureSink {
  /** Takes a record; returns false when the reader is too far behind (the record is lost). */
  write(record: Uint8Array): boolean;
  end(): void;
}

export class PcapTap implements FrameTap {
  captured = 0;
  lost = 0;
  private done = false;

  constructor(
    private readonly sink: CaptureSink,
    private readonly layer: CaptureLayer,
    /** Stop after this many frames (0: no limit). */
    private readonly limit: number,
    private readonly onDone: () => void,
  ) {
    sink.write(pcapGlobalHeader());
  }

  frame(mem: Uint8Array, off: number, len: number, _direction: 'rx' | 'tx', now: number): void {
    this.record(pcapRecord(now, mem, off, len));
  }

  datagram(mem: Uint8Array, off: number, len: number, innerOff: number, innerLen: number, direction: 'rx' | 'tx',
    local: number, localPort: number, remote: number, remotePort: number, now: number): void {
    if (this.layer === 'inner') {
      this.record(pcapRecord(now, mem, innerOff, innerLen));
      return;
    }
    // The outer packet as the underlay carried it: the kernel wrote the IP and UDP headers,
    // so they are rebuilt here (with zero MACs) for Wireshark to decode the whole stack.
    const payload = mem.slice(off, off + len);
    const [src, sport, dst, dport] = direction === 'tx' ? [local, localPort, remote, remotePort] : [remote, remotePort, local, localPort];
    const frame = compose.ethernet(0, 0, EtherType.Ipv4, compose.udpV4(src, dst, sport, dport, payload));
    this.record(pcapRecord(now, frame, 0, frame.length));
  }

  private record(rec: Uint8Array): void {
    if (this.done) return;
    if (this.sink.write(rec)) this.captured++;
    else this.lost++;
    if (this.limit > 0 && this.captured >= this.limit) this.stop();
  }

  stop(): void {
    if (this.done) return;
    this.done = true;
    this.onDone();
    this.sink.end();
  }
}
