/**
 * A network's compiled tables: everything the control plane tells the data path about one
 * network (its MTU, its member hosts, where each known MAC is pinned, the ARP and ND answers,
 * the router's routes and addresses on it, its IPv6 advertisements, its way out), as one
 * immutable value. The reconciler builds a new one with a `TableBuilder` and the data path
 * swaps it in whole (`Datapath.setTables`), between batches: a frame sees either the old
 * tables or the new ones, never half of a change.
 *
 * What the data path learns or keeps while it forwards (learned MACs, connection tracking,
 * NAT translations, tunnel sessions, counters) lives beside the tables, in the data path's
 * own objects, and survives every swap.
 *
 * The large tables are sharded and copied on write: a new version shares every shard the
 * change did not touch, so one port's change in a network of 64,000 costs a shard's copy
 * (about 1/64 of the table), not the table's. Lookups allocate nothing.
 */
import { formatIpv6, parseIpv4, parseIpv6, type MacNumber } from '../wire/bytes.js';
import { Neighbors6, Prefix6 } from './ipv6.js';

/** A pin's code: a member host's id (>= 0, the MAC is behind it), a local port's
 * (`localPin(id)`, the MAC is that port's own), or NO_PIN. */
export const NO_PIN = -1;
export const localPin = (id: number): number => -2 - id;
export const isLocalPin = (code: number): boolean => code < NO_PIN;
export const localOf = (code: number): number => -2 - code;

const SHARD_BITS = 6;
const SHARDS = 1 << SHARD_BITS;

/** A MAC's hash: its top bits choose the shard, its low bits the slot in it. */
function macHash(hi: number, lo: number): number {
  return Math.imul(lo ^ (hi << 16) ^ hi, 0x9e3779b1) >>> 0;
}

/** One shard of a PinTable: an open-addressing hash over typed arrays (linear probing), at
 * most half full, never changed once built. */
class PinShard {
  readonly hi: Uint16Array;
  readonly lo: Uint32Array;
  readonly code: Int32Array;
  readonly mask: number;

  constructor(readonly entries: ReadonlyMap<MacNumber, number>) {
    let size = 4;
    while (size < entries.size * 2) size *= 2;
    this.mask = size - 1;
    this.hi = new Uint16Array(size);
    this.lo = new Uint32Array(size);
    this.code = new Int32Array(size).fill(NO_PIN);
    for (const [mac, code] of entries) {
      const hi = Math.floor(mac / 0x1_0000_0000);
      const lo = mac >>> 0;
      let i = slotOf(macHash(hi, lo), this.mask);
      while (this.code[i] !== NO_PIN) i = (i + 1) & this.mask;
      this.hi[i] = hi;
      this.lo[i] = lo;
      this.code[i] = code;
    }
  }

  get(hi: number, lo: number, h: number): number {
    const code = this.code;
    let i = slotOf(h, this.mask);
    for (;;) {
      const c = code[i];
      if (c === NO_PIN) return NO_PIN;
      if (this.lo[i] === lo && this.hi[i] === hi) return c;
      i = (i + 1) & this.mask;
    }
  }
}

const slotOf = (h: number, mask: number) => (h ^ (h >>> 15)) & mask;
const EMPTY_SHARD = new PinShard(new Map());

/** MAC -> pin code, immutable. The learning limit does not bound it: it holds what the
 * controller says, every remote port of the network and this host's own. */
export class PinTable {
  static readonly EMPTY = new PinTable(new Array<PinShard>(SHARDS).fill(EMPTY_SHARD), 0);

  private constructor(
    private readonly shards: readonly PinShard[],
    readonly size: number,
  ) {}

  /** The pin of the MAC given as its two halves, or NO_PIN. */
  get(hi: number, lo: number): number {
    const h = macHash(hi, lo);
    return this.shards[h >>> (32 - SHARD_BITS)].get(hi, lo, h);
  }

