/**
 * The underlay: IPv4 UDP sockets, one per encapsulation (VXLAN on 4789, Geneve on 6081 by
 * default). Datagrams are received with recvmmsg and sent with sendmmsg, in batches, by the
 * native addon; runs of them to one host go as one (UDP GSO) and come as one (UDP GRO), so
 * the kernel's UDP stack is crossed once per run instead of once per datagram.
 */
import type { KernelCounters, UnderlayBackend } from '../datapath/backend.js';
import { formatIpv4 } from '../wire/bytes.js';
import { GRO_COUNT, GRO_MESSAGE, GRO_STAGING, GRO_STATE, IoError, native } from './native.js';
import { WatchedFd } from './watched-fd.js';

/** Socket buffers big enough to absorb a burst while JavaScript is busy (ours). */
const SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;

export class UdpUnderlay implements UnderlayBackend {
  private readonly name: string;
  private readonly watched: WatchedFd;
  /** [1]: send runs of equal datagrams with UDP GSO; the addon sets it to 0 if the route
   * cannot (no checksum offload), and it stays off. */
  private readonly gso = Int32Array.of(1);
  /** Where datagrams the kernel joined (UDP GRO) are received before they are cut apart
   * into the data path's slots, and what of them is left for the next call. */
  private readonly staging = new Uint8Array(GRO_STAGING);
  private readonly groState = new Int32Array(GRO_STATE);

  private constructor(
    private readonly fd: number,
    readonly address: number,
    readonly port: number,
  ) {
    this.name = `udp ${formatIpv4(address)}:${port}`;
    this.watched = new WatchedFd(fd);
  }

  static open(address: number, port: number): UdpUnderlay {
    return new UdpUnderlay(native.udpOpen(formatIpv4(address), port, SOCKET_BUFFER_BYTES), address, port);
  }

  recvBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number,
    lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array): number {
    const n = native.udpRecv(this.fd, mem, base, stride, capacity, max, lengths, addrs, ports, this.staging, this.groState);
    if (this.groState[GRO_MESSAGE] < this.groState[GRO_COUNT]) this.watched.kick();
    if (n < 0) {
      // ICMP errors for earlier sends surface here (ECONNREFUSED); they are not fatal.
      if (-n === 111 || -n === 113 || -n === 101) return 0;
      throw new IoError(`receiving on ${this.name}`, -n);
    }
    return n;
  }

  sendBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array, count: number): number {
    return native.udpSend(this.fd, mem, offsets, lengths, addrs, ports, count, this.gso);
  }

  /** A poll error (the device is gone) also calls back: the next read throws, and the data
   * path marks the port failed and closes it. */
  /** What `weft stats` shows: the socket, and whether sends still use UDP GSO. */
  get description(): string {
    return `${this.name}${this.gso[0] === 1 ? ', segmentation offload' : ''}`;
  }

  start(onReadable: () => void): void {
    this.watched.start(onReadable);
  }

  close(): void {
    this.watched.close();
  }

  /** Datagrams the kernel dropped on this socket: its receive buffer was full. */
  kernelCounters(): KernelCounters | null {
    const drops = native.udpDrops(this.fd);
    return drops < 0 ? null : { rxDropped: drops };
  }
}
