/**
 * What the data path needs from the outside world: ports that move Ethernet frames to and
 * from a VM, and an underlay that moves datagrams to and from other hosts. Both work in
 * batches over the data path's packet memory (one Uint8Array): the data path says where to
 * put what is read, and where the bytes to write are; a backend never keeps a reference to
 * that memory past the call.
 *
 * Implementations: a TAP device (src/io/tap.ts), a UDP socket (src/io/udp-underlay.ts), and
 * in-memory ones for tests (src/datapath/memory.ts).
 */

/** A frame's length from readBatch when the backend refused what it asked of the
 * offloads (see the 'offload-refused' drop). */
export const BAD_OFFLOAD = -2;

export interface PortBackend {
  /** What a person would call it: the TAP's name, say. */
  readonly description: string;
  /**
   * Reads up to `max` frames; frame i goes to mem[base + i*stride, +capacity) and its length
   * to lengths[i] (-1: it did not fit, BAD_OFFLOAD: its offload request was refused).
   * Returns how many were read (0 when none wait). Must not block.
   * Throws when the backend is gone for good (a deleted TAP device).
   */
  readBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number;
  /**
   * Writes frames mem[offsets[i], +lengths[i]) for i < count, in order, until the output
   * is full. Returns how many were attempted; of those, a frame refused for another reason
   * has its lengths[i] set to a negative errno. The caller drops the rest ('tx-busy').
   */
  writeBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  /** Starts calling `onReadable` whenever frames wait (at most once per event-loop turn). */
  start(onReadable: () => void): void;
  close(): void;
  /** What the kernel counted on the way to and from this port, before Weft saw a frame
   * (null where the backend has no kernel side, or the kernel cannot say). Not per frame:
   * for `weft stats`. */
  kernelCounters?(): KernelCounters | null;
}

/** Frames the kernel dropped before Weft could read them, or could not deliver. */
export interface KernelCounters {
  /** Frames lost on the way to Weft (a full queue or socket buffer). */
  rxDropped: number;
  /** Frames Weft wrote that the kernel dropped. */
  txDropped?: number;
}

export interface UnderlayBackend {
  readonly description: string;
  /** Like PortBackend.readBatch, plus each sender's IPv4 address and UDP port. A datagram
   * longer than `capacity` gets length -1. */
  recvBatch(mem: Uint8Array, base: number, stride: number, capacity: number, max: number,
    lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array): number;
  /** Sends datagram i (mem[offsets[i], +lengths[i])) to addrs[i]:ports[i], with the same
   * contract as PortBackend.writeBatch: returns how many were attempted, refusals marked
   * by a negative length. */
  sendBatch(mem: Uint8Array, offsets: Int32Array, lengths: Int32Array, addrs: Uint32Array,
    ports: Uint16Array, count: number): number;
  start(onReadable: () => void): void;
  close(): void;
  kernelCounters?(): KernelCounters | null;
}
