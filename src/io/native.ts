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
  tapOpen(name: string, netnsPath: string | null): { fd: number; name: string };
  readFrames(fd: number, buf: Uint8Array, base: number, stride: number, capacity: number, max: number, lengths: Int32Array): number;
  writeFrames(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  udpOpen(address: string, port: number, bufferBytes: number): number;
  udpRecv(fd: number, buf: Uint8Array, base: number, stride: number, capacity: number, max: number,
    lengths: Int32Array, addrs: Uint32Array, ports: Uint16Array): number;
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
  /** Like writeFrames, for a packet socket. */
  packetSend(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  /** ChaCha20-Poly1305 (RFC 8439) with a 32-byte key and the nonce 0x00000000 || counter
   * (64-bit little-endian): writes len + 16 bytes (ciphertext, tag) at dst[dstOff] and
   * returns that length. src and dst may overlap exactly (in place). */
  aeadSeal(key: Uint8Array, counter: number, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
  /** The inverse of aeadSeal: len counts the tag; returns the plaintext's length, or -1
   * when the tag does not authenticate. */
  aeadOpen(key: Uint8Array, counter: number, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
}

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