  /** This table with `changes` (MAC -> code, NO_PIN to remove) made: a new table sharing
   * every shard no change falls in. */
  with(changes: ReadonlyMap<MacNumber, number>): PinTable {
    if (changes.size === 0) return this;
    const touched = new Map<number, Map<MacNumber, number>>();
    for (const [mac, code] of changes) {
      const s = macHash(Math.floor(mac / 0x1_0000_0000), mac >>> 0) >>> (32 - SHARD_BITS);
      let m = touched.get(s);
      if (!m) touched.set(s, (m = new Map(this.shards[s].entries)));
      if (code === NO_PIN) m.delete(mac);
      else m.set(mac, code);
    }
    const shards = [...this.shards];
    let size = this.size;
    for (const [s, m] of touched) {
      size += m.size - shards[s].entries.size;
      shards[s] = new PinShard(m);
    }
    return new PinTable(shards, size);
  }

  *entries(): IterableIterator<[MacNumber, number]> {
    for (const s of this.shards) yield* s.entries;
  }
}

/** IPv4 address -> MAC (the ARP answers), immutable and sharded like PinTable. */
export class AddressTable {
  static readonly EMPTY = new AddressTable(new Array<ReadonlyMap<number, MacNumber>>(SHARDS).fill(new Map()), 0);

  private constructor(
    private readonly shards: ReadonlyArray<ReadonlyMap<number, MacNumber>>,
    readonly size: number,
  ) {}

  get(ip: number): MacNumber | undefined {
    return this.shards[ip & (SHARDS - 1)].get(ip);
  }

  has(ip: number): boolean {
    return this.shards[ip & (SHARDS - 1)].has(ip);
  }

  /** This table with `changes` (address -> MAC, null to remove) made. */
  with(changes: ReadonlyMap<number, MacNumber | null>): AddressTable {
    if (changes.size === 0) return this;
    const shards = [...this.shards];
    const copied = new Set<number>();
    let size = this.size;
    for (const [ip, mac] of changes) {
      const s = ip & (SHARDS - 1);
      if (!copied.has(s)) {
        shards[s] = new Map(shards[s]);
        copied.add(s);
      }
      const m = shards[s] as Map<number, MacNumber>;
      size -= m.size;
      if (mac === null) m.delete(ip);
      else m.set(ip, mac);
      size += m.size;
    }
    return new AddressTable(shards, size);
  }

  *entries(): IterableIterator<[number, MacNumber]> {
    for (const s of this.shards) yield* s;
  }
}

/** A remote host of the network: where its tunnel ends, and on an encrypted network its
 * public key (base64). Its id is stable while it stays a member, and never reused by the
 * builder that gave it, so a pin can name it. */
export interface Member {
  readonly id: number;
  readonly address: number;
  readonly port: number;
  readonly key: string | null;
}

export interface Route {
  readonly prefix: number;
  readonly mask: number;
  /** The network it leads to, by name (the data path resolves it when the tables come). */
  readonly network: string;
  readonly nextHop: number;
}

export interface Route6 {
  readonly prefix: Prefix6;
  readonly network: string;
}

export interface NetworkTables {
  /** The MTU asked for (the data path caps it at what the underlay allows); undefined: the
   * largest the underlay allows (1500 on a provider network). */
  readonly mtu: number | undefined;
  readonly members: readonly Member[];
  readonly pins: PinTable;
  /** A local pin's id -> the port's name (holes where a port went). */
  readonly locals: ReadonlyArray<string | undefined>;
  /** The ARP answers (null: none; ARP is flooded like any frame). */
  readonly arp: AddressTable | null;
  /** The ND answers, by RFC 5952 text, and the same for routing into the network. */
  readonly nd: ReadonlyMap<string, MacNumber> | null;
  readonly nd6: Neighbors6 | null;
  /** Longest prefix first. */
  readonly routes: readonly Route[];
  readonly routes6: readonly Route6[];
  /** The router's addresses on this network. */
  readonly gateways: ReadonlyArray<{ readonly address: number; readonly mask: number }>;
  /** What the router advertisements say (null: none are sent). */
  readonly ipv6: { readonly prefix: Uint8Array; readonly prefixLength: number; readonly routed: boolean; readonly dns: readonly Uint8Array[] } | null;
  /** The way out: a router's external gateway on this host, a member host holding it, or
   * none. */
  readonly external: { readonly router: string } | { readonly member: number } | null;
}

