/**
 * What the offload tests share (test/offload.test.ts against a TAP, src/io/offload.test.ts
 * in process): TCP segments in Ethernet frames, a check of every checksum a segment
 * carries, and a batch of frames laid out in packet memory as the data path queues them.
 */
import { readU16, readU32 } from '../../src/wire/bytes.js';
import { finish, pseudoHeaderV4, pseudoHeaderV6, sumBytes } from '../../src/wire/checksum.js';
import * as compose from '../../src/wire/compose.js';
import { EtherType } from '../../src/wire/ethernet.js';
import type { TcpRepr } from '../../src/wire/tcp.js';

/** A TCP segment in IPv4 (src, dst numbers) or IPv6 (16 bytes each), checksums finished. */
export function tcpFrame(dstMac: number, srcMac: number, src: number | Uint8Array, dst: number | Uint8Array, tcp: TcpRepr): Uint8Array {
  return typeof src === 'number'
    ? compose.ethernet(dstMac, srcMac, EtherType.Ipv4, compose.tcpV4(src, dst as number, tcp))
    : compose.ethernet(dstMac, srcMac, EtherType.Ipv6, compose.tcpV6(src, dst as Uint8Array, tcp));
}

/** Whether the untagged frame at f[off, +len) carries a right TCP checksum (and, for
 * IPv4, a right header checksum). */
export function tcpChecksumsOk(f: Uint8Array, off = 0, len = f.length - off): boolean {
  const v6 = readU16(f, off + 12) === EtherType.Ipv6;
  const l4 = off + (v6 ? 54 : 14 + (f[off + 14] & 15) * 4);
  const tcpLen = off + len - l4;
  const pseudo = v6 ? pseudoHeaderV6(f.subarray(off + 22, off + 38), f.subarray(off + 38, off + 54), 6, tcpLen)
    : pseudoHeaderV4(readU32(f, off + 26), readU32(f, off + 30), 6, tcpLen);
  return finish(sumBytes(f, l4, tcpLen, pseudo)) === 0 && (v6 || finish(sumBytes(f, off + 14, (f[off + 14] & 15) * 4)) === 0);
}

/** Lays frames out in mem, one per `stride` bytes, with their offsets and lengths. */
export function packBatch(mem: Uint8Array, frames: Uint8Array[], stride: number): { offsets: Int32Array; lengths: Int32Array } {
  const offsets = new Int32Array(frames.length);
  const lengths = new Int32Array(frames.length);
  frames.forEach((f, i) => {
    mem.set(f, i * stride);
    offsets[i] = i * stride;
    lengths[i] = f.length;
  });
  return { offsets, lengths };
}
