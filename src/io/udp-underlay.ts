/**
 * The underlay: one IPv4 UDP socket per host, carrying every network's tunnels. Datagrams
 * are received with recvmmsg and sent with sendmmsg, in batches, by the native addon.
 */
import type { UnderlayBackend } from '../datapath/backend.js';
import { formatIpv4 } from '../wire/bytes.js';
import { IoError, native, type WatchHandle } from './native.js';

/** Socket buffers big enough to absorb a burst while JavaScript is busy (ours). */
const SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;

export class UdpUnderlay implements UnderlayBackend {
  readonly description: string;
  private watch: WatchHandle | null = null;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly address: number,
    readonly port: number,
  ) {
    this.description = `udp ${formatIpv4(address)}:${port}`;
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

  start(onReadable: () => void): void {
    if (this.watch || this.closed) return;
    this.watch = native.watchReadable(this.fd, onReadable);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watch) native.unwatch(this.watch);
    this.watch = null;
    native.close(this.fd);
  }
}
