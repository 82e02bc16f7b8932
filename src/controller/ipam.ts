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

/**
 * The IPv4 addresses taken on one network, for allocating many in a row (a `weft apply` of
 * thousands of ports, or thousands of creates): each range remembers how far up its
 * addresses are known taken, so that every address is passed over once, not once per
 * allocation. The lowest free address is still the one given: an address freed below that
 * mark lowers it again. An address given out is held until its claim is committed or given
 * up, so that two creates at once are not given the same one.
 */
export class AddressPool {
  private readonly taken: Set<number>;
  /** Given out, their claims not committed yet. */
  private readonly held = new Set<number>();
  /** `start-end` of a range -> every address of the range below it is taken or held. */
  private readonly floor = new Map<string, number>();

  constructor(taken: Iterable<number>) {
    this.taken = new Set(taken);
  }

  /** The store has `ip` claimed. */
  take(ip: number): void {
    this.taken.add(ip);
  }

  /** The store's claim of `ip` is gone. */
  free(ip: number): void {
    this.taken.delete(ip);
    if (!this.held.has(ip)) this.lower(ip);
  }

  /** `ip` was given out: no one else is given it until it is released. */
  hold(ip: number): void {
    this.held.add(ip);
  }

  /** The claim of a held address was committed (and taken) or given up. */
  release(ip: number): void {
    if (this.held.delete(ip) && !this.taken.has(ip)) this.lower(ip);
  }

  /** The lowest address in [start, end] that is neither taken, held nor `skip`, or null.
   * The caller holds it while it commits its claim. */
  allocate(start: number, end: number, skip: number): number | null {
    const range = `${start}-${end}`;
    let ip = Math.max(start, this.floor.get(range) ?? start);
    while (ip <= end && (this.taken.has(ip) || this.held.has(ip) || ip === skip)) ip++;
    this.floor.set(range, ip);
    return ip <= end ? ip : null;
  }

  private lower(ip: number): void {
    for (const [range, below] of this.floor) if (ip < below) this.floor.set(range, Math.max(ip, Number(range.split('-')[0])));
  }
}

export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}