export const EMPTY_TABLES: NetworkTables = {
  mtu: undefined, members: [], pins: PinTable.EMPTY, locals: [], arp: null, nd: null, nd6: null,
  routes: [], routes6: [], gateways: [], ipv6: null, external: null,
};

const maskOf = (length: number) => (length === 0 ? 0 : (0xffff_ffff << (32 - length)) >>> 0);

/**
 * Builds a network's tables, one change at a time, and `build()`s a new immutable version
 * holding them: only what changed since the last build is made again. One builder per
 * network, kept as long as the network is (member and local ids are its own).
 */
export class TableBuilder {
  private last: NetworkTables = EMPTY_TABLES;
  private next: { -readonly [K in keyof NetworkTables]?: NetworkTables[K] } = {};
  private readonly memberByEndpoint = new Map<string, Member>();
  private nextMemberId = 0;
  private readonly localIds = new Map<string, number>();
  private readonly pinChanges = new Map<MacNumber, number>();
  private readonly arpChanges = new Map<number, MacNumber | null>();
  private arpOn = false;
  private nd: Map<string, MacNumber> | null = null;
  private ndChanged = false;

  /** The member hosts, whole (they are few: the hosts of the network). */
  members(list: ReadonlyArray<{ address: number | string; port: number; key?: string | null }>): this {
    const seen = new Set<string>();
    const members: Member[] = [];
    for (const r of list) {
      const address = typeof r.address === 'string' ? parseIpv4(r.address) : r.address;
      const endpoint = `${address}:${r.port}`;
      if (seen.has(endpoint)) continue;
      seen.add(endpoint);
      const key = r.key ?? null;
      let m = this.memberByEndpoint.get(endpoint);
      if (!m || m.key !== key) {
        m = { id: m?.id ?? this.nextMemberId++, address, port: r.port, key };
        this.memberByEndpoint.set(endpoint, m);
      }
      members.push(m);
    }
    for (const endpoint of [...this.memberByEndpoint.keys()]) if (!seen.has(endpoint)) this.memberByEndpoint.delete(endpoint);
    const old = this.last.members;
    if (members.length !== old.length || members.some((m, i) => m !== old[i])) this.next.members = members;
    return this;
  }

  /** The member at address:port, if it is one. */
  member(address: number | string, port: number): Member | undefined {
    return this.memberByEndpoint.get(`${typeof address === 'string' ? parseIpv4(address) : address}:${port}`);
  }

  /** Pins `mac` behind the member host at address:port; false (nothing pinned) when there
   * is no such member. */
  pinRemote(mac: MacNumber, address: number | string, port: number): boolean {
    const m = this.member(address, port);
    if (!m) return false;
    this.pinChanges.set(mac, m.id);
    return true;
  }

  /** Pins `mac` to this host's port `name`: learning never moves it, and a frame claiming it
   * from elsewhere is dropped (while that port is on the network). */
  pinLocal(mac: MacNumber, name: string): this {
    let id = this.localIds.get(name);
    if (id === undefined) {
      id = this.localIds.size;
      this.localIds.set(name, id);
      const locals = [...(this.next.locals ?? this.last.locals)];
      locals[id] = name;
      this.next.locals = locals;
    }
    this.pinChanges.set(mac, localPin(id));
    return this;
  }

  unpin(mac: MacNumber): this {
    this.pinChanges.set(mac, NO_PIN);
    return this;
  }

  /** Whether ARP and ND are answered from the tables at all (off: flooded). */
  answering(on: boolean): this {
    this.arpOn = on;
    if (!on) {
      this.arpChanges.clear();
      this.next.arp = null;
      if (this.nd !== null) this.ndChanged = true;
      this.nd = null;
      return this;
    }
    if (('arp' in this.next ? this.next.arp : this.last.arp) === null) this.next.arp = AddressTable.EMPTY;
    if (this.nd === null) {
      this.nd = new Map();
      this.ndChanged = true;
    }
    return this;
  }

