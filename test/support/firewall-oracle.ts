/**
 * The security groups' rules as the firewall checked them before they were compiled
 * (src/datapath/rule-table.ts): one linear scan for the first rule that matches. Kept only
 * as the oracle of the compiled table's property test and of bench/firewall.ts.
 */
import fc from 'fast-check';
import { AddressSet, type FirewallRule, type Prefix } from '../../src/datapath/firewall.js';
// One rule's check is the same in both: what the compiled table changes is which rules it
// checks, and in what order.
import { ruleMatches } from '../../src/datapath/rule-table.js';

/** The first rule allowing the connection, by linear scan (the firewall's old `allowed`). */
export function firstMatch(rules: readonly FirewallRule[], inbound: boolean, ipv6: boolean, protocol: number, localPort: number, remotePort: number, icmpType: number, icmpCode: number, remote: Uint32Array): FirewallRule | null {
  const want = inbound ? 'ingress' : 'egress';
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r];
    if (rule.direction !== want || rule.ipv6 !== ipv6) continue;
    if (ruleMatches(rule, protocol, inbound ? localPort : remotePort, icmpType, icmpCode, remote)) return rule;
  }
  return null;
}

// Small domains, so rules overlap and connections hit them: first match is then what counts.
const portArb = fc.oneof(fc.constantFrom(0, 1, 22, 53, 79, 80, 81, 443, 1023, 1024, 8080, 65534, 65535), fc.integer({ min: 0, max: 65535 }));
const protocolArb = fc.constantFrom(-1, 1, 6, 17, 58, 47);
const addrArb = fc.constantFrom(0x0a000001, 0x0a000002, 0x0a0000ff, 0x0a000100, 0xc0000209).map((a) => new Uint32Array([0, 0, 0, a]));
const prefixArb: fc.Arbitrary<Prefix> = fc.tuple(addrArb, fc.constantFrom(0, 8, 24, 31, 32)).map(([w, len]) => ({ words: w, length: 96 + len }));

export const ruleArb: fc.Arbitrary<Omit<FirewallRule, 'source'>> = fc.record({
  direction: fc.constantFrom('ingress' as const, 'egress' as const),
  ipv6: fc.boolean(),
  protocol: protocolArb,
  ports: fc.oneof(fc.constant(null), portArb.map((p) => [p, p] as const), fc.tuple(portArb, portArb)),
  icmpType: fc.constantFrom(-1, -1, 0, 3, 8, 128),
  icmpCode: fc.constantFrom(-1, -1, 0, 1),
  remote: fc.oneof(fc.constant(null), fc.array(prefixArb, { minLength: 1, maxLength: 2 })),
  members: fc.oneof(fc.constant(null), fc.array(prefixArb, { maxLength: 3 })),
}).map(({ ports, members, ...r }) => ({
  ...r,
  // Ranges both ways round: a backwards range matches nothing, in either.
  portMin: ports === null ? -1 : ports[0],
  portMax: ports === null ? -1 : ports[1],
  remoteSet: members === null ? null : new AddressSet(members),
}));

/** A rule set: each rule named by its place, as `group g, rule n` would be. */
export const ruleSetArb: fc.Arbitrary<FirewallRule[]> = fc.array(ruleArb, { maxLength: 30 }).map((rs) => rs.map((r, i) => ({ ...r, source: `rule ${i}` })));

export const tupleArb = fc.record({
  inbound: fc.boolean(),
  ipv6: fc.boolean(),
  protocol: fc.constantFrom(1, 6, 17, 58, 47, 132),
  localPort: portArb,
  remotePort: portArb,
  icmpType: fc.constantFrom(-1, 0, 3, 8, 128),
  icmpCode: fc.constantFrom(-1, 0, 1),
  remote: addrArb,
});
