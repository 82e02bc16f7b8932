/**
 * IPv4 address management for subnets: CIDR parsing, membership, and allocation of the
 * lowest free address in a range.
 */
import { formatIpv4, parseIpv4 } from '../wire/bytes.js';

export interface Cidr {
  network: number;
  prefix: number;
  /** First and last address of the prefix (network and broadcast addresses). */
  first: number;
  last: number;
}

/** Parses "10.0.0.0/24"; throws a message fit for an API error. */
export function parseCidr(text: string): Cidr {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  if (!m || Number(m[2]) > 32) throw new Error(`${JSON.stringify(text)} is not an IPv4 prefix such as 10.0.0.0/24`);
  const address = parseIpv4(m[1]);
  const prefix = Number(m[2]);
  const size = 2 ** (32 - prefix);
  const network = address - (address % size);
  if (network !== address) throw new Error(`${text} has host bits set; the prefix is ${formatIpv4(network)}/${prefix}`);
  return { network, prefix, first: network, last: network + size - 1 };
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.first && ip <= c.last;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.first <= b.last && b.first <= a.last;
}

/** The lowest address in [start, end] not in `taken`, or null when the range is full. */
export function allocate(start: number, end: number, taken: Set<number>): number | null {
  for (let ip = start; ip <= end; ip++) if (!taken.has(ip)) return ip;
  return null;
}

export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}
