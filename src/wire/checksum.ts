/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
 * 16-bit words, used by IPv4, ICMP, UDP and TCP. The pseudo-headers are those of RFC 768
 * (UDP over IPv4), RFC 793 (TCP) and RFC 8200 §8.1 (upper layers over IPv6).
 */

/** Adds the bytes buf[off, off+len) to a running 32-bit sum (not yet folded). */
export function sumBytes(buf: Uint8Array, off: number, len: number, sum = 0): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  // Fold now and then so that the sum stays an exact small integer.
  return (sum & 0xffff) + (sum >>> 16);
}

/** Folds a running sum to 16 bits and complements it. */
export function finish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function internetChecksum(buf: Uint8Array, off: number, len: number): number {
  return finish(sumBytes(buf, off, len));
}

/** The IPv4 pseudo-header sum: source, destination, zero + protocol, upper-layer length. */
export function pseudoHeaderV4(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** The IPv6 pseudo-header sum: source, destination (16 bytes each), length, next header. */
export function pseudoHeaderV6(src: Uint8Array, dst: Uint8Array, nextHeader: number, length: number): number {
  let sum = sumBytes(src, 0, 16);
  sum = sumBytes(dst, 0, 16, sum);
  return sum + (length >>> 16) + (length & 0xffff) + nextHeader;
}
