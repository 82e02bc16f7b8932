/**
 * Security groups, one stage of the data path: a stateful firewall per port, enforced on the
 * port's own host, egress as the VM sends (in `inside`) and ingress as a frame is delivered
 * to it (in `toPort`), so it holds between VMs on one host, across hosts, through the router
 * and from the outside alike.
 *
 * Rules only allow. A packet that opens a connection must match a rule of its direction;
 * once it has, the connection is tracked in the port's table and its packets both ways pass
 * without a rule: TCP opens only with a SYN (a stray ACK opens nothing) and is tracked
 * through its handshake and close; UDP and ICMP echo by flow. ICMP errors about a tracked
 * connection (unreachable, packet too big, time exceeded) pass, so path MTU discovery keeps
 * working. ARP, neighbour discovery, DHCP to the VM and router advertisements are never
 * filtered (they are the network's own).
 *
 * Rules change live: the firewall's generation moves on, and each connection is checked
 * against the new rules at its next packet; one they no longer allow is removed and its
 * packet dropped ('sg-revoked'), one they still allow carries on untouched. The table is
 * bounded per port: when full, new connections are refused ('conntrack-full') and tracked
 * ones carry on. Timeouts: TCP 30 s opening, 2 h established, 2 min closing, 10 s after a
 * reset; UDP 30 s, 3 min once answered; ICMP 30 s.
 */
import { formatIpv4, readU16, readU32 } from '../wire/bytes.js';
import { Drop } from './counters.js';
import type { Flow } from './flow.js';
import { compileRuleTable, inPrefixes, type RuleTable } from './rule-table.js';

export { compileRuleTable, RuleTable } from './rule-table.js';

const NONE = -1;
const TCP = 6;
const UDP = 17;
const ICMP = 1;
const ICMP6 = 58;

const OPENING_MS = 30_000;
const ESTABLISHED_MS = 7_200_000;
const CLOSING_MS = 120_000;
const RESET_MS = 10_000;
const UDP_MS = 30_000;
const UDP_ANSWERED_MS = 180_000;
const ICMP_MS = 30_000;

/** A prefix in the firewall's form: four words (IPv4 in the last, as ::a.b.c.d) and a length of 0..128. */
export interface Prefix {
  words: Uint32Array;
  length: number;
}

/**
 * The addresses of a security group's ports: what a rule whose remote is that group
 * matches. Shared by every rule naming the group on this host, and swapped whole when its
 * members change. Single addresses are hashed; prefixes (an allowed address pair may be
 * one) are few and checked in turn. Nothing is allocated per packet.
 */
export class AddressSet {
  private readonly buckets = new Map<number, Uint32Array[]>();
  private readonly prefixes: Prefix[] = [];

  constructor(entries: Prefix[]) {
    for (const e of entries) {
      if (e.length < 128) {
        this.prefixes.push(e);
        continue;
      }
      const key = fold(e.words);
      let b = this.buckets.get(key);
      if (!b) this.buckets.set(key, (b = []));
      b.push(e.words);
    }
  }

  has(addr: Uint32Array): boolean {
    const b = this.buckets.get(fold(addr));
    if (b !== undefined) {
      for (let i = 0; i < b.length; i++) {
        const w = b[i];
        if (w[0] === addr[0] && w[1] === addr[1] && w[2] === addr[2] && w[3] === addr[3]) return true;
      }
    }
    return this.prefixes.length > 0 && inPrefixes(addr, this.prefixes);
  }
}

function fold(w: Uint32Array): number {
  return (Math.imul(w[0] ^ w[2], 0x9e3779b1) ^ Math.imul(w[1] ^ w[3], 0x85ebca77)) >>> 0;
}

/** A rule, in the data path's form. Protocol -1: any; ports and ICMP fields -1: any. */
export interface FirewallRule {
  direction: 'ingress' | 'egress';
  ipv6: boolean;
  protocol: number;
  portMin: number;
  portMax: number;
  icmpType: number;
  icmpCode: number;
  /** Remote prefixes as [words (4), prefix length] (IPv4 in the last word); null: any. */
  remote: Prefix[] | null;
  /** A remote group's members (instead of prefixes); null: none named. */
  remoteSet: AddressSet | null;
  /** What a person calls it (`group web, rule 2`), for `weft trace`. */
  source?: string;
}

