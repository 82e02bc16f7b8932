/**
 * The native addon (native/weft_native.c), typed. Built by node-gyp at `npm ci`.
 * See the C file for each call's exact contract; in short, batch calls take the caller's
 * memory and offsets, never keep them, and report errors as negative errno values.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface WatchHandle {
  readonly __brand: 'WatchHandle';
}

export interface Native {
  tapOpen(name: string, netnsPath: string | null, offload: boolean): { fd: number; name: string; offload: boolean; mac: string };
  /** Gives the TAP device on fd this MAC, wherever the device now is. */
  tapSetMac(fd: number, mac: Uint8Array): void;
  /** Like readFrames, for a TAP opened with offload: super-frames cut into segments (what
   * does not fit waits in raw, described by state), checksums finished. A frame whose
   * virtio-net header cannot be honoured has length BAD_OFFLOAD. raw: RAW_CAPACITY bytes;
   * state: TAP_READ_STATE numbers. */
  tapRead(fd: number, buf: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array, raw: Uint8Array, state: Int32Array): number;
  /** Like writeFrames, for a TAP opened with offload: runs of one TCP flow's segments are
   * joined into one super-frame (built in join: RAW_CAPACITY bytes). */
  /** The Internet checksum of src[srcOff, +len) (as it goes in a header), copying the
   * bytes to dst[dstOff] in the same pass when dst is given. */
  checksum(src: Uint8Array, srcOff: number, len: number, dst: Uint8Array | null, dstOff: number): number;
  /** Tests only: what tapRead does with a frame it read (input: the 10-byte virtio-net
   * header, then the frame; null: only what waits in state). */
  offloadTake(input: Uint8Array | null, buf: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array, raw: Uint8Array, state: Int32Array): number;
  /** Tests only: how many of frames 0.. tapWrite would join (1: frame 0 alone), and in
   * out[0] the joined frame's bytes in join (virtio-net header first). */
  offloadJoin(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number, join: Uint8Array, out: Int32Array): number;
  tapWrite(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number, join: Uint8Array): number;
  readFrames(fd: number, buf: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number;
  writeFrames(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  udpOpen(address: string, port: number, bufferBytes: number): number;
  /** staging: GRO_STAGING bytes, where joined datagrams land; state: GRO_STATE numbers. */
  udpRecv(fd: number, buf: Uint8Array, base: number, stride: number, capacity: number, max: number,
    lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array, staging: Uint8Array, state: Int32Array): number;
  udpSend(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array, count: number, gso: Int32Array): number;
  close(fd: number): void;
  watchReadable(fd: number, callback: (status: number) => void): WatchHandle;
  unwatch(handle: WatchHandle): void;
  /** Datagrams the kernel dropped on a UDP socket, or a negative errno. */
  udpDrops(fd: number): number;
  /** An interface's kernel counters, read in the namespace at netnsPath (ours when null). */
  linkStats(name: string, netnsPath: string | null): LinkStats;
  /** A raw packet socket on an interface (see packet.ts). */
  packetOpen(name: string, netnsPath: string | null): number;
  /** Like readFrames, with each frame's VLAN tag put back; a cut frame's length is -1. */
  packetRecv(fd: number, buf: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number;
  /** Like writeFrames, for a packet socket; runs of one TCP flow's segments are joined into
   * one super-frame (in join: RAW_CAPACITY bytes). */
  packetSend(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number, join: Uint8Array): number;
  /** ChaCha20-Poly1305 (RFC 8439) with a 32-byte key and the nonce 0x00000000 || counter
   * (64-bit little-endian): writes len + 16 bytes (ciphertext, tag) at dst[dstOff] and
   * returns that length. src and dst may overlap exactly (in place). Its cipher context
   * is this thread's (one per instance of the addon), shared by every key: no state of one
   * call is left for the next. */
  aeadSeal(key: Uint8Array, counter: number, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
  /** The inverse of aeadSeal: len counts the tag; returns the plaintext's length, or -1
   * when the tag does not authenticate. */
  aeadOpen(key: Uint8Array, counter: number, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
}

/** The C file's limits for a TAP with offload: its buffers for a whole super-frame, and
 * what tapRead keeps between calls. */
export const RAW_CAPACITY = 65535 + 18 + 64;
export const TAP_READ_STATE = 7;
/** The C file's limits for a UDP socket's receive: 32 messages of up to 64 KiB each (up to
 * 64 datagrams joined by the kernel), and what is kept between calls. */
export const GRO_STAGING = 32 * 65536;
export const GRO_STATE = 3 + 4 * 32;
/** In that state: how many messages the last recvmmsg brought, and which is being cut. */
export const GRO_COUNT = 0;
export const GRO_MESSAGE = 1;

export interface LinkStats {
  rxPackets: number;
  txPackets: number;
  rxDropped: number;
  txDropped: number;
  rxErrors: number;
  txErrors: number;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const native: Native = createRequire(import.meta.url)(join(root, 'build', 'Release', 'weft_native.node')) as Native;

/** An errno from a batch call, as an Error with the errno's name where we know it. */
export class IoError extends Error {
  constructor(
    readonly what: string,
    readonly errno: number,
  ) {
    super(`${what}: errno ${errno}`);
    this.name = 'IoError';
  }
}