  /** Answers ARP for `ip` with `mac` (null: no more). Turns answering on. */
  arp(ip: number | string, mac: MacNumber | null): this {
    if (!this.arpOn) this.answering(true);
    this.arpChanges.set(typeof ip === 'string' ? parseIpv4(ip) : ip, mac);
    return this;
  }

  /** Answers neighbour solicitations for `address` (IPv6 text) with `mac` (null: no more). */
  ndp(address: string, mac: MacNumber | null): this {
    if (!this.arpOn) this.answering(true);
    const text = formatIpv6(parseIpv6(address));
    if (mac === null ? this.nd!.delete(text) : this.nd!.get(text) !== mac) {
      if (mac !== null) this.nd!.set(text, mac);
      this.ndChanged = true;
    }
    return this;
  }

  mtu(mtu: number | undefined): this {
    if (mtu !== (this.next.mtu ?? this.last.mtu)) this.next.mtu = mtu;
    return this;
  }

  /** The router's routes from this network (CIDR text, IPv4 or IPv6), whole. */
  routes(routes: ReadonlyArray<{ cidr: string; network: string; nextHop?: string }>): this {
    this.next.routes6 = routes.filter((r) => r.cidr.includes(':')).map((r) => ({ prefix: Prefix6.parse(r.cidr), network: r.network }))
      .sort((a, b) => b.prefix.length - a.prefix.length);
    this.next.routes = routes.filter((r) => !r.cidr.includes(':')).map((r) => {
      const [addr, len] = r.cidr.split('/');
      const mask = maskOf(Number(len));
      return { prefix: (parseIpv4(addr) & mask) >>> 0, mask, network: r.network, nextHop: r.nextHop ? parseIpv4(r.nextHop) : 0 };
    }).sort((a, b) => b.mask - a.mask);
    return this;
  }

  /** The router's addresses on this network (CIDR text), whole. */
  gateways(gateways: readonly string[]): this {
    this.next.gateways = gateways.map((g) => {
      const [addr, len] = g.split('/');
      return { address: parseIpv4(addr), mask: maskOf(Number(len ?? 32)) };
    });
    return this;
  }

  ipv6(ipv6: { prefix: string; dns: readonly string[]; routed: boolean } | null): this {
    if (ipv6 === null) {
      this.next.ipv6 = null;
      return this;
    }
    const [addr, len] = ipv6.prefix.split('/');
    this.next.ipv6 = { prefix: parseIpv6(addr), prefixLength: Number(len), routed: ipv6.routed, dns: ipv6.dns.map(parseIpv6) };
    return this;
  }

  /** The way out: through `router`'s gateway on this host, or to the member host at
   * address:port that holds it (which must be a member: false if not), or none. */
  external(to: { router: string } | { address: number | string; port: number } | null): boolean {
    if (to === null || 'router' in to) {
      this.next.external = to === null ? null : { router: to.router };
      return true;
    }
    const m = this.member(to.address, to.port);
    if (!m) return false;
    this.next.external = { member: m.id };
    return true;
  }

  /** The tables as they are now: what changed since the last build is made again, the rest
   * shared with it (the very same tables when nothing changed). */
  build(): NetworkTables {
    // Nothing changed since the last build: the same tables.
    if (Object.keys(this.next).length === 0 && this.pinChanges.size === 0 && this.arpChanges.size === 0 && !this.ndChanged) return this.last;
    const t: NetworkTables = { ...this.last, ...this.next };
    const pins = this.pinChanges.size > 0 ? t.pins.with(this.pinChanges) : t.pins;
    const arp = t.arp !== null && this.arpChanges.size > 0 ? t.arp.with(this.arpChanges) : t.arp;
    let { nd, nd6 } = t;
    if (this.ndChanged) {
      nd = this.nd === null ? null : new Map(this.nd);
      nd6 = null;
      if (nd !== null) {
        nd6 = new Neighbors6();
        for (const [address, mac] of nd) nd6.set(parseIpv6(address), mac);
      }
    }
    this.last = Object.freeze({ ...t, pins, arp, nd, nd6 });
    this.next = {};
    this.pinChanges.clear();
    this.arpChanges.clear();
    this.ndChanged = false;
    return this.last;
  }
}