/** The packet being looked at: its 5-tuple from the port's side, as plain fields. */
class Tuple {
  ipv6 = false;
  protocol = 0;
  readonly local = new Uint32Array(4);
  readonly remote = new Uint32Array(4);
  localPort = 0;
  remotePort = 0;
  tcpFlags = 0;
  /** ICMP type and code (-1 when not ICMP). */
  icmpType = -1;
  icmpCode = -1;
  /** Coming in to the VM (else going out of it). */
  inbound = false;
}

export class Firewall {
  generation = 0;
  /** The rules, compiled (rule-table.ts): a new connection is checked against the few that can match. */
  table: RuleTable = compileRuleTable([]);
  /** New connections refused because the table was full. */
  refused = 0;
  readonly capacity: number;
  private readonly mask: number;
  private readonly keys: Uint32Array; // 10 words an entry: proto|v6, local[4], remote[4], ports
  private readonly state: Uint8Array; // TCP: 0 opening, 1 established, 2 closing, 3 reset; UDP: 0/1 answered
  private readonly origin: Uint8Array; // 0: the VM opened it (egress), 1: the remote did (ingress)
  private readonly expires: Float64Array;
  private readonly gen: Uint32Array;
  private readonly next: Int32Array;
  private readonly buckets: Int32Array;
  private readonly used: Uint8Array;
  private freeHead = 0;
  size = 0;
  private readonly t = new Tuple();
  private readonly q = new Tuple();

  constructor(capacity = 4096) {
    this.capacity = capacity;
    let b = 1;
    while (b < capacity * 2) b *= 2;
    this.mask = b - 1;
    this.keys = new Uint32Array(capacity * 10);
    this.state = new Uint8Array(capacity);
    this.origin = new Uint8Array(capacity);
    this.expires = new Float64Array(capacity);
    this.gen = new Uint32Array(capacity);
    this.used = new Uint8Array(capacity);
    this.next = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.next[i] = i + 1 < capacity ? i + 1 : NONE;
    this.buckets = new Int32Array(b).fill(NONE);
  }

  /** The rule that let the last new connection through (null: none, or it was tracked). */
  lastRule: FirewallRule | null = null;

  /**
   * What the last check decided, in words (for `weft trace`: only asked of a traced probe):
   * the rule that allowed it, that its connection is tracked, or what no rule allows.
   */
  explain(refused: number): string {
    const t = this.t;
    const proto = t.protocol === TCP ? 'tcp' : t.protocol === UDP ? 'udp' : t.protocol === 1 || t.protocol === ICMP6 ? 'icmp' : `protocol ${t.protocol}`;
    const what = t.protocol === TCP || t.protocol === UDP ? `${proto}/${t.inbound ? t.localPort : t.remotePort}` : proto;
    const remote = t.ipv6 ? 'an IPv6 address' : formatIpv4(t.remote[3]);
    if (refused === Drop['sg-refused']) return `no rule of the port's groups allows ${what} ${t.inbound ? 'from' : 'to'} ${remote}`;
    if (refused === Drop['sg-revoked']) return `the rules no longer allow this ${what} connection`;
    if (refused === Drop['conntrack-full']) return `the port's connection table is full (${this.capacity})`;
    if (refused === Drop['listener-report']) return 'a multicast listener report (MLD), for multicast routers: the overlay has none';
    if (this.lastRule === null) return `${what} ${t.inbound ? 'from' : 'to'} ${remote}: a tracked connection, or traffic the network's own protocols need`;
    return `${what} ${t.inbound ? 'from' : 'to'} ${remote} allowed by ${this.lastRule.source ?? 'a rule'}`;
  }

  get rules(): readonly FirewallRule[] {
    return this.table.rules;
  }

  /** Replaces the rules; tracked connections are checked against them at their next packet.
   * The same array again is the same compiled table (compiled once, shared by every port). */
  setRules(rules: readonly FirewallRule[]): void {
    this.setTable(compileRuleTable(rules));
  }

  /** Replaces the rules by a table compiled already (`compileRuleTable`, once per group set). */
  setTable(table: RuleTable): void {
    this.table = table;
    this.generation = (this.generation + 1) >>> 0;
  }

  /** A frame the VM sends, by its flow key (flow.ts: its headers are whole): the drop
   * reason, or -1 to pass. */
  egress(mem: Uint8Array, flow: Flow, now: number): number {
    return this.check(mem, flow, false, now);
  }

