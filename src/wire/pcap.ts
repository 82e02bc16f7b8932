/**
 * The classic libpcap file format (what tcpdump -w writes and Wireshark opens):
 * https://www.tcpdump.org/manpages/pcap-savefile.5.html. Little-endian, microsecond
 * timestamps, one link type per file.
 *
 * ```
 * file:   magic a1b2c3d4 | major 2 | minor 4 | thiszone | sigfigs | snaplen | linktype
 * record: ts_sec | ts_usec | incl_len | orig_len | frame bytes (incl_len)
 * ```
 */

export const GLOBAL_HEADER_LEN = 24;
export const RECORD_HEADER_LEN = 16;
export const PCAP_MAGIC = 0xa1b2c3d4;
/** LINKTYPE_ETHERNET, and LINKTYPE_RAW (an IPv4/IPv6 packet with no link header). */
export const LinkType = { Ethernet: 1, Raw: 101 } as const;
export const DEFAULT_SNAPLEN = 262144;

export function pcapGlobalHeader(linkType: number = LinkType.Ethernet, snaplen = DEFAULT_SNAPLEN): Uint8Array {
  const out = new Uint8Array(GLOBAL_HEADER_LEN);
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true);
  v.setUint32(12, 0, true);
  v.setUint32(16, snaplen, true);
  v.setUint32(20, linkType, true);
  return out;
}

/** One record: header and the frame bytes buf[off, off+len), cut at snaplen. A copy, so the
 * caller's buffer may be reused as soon as this returns. */
export function pcapRecord(timeMs: number, buf: Uint8Array, off: number, len: number, snaplen = DEFAULT_SNAPLEN): Uint8Array {
  const incl = Math.min(len, snaplen);
  const out = new Uint8Array(RECORD_HEADER_LEN + incl);
  const v = new DataView(out.buffer);
  const sec = Math.floor(timeMs / 1000);
  v.setUint32(0, sec, true);
  v.setUint32(4, Math.floor((timeMs - sec * 1000) * 1000), true);
  v.setUint32(8, incl, true);
  v.setUint32(12, len, true);
  out.set(buf.subarray(off, off + incl), RECORD_HEADER_LEN);
  return out;
}

export interface PcapRecord {
  timeMs: number;
  data: Uint8Array;
  origLen: number;
}

/** Reads a whole pcap file (for tests and tools). */
export function readPcap(file: Uint8Array): { linkType: number; records: PcapRecord[] } {
  if (file.length < GLOBAL_HEADER_LEN) throw new Error(`pcap: ${file.length} bytes, the header needs ${GLOBAL_HEADER_LEN}`);
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (v.getUint32(0, true) !== PCAP_MAGIC) throw new Error('pcap: not a little-endian microsecond pcap file');
  const linkType = v.getUint32(20, true);
  const records: PcapRecord[] = [];
  let o = GLOBAL_HEADER_LEN;
  while (o + RECORD_HEADER_LEN <= file.length) {
    const incl = v.getUint32(o + 8, true);
    if (o + RECORD_HEADER_LEN + incl > file.length) throw new Error('pcap: last record is cut short');
    records.push({
      timeMs: v.getUint32(o, true) * 1000 + v.getUint32(o + 4, true) / 1000,
      data: file.slice(o + RECORD_HEADER_LEN, o + RECORD_HEADER_LEN + incl),
      origLen: v.getUint32(o + 12, true),
    });
    o += RECORD_HEADER_LEN + incl;
  }
  return { linkType, records };
}
