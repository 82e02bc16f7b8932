/**
 * A whole TCP SYN to port 80 and the ways one is cut: frames whose headers say more than
 * they carry, which the data path drops as `malformed` where they enter (src/datapath/
 * flow.ts), and fragments, which are whole but carry no ports. Shared by the data path's
 * own test (src/datapath/datapath.test.ts, in process) and the end-to-end one
 * (test/malformed.e2e.test.ts, through real kernels).
 */
import { writeU16 } from '../../src/wire/bytes.js';
import * as compose from '../../src/wire/compose.js';
import { EtherType } from '../../src/wire/ethernet.js';
import { TcpRepr } from '../../src/wire/tcp.js';

const SYN = 0x02;

/** A copy of `bytes`, changed after it was made. */
export function edit(bytes: Uint8Array, change: (b: Uint8Array) => void): Uint8Array {
  const b = Uint8Array.from(bytes);
  change(b);
  return b;
}

/** A frame padded with zeros to the Ethernet minimum (60 bytes without the FCS). */
export function padded(frame: Uint8Array): Uint8Array {
  const f = new Uint8Array(Math.max(60, frame.length));
  f.set(frame);
  return f;
}

export interface Ends {
  dstMac: number;
  srcMac: number;
  src: number;
  dst: number;
}

/** IPv4 frames from `src` to `dst`:80, whole and cut. */
export function cutFrames({ dstMac, srcMac, src, dst }: Ends) {
  const eth = (p: Uint8Array) => compose.ethernet(dstMac, srcMac, EtherType.Ipv4, p);
  const syn = compose.tcpV4(src, dst, new TcpRepr(40000, 80, 1, 0, SYN, 1000));
  return {
    syn: eth(syn),
    // 14 bytes of TCP: ports and flags (a SYN to 80), but not the whole header.
    cutTcp: padded(eth(edit(syn.subarray(0, 34), (p) => writeU16(p, 2, 34)))),
    // The total length says 6 bytes more than came: "truncated-ip - 6 bytes missing".
    shortOfTotal: eth(syn.subarray(0, 34)),
    // IHL 0: a zero-length IP header.
    zeroHeader: eth(edit(syn, (p) => (p[0] = 0x40))),
    // A UDP header cut to 4 bytes.
    cutUdp: padded(eth(edit(compose.udpV4(src, dst, 5000, 80, new Uint8Array(0)).subarray(0, 24), (p) => writeU16(p, 2, 24)))),
    // A later fragment of a TCP segment (offset 1480): whole, but no ports in it.
    fragment: eth(edit(compose.ipv4(src, dst, 6, new Uint8Array(40)), (p) => writeU16(p, 6, 185))),
  };
}

/** IPv6 frames from `src` to `dst`:80: a cut TCP header, and a later fragment. */
export function cutFrames6({ dstMac, srcMac, src, dst }: { dstMac: number; srcMac: number; src: Uint8Array; dst: Uint8Array }) {
  const eth = (p: Uint8Array) => compose.ethernet(dstMac, srcMac, EtherType.Ipv6, p);
  const syn = compose.tcpV6(src, dst, new TcpRepr(40000, 80, 1, 0, SYN, 1000));
  return {
    syn: eth(syn),
    cutTcp: eth(edit(syn.subarray(0, 54), (p) => writeU16(p, 4, 14))),
    // A fragment header (next header TCP) at offset 1480, id 1.
    fragment: eth(compose.ipv6(src, dst, 44, new Uint8Array([6, 0, 0x05, 0xc8, 0, 0, 0, 1, ...new Uint8Array(40)]))),
  };
}

/** The cut IPv4 frames, in one list: each is `malformed`. */
export const cutList = (f: ReturnType<typeof cutFrames>): Uint8Array[] => [f.cutTcp, f.shortOfTotal, f.zeroHeader, f.cutUdp];