  /** A frame for the VM, by its flow key: the drop reason, or -1 to pass. */
  ingress(mem: Uint8Array, flow: Flow, now: number): number {
    return this.check(mem, flow, true, now);
  }

  private check(mem: Uint8Array, flow: Flow, inbound: boolean, now: number): number {
    this.lastRule = null;
    this.t.inbound = inbound;
    if (flow.protocol < 0) return -1; // ARP and the rest
    const t = this.t;
    fromFlow(mem, flow, inbound, t);
    // The network's own: neighbour discovery and RAs, DHCP to the VM.
    if (t.ipv6 && t.protocol === ICMP6 && t.icmpType >= 133 && t.icmpType <= 137) return -1;
    // Multicast listener reports and dones are for multicast routers, which an overlay has
    // none of: every VM sends them at boot. Dropped both ways, counted as expected.
    if (t.ipv6 && t.protocol === ICMP6 && (t.icmpType === 131 || t.icmpType === 132 || t.icmpType === 143)) return Drop['listener-report'];
    if (!t.ipv6 && t.protocol === UDP && ((inbound && t.remotePort === 67 && t.localPort === 68) || (!inbound && t.localPort === 68 && t.remotePort === 67))) return -1;
    // ICMP errors pass when they are about a tracked connection.
    if (isIcmpError(t)) return this.related(mem, flow, inbound, now) ? -1 : inbound ? Drop['sg-refused'] : -1;
    const i = this.find(t);
    if (i !== NONE) {
      if (this.gen[i] !== this.generation) {
        // The rules changed since this connection last passed: does its opener still pass?
        if (!this.allowed(this.origin[i] === 1, t)) {
          this.remove(i);
          return Drop['sg-revoked'];
        }
        this.gen[i] = this.generation;
      }
      this.advance(i, t, inbound === (this.origin[i] === 1), now);
      return -1;
    }
    if (!this.allowed(inbound, t)) return Drop['sg-refused'];
    if (t.protocol === TCP && (t.tcpFlags & 0x12) !== 0x02) return Drop['sg-refused']; // only a SYN opens
    // A connection opens: tracked, except for what needs no reply to be let in.
    if (t.protocol === TCP || t.protocol === UDP || (t.icmpType === 8 && !t.ipv6) || (t.icmpType === 128 && t.ipv6)) {
      if (this.freeHead === NONE) {
        this.refused++;
        return Drop['conntrack-full'];
      }
      const n = this.insert(t, inbound ? 1 : 0);
      this.advance(n, t, true, now);
    }
    return -1;
  }

  /**
   * Whether a rule of the `inbound` direction allows the connection `t` (a tuple is the same
   * from the port's side whichever way its packet goes, so a reply re-checked for its
   * connection's opener needs no turning round; only an echo reply counts as its request).
   */
  private allowed(inbound: boolean, t: Tuple): boolean {
    const icmpType = t.icmpType === 0 && !t.ipv6 ? 8 : t.icmpType === 129 && t.ipv6 ? 128 : t.icmpType;
    const rule = this.table.match(inbound, t.ipv6, t.protocol, t.localPort, t.remotePort, icmpType, t.icmpCode, t.remote);
    if (rule === null) return false;
    this.lastRule = rule;
    return true;
  }

  /** An ICMP error's quoted packet belongs to a tracked connection (seen from our side).
   * The quote is a cut packet by design (a header and 8 bytes, RFC 792), so it is read by
   * the lenient `parseQuote`, not checked like a packet of its own. */
  private related(mem: Uint8Array, flow: Flow, inbound: boolean, now: number): boolean {
    const t = this.t;
    const q = this.q;
    const at = flow.l4 + 8;
    const len = flow.l4Len - 8;
    // The quoted packet went the other way: an error coming in quotes what the VM sent.
    if (len < 0 || !parseQuote(mem, at, len, t.ipv6, !inbound, q)) return false;
    const i = this.find(q);
    if (i === NONE) return false;
    this.expires[i] = Math.max(this.expires[i], now);
    return true;
  }

