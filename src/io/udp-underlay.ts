/**
 * The underlay: one IPv4 UDP socket per host, carrying every network's tunnels. Datagrams
 * are received with recvmmsg and sent with sendmmsg, in batches, by the native addon.
 */
import type { UnderlayBackend } from '../datapath/backend.js';
import { formatIpv4 } from '../wire/bytes.js';
import { IoError, native } from './native.js';
import { WatchedFd } from './watched-fd.js';

/** Socket buffers big enough to absorb a burst while JavaScript is busy (ours). */
const SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;

export class UdpUnderlay implements UnderlayBackend {
  readonly description: string;
  private readonly watched: WatchedFd;

  private constructor(
    private readonly fd: number,
    readonly address: number,
    readonly port: number,
  ) {
    this.description = `udp ${formatIpv4(address)}:${port}`;
    this.watched = new WatchedFd(fd);
  }

  static open(address: number, port: number): UdpUnderlay {
    return new UdpUnderlay(native.udpOpen(formatIpv4(address), port, SOCKET_BUFFER_BYTES), address, port);
  }

  recvBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number,
    lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array): number {
    const n = native.udpRecv(this.fd, mem, base, stride, capacity, max, lengths, addrs, ports);
    if (n < 0) {
      // ICMP errors for earlier sends surface here (ECONNREFUSED); they are not fatal.
      if (-n === 111 || -n === 113 || -n === 101) return 0;
      throw new IoError(`receiving on ${this.description}`, -n);
    }
    return n;
  }

  sendBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array, count: number): number {
    return native.udpSend(this.fd, mem, offsets, lengths, addrs, ports, count);
  }

  /** A poll error (the device is gone) also calls back: the next read throws, and the data
   * path marks the port failed and closes it. */
  start(onReadable: () => void): void {
    this.watched.start(onReadable);
  }

  close(): void {
    this.watched.close();
  }
}
