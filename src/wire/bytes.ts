/**
 * Byte-level helpers shared by the codecs: big-endian field access, MAC and IPv4 address
 * text forms, and the error every codec raises for bytes it cannot accept.
 *
 * Accessors do no bounds checks of their own: a view checks the length once in `checked`
 * (or `point`), after which its accessors cannot run past the buffer.
 */

/** Why a codec refused bytes. `truncated`: shorter than the header says; `malformed`: a
 * field has a value the protocol forbids. */
export type WireErrorCode = 'truncated' | 'malformed';

export class WireError extends Error {
  constructor(
    readonly code: WireErrorCode,
    readonly protocol: string,
    detail: string,
  ) {
    super(`${protocol}: ${detail}`);
    this.name = 'WireError';
  }
}

export function readU16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

export function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}

export function readU24(buf: Uint8Array, off: number): number {
  return (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2];
}

export function writeU24(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 16) & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = v & 0xff;
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Little-endian, as WireGuard's message layout (the tunnels) has them. */
export function readU32le(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

export function writeU32le(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}

/** A MAC address as a number (48 bits fit a double exactly). */
export type MacNumber = number;

export function readMac(buf: Uint8Array, off: number): MacNumber {
  return readU16(buf, off) * 0x1_0000_0000 + readU32(buf, off + 2);
}

export function writeMac(buf: Uint8Array, off: number, mac: MacNumber): void {
  writeU16(buf, off, Math.floor(mac / 0x1_0000_0000));
  writeU32(buf, off + 2, mac % 0x1_0000_0000);
}

export const BROADCAST_MAC: MacNumber = 0xffff_ffff_ffff;

/** The I/G bit: set for group (multicast and broadcast) addresses. */
export function isGroupMac(buf: Uint8Array, off: number): boolean {
  return (buf[off] & 0x01) !== 0;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  c |= 0x20; // lower case
  return c >= 97 && c <= 102 ? c - 87 : -1; // a-f
}

/** Parses "02:42:ac:11:00:02" (or with "-"). Called for every neighbor a controller sends,
 * so it walks the characters instead of using regular expressions. */
export function parseMac(text: string): MacNumber {
  let mac = 0;
  let ok = text.length === 17;
  for (let i = 0; ok && i < 6; i++) {
    const hi = hexDigit(text.charCodeAt(i * 3));
    const lo = hexDigit(text.charCodeAt(i * 3 + 1));
    const sep = text.charCodeAt(i * 3 + 2);
    ok = hi >= 0 && lo >= 0 && (i === 5 || sep === 58 || sep === 45);
    mac = mac * 256 + hi * 16 + lo;
  }
  if (!ok) throw new WireError('malformed', 'mac', `not a MAC address: ${JSON.stringify(text)}`);
  return mac;
}

export function formatMac(mac: MacNumber): string {
  const hex = mac.toString(16).padStart(12, '0');
  return hex.match(/../g)!.join(':');
}

/** An IPv4 address as an unsigned 32-bit number. */
export type Ipv4Number = number;

/** Parses dotted-quad IPv4 text: four decimal parts 0..255 of one to three digits, without
 * leading zeros. */
export function parseIpv4(text: string): Ipv4Number {
  let ip = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    // A leading zero ("010") is refused: some parsers read it as octal, others as decimal.
    if (c >= 48 && c <= 57 && digits < 3 && !(digits === 1 && part === 0)) {
      part = part * 10 + (c - 48);
      digits++;
    } else if (c === 46 && digits > 0 && part <= 255) {
      ip = ip * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else {
      dots = -1;
      break;
    }
  }
  if (dots !== 4) throw new WireError('malformed', 'ipv4', `not an IPv4 address: ${JSON.stringify(text)}`);
  return ip;
}

export function formatIpv4(ip: Ipv4Number): string {
  return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join('.');
}

/** Parses an IPv6 address (RFC 4291 §2.2 text forms, no zone) into 16 bytes. */
export function parseIpv6(text: string): Uint8Array {
  const bad = () => new WireError('malformed', 'ipv6', `not an IPv6 address: ${JSON.stringify(text)}`);
  let s = text;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.includes('.', lastColon)) {
    // A trailing dotted quad (::ffff:192.0.2.1) stands for the last two groups.
    const v4 = parseIpv4(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) throw bad();
  const groups = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').map((g) => {
          if (!/^[0-9a-f]{1,4}$/i.test(g)) throw bad();
          return parseInt(g, 16);
        });
  const left = groups(halves[0]);
  const right = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) throw bad();
  const words = [...left, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => writeU16(out, i * 2, w));
  return out;
}

/** Formats 16 bytes as an IPv6 address in the RFC 5952 canonical form. */
export function formatIpv6(bytes: Uint8Array, off = 0): string {
  const words = Array.from({ length: 8 }, (_, i) => readU16(bytes, off + i * 2));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Fills a buffer with 0xa5 so that a byte an `emit` forgot to write shows in a test. */
export function poisoned(len: number): Uint8Array {
  return new Uint8Array(len).fill(0xa5);
}

/** Hex text (whitespace ignored) to bytes: for test vectors. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}