  private advance(i: number, t: Tuple, fromOpener: boolean, now: number): void {
    if (t.protocol === TCP) {
      let s = this.state[i];
      const f = t.tcpFlags;
      if (f & 0x04) s = 3;
      else if (f & 0x01) s = s === 3 ? 3 : 2;
      else if (s === 0 && !fromOpener && (f & 0x12) === 0x12) s = 1;
      this.state[i] = s;
      this.expires[i] = now + (s === 0 ? OPENING_MS : s === 1 ? ESTABLISHED_MS : s === 2 ? CLOSING_MS : RESET_MS);
    } else if (t.protocol === UDP) {
      if (!fromOpener) this.state[i] = 1;
      this.expires[i] = now + (this.state[i] === 1 ? UDP_ANSWERED_MS : UDP_MS);
    } else {
      this.expires[i] = now + ICMP_MS;
    }
  }

  private hash(t: Tuple): number {
    let h = Math.imul(t.protocol + (t.ipv6 ? 256 : 0), 0x9e3779b1);
    for (let k = 0; k < 4; k++) h = Math.imul(h ^ t.local[k], 0x85ebca6b) ^ Math.imul(t.remote[k], 0xc2b2ae35);
    h = Math.imul(h ^ ((t.localPort << 16) | t.remotePort), 0x27d4eb2f);
    return (h ^ (h >>> 15)) & this.mask;
  }

  private find(t: Tuple): number {
    for (let i = this.buckets[this.hash(t)]; i !== NONE; i = this.next[i]) {
      const k = i * 10;
      const keys = this.keys;
      if (keys[k] === (t.protocol | (t.ipv6 ? 256 : 0)) && keys[k + 9] === (((t.localPort << 16) | t.remotePort) >>> 0)
        && keys[k + 1] === t.local[0] && keys[k + 2] === t.local[1] && keys[k + 3] === t.local[2] && keys[k + 4] === t.local[3]
        && keys[k + 5] === t.remote[0] && keys[k + 6] === t.remote[1] && keys[k + 7] === t.remote[2] && keys[k + 8] === t.remote[3]) return i;
    }
    return NONE;
  }

  private insert(t: Tuple, origin: number): number {
    const i = this.freeHead;
    this.freeHead = this.next[i];
    const k = i * 10;
    this.keys[k] = t.protocol | (t.ipv6 ? 256 : 0);
    for (let w = 0; w < 4; w++) {
      this.keys[k + 1 + w] = t.local[w];
      this.keys[k + 5 + w] = t.remote[w];
    }
    this.keys[k + 9] = ((t.localPort << 16) | t.remotePort) >>> 0;
    this.state[i] = 0;
    this.origin[i] = origin;
    this.gen[i] = this.generation;
    this.used[i] = 1;
    const b = this.hash(t);
    this.next[i] = this.buckets[b];
    this.buckets[b] = i;
    this.size++;
    return i;
  }

  private remove(i: number): void {
    // Rebuild the entry's tuple to find its bucket.
    const t = this.q;
    const k = i * 10;
    t.protocol = this.keys[k] & 0xff;
    t.ipv6 = (this.keys[k] & 256) !== 0;
    for (let w = 0; w < 4; w++) {
      t.local[w] = this.keys[k + 1 + w];
      t.remote[w] = this.keys[k + 5 + w];
    }
    t.localPort = this.keys[k + 9] >>> 16;
    t.remotePort = this.keys[k + 9] & 0xffff;
    const b = this.hash(t);
    if (this.buckets[b] === i) this.buckets[b] = this.next[i];
    else for (let j = this.buckets[b]; j !== NONE; j = this.next[j]) if (this.next[j] === i) { this.next[j] = this.next[i]; break; }
    this.used[i] = 0;
    this.next[i] = this.freeHead;
    this.freeHead = i;
    this.size--;
  }

  /** Removes connections whose time is up. Call about once a second. */
  expire(now: number): void {
    for (let i = 0; i < this.capacity; i++) if (this.used[i] === 1 && this.expires[i] <= now) this.remove(i);
  }
}

function isIcmpError(t: Tuple): boolean {
  if (t.ipv6) return t.protocol === ICMP6 && t.icmpType >= 1 && t.icmpType <= 4;
  return t.protocol === ICMP && (t.icmpType === 3 || t.icmpType === 11 || t.icmpType === 12);
}

/**
 * Fills `t` from a frame's flow key, from the port's side: `inbound` means it is going to
 * the VM (the destination is local). A fragment other than the first carries no ports (nor
 * TCP flags, nor an ICMP type): it matches only rules without ports or ICMP fields, no
 * tracked connection (Weft does not reassemble), and opens none if it is TCP (it is no
 * SYN). So a group allowing only tcp/80 lets no later fragment through.
 */
