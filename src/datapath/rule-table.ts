/**
 * Security-group rules compiled for lookup: per direction and IP version, by protocol, and
 * for TCP and UDP by port, so a new connection is checked only against the rules that can
 * match it (as nebula indexes its firewall), not the whole list.
 *
 * A table is immutable and compiled once per rule array: `compileRuleTable` remembers the
 * table of each array it has seen (by identity, weakly), so ports given the same array
 * share one table. Rule arrays are therefore treated as immutable once compiled.
 *
 * First match is kept: every candidate list holds rule indices in the rules' own order, and
 * each candidate is checked against the whole rule (as a linear scan would), so the rule
 * found, which `weft trace` names, is the first of the array that matches. For TCP and UDP
 * the port space is cut at every rule's bounds into intervals, each with its own list (the
 * port-less and any-protocol rules in it too), found by binary search; an exact port is an
 * interval of one. Other protocols have one list each (their rules and the any-protocol
 * ones). Remote prefixes and address sets are checked last, on the few candidates left.
 * Nothing is allocated per lookup.
 */
import type { FirewallRule, Prefix } from './firewall.js';

const TCP = 6;
const UDP = 17;

/** The rules of one direction and IP version. */
interface Side {
  /** TCP and UDP: interval starts (ascending, the first 0) and each interval's candidates. */
  tcpStarts: Int32Array;
  tcpLists: Int32Array[];
  udpStarts: Int32Array;
  udpLists: Int32Array[];
  /** Other protocols by number: their rules and the any-protocol ones, in order. */
  byProtocol: Map<number, Int32Array>;
  /** The any-protocol rules alone: for a protocol no rule names. */
  any: Int32Array;
}

export class RuleTable {
  /** Egress v4, egress v6, ingress v4, ingress v6. */
  private readonly sides: Side[];

  constructor(readonly rules: readonly FirewallRule[]) {
    this.sides = [];
    for (const direction of ['egress', 'ingress'] as const) {
      for (const ipv6 of [false, true]) this.sides.push(compileSide(rules, direction, ipv6));
    }
  }

  /**
   * The first rule of `inbound`'s direction allowing the connection (null: none). `port` is
   * what the rules' ports name: the VM's port for ingress, the remote's for egress;
   * `localPort`/`remotePort` are the tuple's own (an any-protocol rule with ports checks
   * them as the linear scan did, which for ICMP echo is its identifier).
   */
  match(inbound: boolean, ipv6: boolean, protocol: number, localPort: number, remotePort: number, icmpType: number, icmpCode: number, remote: Uint32Array): FirewallRule | null {
    const side = this.sides[(inbound ? 2 : 0) + (ipv6 ? 1 : 0)];
    const port = inbound ? localPort : remotePort;
    let list: Int32Array;
    if (protocol === TCP) list = side.tcpLists[interval(side.tcpStarts, port)];
    else if (protocol === UDP) list = side.udpLists[interval(side.udpStarts, port)];
    else list = side.byProtocol.get(protocol) ?? side.any;
    const rules = this.rules;
    for (let i = 0; i < list.length; i++) {
      const rule = rules[list[i]];
      if (ruleMatches(rule, protocol, port, icmpType, icmpCode, remote)) return rule;
    }
    return null;
  }
}

/** Whether one rule allows a connection (its direction and IP version already chosen):
 * `port` is what the rules' ports name. */
export function ruleMatches(rule: FirewallRule, protocol: number, port: number, icmpType: number, icmpCode: number, remote: Uint32Array): boolean {
  if (rule.protocol >= 0 && rule.protocol !== protocol) return false;
  if (rule.portMin >= 0 && (port < rule.portMin || port > rule.portMax)) return false;
  if (rule.icmpType >= 0 && rule.icmpType !== icmpType) return false;
  if (rule.icmpCode >= 0 && rule.icmpCode !== icmpCode) return false;
  if (rule.remote !== null && !inPrefixes(remote, rule.remote)) return false;
  return rule.remoteSet === null || rule.remoteSet.has(remote);
}

/** The index of the interval holding `port`: the last start at or below it. */
function interval(starts: Int32Array, port: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= port) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function compileSide(rules: readonly FirewallRule[], direction: 'ingress' | 'egress', ipv6: boolean): Side {
  const mine: number[] = [];
  for (let i = 0; i < rules.length; i++) if (rules[i].direction === direction && rules[i].ipv6 === ipv6) mine.push(i);
  const any = mine.filter((i) => rules[i].protocol < 0);
  const byProtocol = new Map<number, Int32Array>();
  for (const p of new Set(mine.map((i) => rules[i].protocol))) {
    if (p < 0 || p === TCP || p === UDP) continue;
    byProtocol.set(p, Int32Array.from(mine.filter((i) => rules[i].protocol < 0 || rules[i].protocol === p)));
  }
  const [tcpStarts, tcpLists] = ported(rules, mine.filter((i) => rules[i].protocol < 0 || rules[i].protocol === TCP));
  const [udpStarts, udpLists] = ported(rules, mine.filter((i) => rules[i].protocol < 0 || rules[i].protocol === UDP));
  return { tcpStarts, tcpLists, udpStarts, udpLists, byProtocol, any: Int32Array.from(any) };
}

/**
 * The port space cut at every rule's bounds: interval starts and, for each, the rules (in
 * order) whose ports cover it or who name none. Neighbouring intervals with the same list
 * are joined; equal lists are shared.
 */
function ported(rules: readonly FirewallRule[], candidates: number[]): [Int32Array, Int32Array[]] {
  const cuts = new Set<number>([0]);
  for (const i of candidates) {
    const r = rules[i];
    if (r.portMin < 0) continue;
    if (r.portMin <= 65535) cuts.add(Math.max(0, r.portMin));
    if (r.portMax + 1 <= 65535 && r.portMax + 1 > 0) cuts.add(r.portMax + 1);
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const starts: number[] = [];
  const lists: Int32Array[] = [];
  const seen = new Map<string, Int32Array>();
  let last = '';
  for (const s of sorted) {
    // Every port of [s, next cut) is covered by the same rules: s stands for them all.
    const here = candidates.filter((i) => rules[i].portMin < 0 || (s >= rules[i].portMin && s <= rules[i].portMax));
    const key = here.join(',');
    if (starts.length > 0 && key === last) continue;
    last = key;
    let list = seen.get(key);
    if (!list) seen.set(key, (list = Int32Array.from(here)));
    starts.push(s);
    lists.push(list);
  }
  return [Int32Array.from(starts), lists];
}

const compiled = new WeakMap<readonly FirewallRule[], RuleTable>();

/**
 * The compiled table of a rule array: compiled at its first call, the same table after for
 * the same array (so compile once per group set and hand every port that array).
 */
export function compileRuleTable(rules: readonly FirewallRule[]): RuleTable {
  let table = compiled.get(rules);
  if (!table) compiled.set(rules, (table = new RuleTable(rules)));
  return table;
}

export function inPrefixes(addr: Uint32Array, prefixes: Prefix[]): boolean {
  outer: for (let p = 0; p < prefixes.length; p++) {
    const { words, length } = prefixes[p];
    for (let w = 0; w < 4; w++) {
      const bits = Math.max(0, Math.min(32, length - 32 * w));
      if (bits === 0) continue;
      const mask = bits === 32 ? 0xffff_ffff : (0xffff_ffff << (32 - bits)) >>> 0;
      if (((addr[w] & mask) >>> 0) !== ((words[w] & mask) >>> 0)) continue outer;
    }
    return true;
  }
  return false;
}
