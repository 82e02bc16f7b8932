/**
 * The pcapng file format, as far as `weft capture` writes it (draft-ietf-opsawg-pcapng):
 * a section header, an interface description per place frames were seen (a port, or each
 * network of a tunnel capture), and an enhanced packet block per frame, with microsecond
 * timestamps (the interfaces' default resolution) and its direction. Little-endian.
 *
 * ```
 * block:   type | total length | body (padded to 4) | total length
 * SHB 0x0a0d0d0a: byte-order magic 1a2b3c4d | major 1 | minor 0 | section length -1 | options
 * IDB 1:   link type (16) | reserved (16) | snaplen | options (if_name 2)
 * EPB 6:   interface id | timestamp high | low | captured length | original length | data | options (epb_flags 2)
 * option:  code (16) | length (16) | value (padded to 4); opt_endofopt is code 0, length 0
 * ```
 */

export const BlockType = { Section: 0x0a0d0d0a, Interface: 1, EnhancedPacket: 6 } as const;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 262144;
/** epb_flags' direction bits (§4.3.1): received by the interface, or sent. */
const INBOUND = 1;
const OUTBOUND = 2;

const pad4 = (n: number) => (n + 3) & ~3;
const utf8 = new TextEncoder();

/** Options as (code, value) pairs, with opt_endofopt after them. */
function options(opts: Array<[number, Uint8Array]>): Uint8Array {
  if (opts.length === 0) return new Uint8Array(0);
  const out = new Uint8Array(opts.reduce((n, [, v]) => n + 4 + pad4(v.length), 4));
  const d = new DataView(out.buffer);
  let o = 0;
  for (const [code, v] of opts) {
    d.setUint16(o, code, true);
    d.setUint16(o + 2, v.length, true);
    out.set(v, o + 4);
    o += 4 + pad4(v.length);
  }
  return out; // the last 4 bytes stay zero: opt_endofopt
}

function block(type: number, body: Uint8Array): Uint8Array {
  const total = 12 + pad4(body.length);
  const out = new Uint8Array(total);
  const d = new DataView(out.buffer);
  d.setUint32(0, type, true);
  d.setUint32(4, total, true);
  out.set(body, 8);
  d.setUint32(total - 4, total, true);
  return out;
}

/** The section header block, naming the application that wrote the file. */
export function sectionHeader(application = 'weft capture'): Uint8Array {
  const opts = options([[4, utf8.encode(application)]]);
  const body = new Uint8Array(16 + opts.length);
  const d = new DataView(body.buffer);
  d.setUint32(0, BYTE_ORDER_MAGIC, true);
  d.setUint16(4, 1, true);
  d.setUint16(6, 0, true);
  d.setBigInt64(8, -1n, true); // section length not given
  body.set(opts, 16);
  return block(BlockType.Section, body);
}

/** An Ethernet interface named `name` (if_name) and described (if_description). */
export function interfaceDescription(name: string, description?: string): Uint8Array {
  const opts = options([[2, utf8.encode(name)], ...(description ? [[3, utf8.encode(description)] as [number, Uint8Array]] : [])]);
  const body = new Uint8Array(8 + opts.length);
  const d = new DataView(body.buffer);
  d.setUint16(0, LINKTYPE_ETHERNET, true);
  d.setUint32(4, SNAPLEN, true);
  body.set(opts, 8);
  return block(BlockType.Interface, body);
}

/** A frame, buf[off, off+len), seen on interface `iface` at `timeUs` (microseconds since
 * the epoch), going `direction` ('in' to the interface, 'out' of it). A copy. */
export function enhancedPacket(iface: number, timeUs: number, buf: Uint8Array, off: number, len: number, direction: 'in' | 'out'): Uint8Array {
  const incl = Math.min(len, SNAPLEN);
  const flags = new Uint8Array(4);
  new DataView(flags.buffer).setUint32(0, direction === 'in' ? INBOUND : OUTBOUND, true);
  const opts = options([[2, flags]]);
  const body = new Uint8Array(20 + pad4(incl) + opts.length);
  const d = new DataView(body.buffer);
  const t = Math.floor(timeUs);
  d.setUint32(0, iface, true);
  d.setUint32(4, Math.floor(t / 2 ** 32), true);
  d.setUint32(8, t >>> 0, true);
  d.setUint32(12, incl, true);
  d.setUint32(16, len, true);
  body.set(buf.subarray(off, off + incl), 20);
  body.set(opts, 20 + pad4(incl));
  return block(BlockType.EnhancedPacket, body);
}

/**
 * Counts the enhanced packet blocks of a pcapng stream as it passes, chunk by chunk (for
 * `weft capture` to say how many frames it wrote). Reads only block headers.
 */
export class PacketCounter {
  packets = 0;
  /** Bytes to skip before the next block header. */
  private skip = 0;
  private header = new Uint8Array(8);
  private have = 0;

  push(chunk: Uint8Array): void {
    let o = 0;
    while (o < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - o);
        this.skip -= n;
        o += n;
        continue;
      }
      const n = Math.min(8 - this.have, chunk.length - o);
      this.header.set(chunk.subarray(o, o + n), this.have);
      this.have += n;
      o += n;
      if (this.have < 8) return;
      const d = new DataView(this.header.buffer);
      if (d.getUint32(0, true) === BlockType.EnhancedPacket) this.packets++;
      this.skip = Math.max(0, d.getUint32(4, true) - 8);
      this.have = 0;
    }
  }
}

/** Reads a whole pcapng file's packets (for tests and tools): each with its interface's name. */
export function readPcapng(file: Uint8Array): Array<{ iface: string; timeUs: number; data: Uint8Array; direction: 'in' | 'out' | null }> {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 28 || v.getUint32(0, true) !== BlockType.Section || v.getUint32(8, true) !== BYTE_ORDER_MAGIC) throw new Error('pcapng: not a little-endian pcapng file');
  const names: string[] = [];
  const out: Array<{ iface: string; timeUs: number; data: Uint8Array; direction: 'in' | 'out' | null }> = [];
  const decoder = new TextDecoder();
  const option = (at: number, end: number, code: number): Uint8Array | null => {
    for (let o = at; o + 4 <= end;) {
      const c = v.getUint16(o, true);
      const n = v.getUint16(o + 2, true);
      if (c === 0) return null;
      if (c === code) return file.subarray(o + 4, o + 4 + n);
      o += 4 + pad4(n);
    }
    return null;
  };
  for (let o = 0; o + 12 <= file.length;) {
    const type = v.getUint32(o, true);
    const total = v.getUint32(o + 4, true);
    if (total < 12 || o + total > file.length) throw new Error('pcapng: a block is cut short');
    if (type === BlockType.Interface) {
      const name = option(o + 16, o + total - 4, 2);
      names.push(name ? decoder.decode(name) : `interface ${names.length}`);
    } else if (type === BlockType.EnhancedPacket) {
      const incl = v.getUint32(o + 20, true);
      const flags = option(o + 28 + pad4(incl), o + total - 4, 2);
      const dir = flags ? new DataView(flags.buffer, flags.byteOffset, 4).getUint32(0, true) & 3 : 0;
      out.push({
        iface: names[v.getUint32(o + 8, true)] ?? '?',
        timeUs: v.getUint32(o + 12, true) * 2 ** 32 + v.getUint32(o + 16, true),
        data: file.slice(o + 28, o + 28 + incl),
        direction: dir === INBOUND ? 'in' : dir === OUTBOUND ? 'out' : null,
      });
    }
    o += total;
  }
  return out;
}