function fromFlow(mem: Uint8Array, flow: Flow, inbound: boolean, t: Tuple): void {
  const ipv6 = flow.ipv6;
  t.ipv6 = ipv6;
  t.protocol = flow.protocol;
  t.tcpFlags = 0;
  t.icmpType = -1;
  t.icmpCode = -1;
  t.localPort = 0;
  t.remotePort = 0;
  const src = inbound ? t.remote : t.local;
  const dst = inbound ? t.local : t.remote;
  const ip = flow.l3;
  if (ipv6) {
    for (let w = 0; w < 4; w++) {
      src[w] = readU32(mem, ip + 8 + 4 * w);
      dst[w] = readU32(mem, ip + 24 + 4 * w);
    }
  } else {
    src[0] = src[1] = src[2] = 0;
    dst[0] = dst[1] = dst[2] = 0;
    src[3] = readU32(mem, ip + 12);
    dst[3] = readU32(mem, ip + 16);
  }
  if (!flow.laterFragment) readPorts(mem, flow.l4, flow.l4Len, inbound, t);
}

/**
 * Reads the packet an ICMP error quotes into `t`, from the port's side as `fromFlow` does.
 * False when it is too short to say.
 */
function parseQuote(mem: Uint8Array, ip: number, len: number, ipv6: boolean, inbound: boolean, t: Tuple): boolean {
  t.ipv6 = ipv6;
  t.tcpFlags = 0;
  t.icmpType = -1;
  t.icmpCode = -1;
  t.localPort = 0;
  t.remotePort = 0;
  let l4: number;
  let l4Len: number;
  const src = inbound ? t.remote : t.local;
  const dst = inbound ? t.local : t.remote;
  if (ipv6) {
    if (len < 40) return false;
    t.protocol = mem[ip + 6];
    for (let w = 0; w < 4; w++) {
      src[w] = readU32(mem, ip + 8 + 4 * w);
      dst[w] = readU32(mem, ip + 24 + 4 * w);
    }
    l4 = ip + 40;
    l4Len = len - 40;
    // A hop-by-hop header (MLD always has one, RFC 3810 §5): the protocol is behind it.
    if (t.protocol === 0 && l4Len >= 8) {
      const size = (mem[l4 + 1] + 1) * 8;
      t.protocol = mem[l4];
      l4 += size;
      l4Len -= size;
    }
  } else {
    if (len < 20) return false;
    const ihl = (mem[ip] & 0x0f) * 4;
    if (ihl < 20 || len < ihl) return false;
    t.protocol = mem[ip + 9];
    src[0] = src[1] = src[2] = 0;
    dst[0] = dst[1] = dst[2] = 0;
    src[3] = readU32(mem, ip + 12);
    dst[3] = readU32(mem, ip + 16);
    // A later fragment has no ports: seen as the flow's port-less packet.
    if ((readU16(mem, ip + 6) & 0x1fff) !== 0) return true;
    l4 = ip + ihl;
    l4Len = len - ihl;
  }
  readPorts(mem, l4, l4Len, inbound, t);
  return true;
}

/** Ports and TCP flags, or ICMP type, code and echo identifier, of `t.protocol` at l4. */
function readPorts(mem: Uint8Array, l4: number, l4Len: number, inbound: boolean, t: Tuple): void {
  // Ports from the first 4 bytes (all an ICMP error's quote may hold), TCP flags after.
  if ((t.protocol === TCP || t.protocol === UDP) && l4Len >= 4) {
    const sport = readU16(mem, l4);
    const dport = readU16(mem, l4 + 2);
    t.localPort = inbound ? dport : sport;
    t.remotePort = inbound ? sport : dport;
    if (t.protocol === TCP && l4Len >= 14) t.tcpFlags = mem[l4 + 13];
  } else if ((t.protocol === ICMP || t.protocol === ICMP6) && l4Len >= 8) {
    t.icmpType = mem[l4];
    t.icmpCode = mem[l4 + 1];
    // Echo requests and replies are one flow by identifier.
    const echo = t.protocol === ICMP ? t.icmpType === 8 || t.icmpType === 0 : t.icmpType === 128 || t.icmpType === 129;
    if (echo) t.localPort = t.remotePort = readU16(mem, l4 + 4);
  }
}
