import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { TcpRepr } from '../wire/tcp.js';
import { Drop, isExpectedDrop } from './counters.js';
import { DAD_SOLICITATION, MLD_REPORT_LINK_LOCAL, MLD_REPORT_UNSPECIFIED } from './boot-frames.js';
import fc from 'fast-check';
import { AddressSet, compileRuleTable, Firewall, type FirewallRule } from './firewall.js';
import { firstMatch, ruleSetArb, tupleArb } from '../../test/support/firewall-oracle.js';
import { Flow, parseFlow } from './flow.js';

const VM = parseIpv4('10.0.0.1');
const PEER = parseIpv4('10.0.0.2');
const FAR = parseIpv4('192.0.2.9');
const mac = parseMac('02:00:00:00:00:01');
const v4 = (ip: number, length = 32) => ({ words: new Uint32Array([0, 0, 0, ip]), length: 96 + length });
const rule = (r: Partial<FirewallRule> & Pick<FirewallRule, 'direction'>): FirewallRule => ({ ipv6: false, protocol: -1, portMin: -1, portMax: -1, icmpType: -1, icmpCode: -1, remote: null, remoteSet: null, ...r });
const tcp = (src: number, dst: number, sport: number, dport: number, flags: number) => compose.ethernet(mac, mac, EtherType.Ipv4, compose.tcpV4(src, dst, new TcpRepr(sport, dport, 1, 1, flags, 1000)));
const udp = (src: number, dst: number, sport: number, dport: number) => compose.ethernet(mac, mac, EtherType.Ipv4, compose.udpV4(src, dst, sport, dport, new Uint8Array(4)));
/** The frame's flow key, as `inside` or `toPort` parse it before the groups look. */
const flowOf = (f: Uint8Array) => {
  const flow = new Flow();
  assert.equal(parseFlow(f, 0, f.length, flow), -1, 'a whole frame');
  return flow;
};
const SYN = 0x02;
const SYNACK = 0x12;
const ACK = 0x10;

test('security groups: what a rule allows opens a connection; its replies pass without one; nothing else comes in', () => {
  // The default group's shape: all out; in, only tcp/22 from 10.0.0.0/24.
  const fw = new Firewall(8);
  fw.setRules([rule({ direction: 'egress' }), rule({ direction: 'ingress', protocol: 6, portMin: 22, portMax: 22, remote: [v4(parseIpv4('10.0.0.0'), 24)] })]);
  const out = (f: Uint8Array) => fw.egress(f, flowOf(f), 1000);
  const inn = (f: Uint8Array, now = 1000) => fw.ingress(f, flowOf(f), now);
  // Out and back: the reply of a connection the VM opened.
  assert.equal(out(tcp(VM, FAR, 40000, 443, SYN)), -1);
  assert.equal(inn(tcp(FAR, VM, 443, 40000, SYNACK)), -1);
  assert.equal(inn(tcp(FAR, VM, 443, 40001, SYNACK)), Drop['sg-refused'], 'not that connection');
  // In: port 22 from the subnet only, and only with a SYN.
  assert.equal(inn(tcp(PEER, VM, 5000, 22, SYN)), -1);
  assert.equal(out(tcp(VM, PEER, 22, 5000, SYNACK)), -1);
  assert.equal(inn(tcp(FAR, VM, 5000, 22, SYN)), Drop['sg-refused'], 'from outside the prefix');
  assert.equal(inn(tcp(PEER, VM, 5001, 22, ACK)), Drop['sg-refused'], 'a stray ACK opens nothing');
  assert.equal(inn(tcp(PEER, VM, 5002, 80, SYN)), Drop['sg-refused'], 'another port');
  // UDP: out, and its answer in.
  assert.equal(out(udp(VM, FAR, 5353, 53)), -1);
  assert.equal(inn(udp(FAR, VM, 53, 5353)), -1);
  assert.equal(inn(udp(FAR, VM, 53, 5354)), Drop['sg-refused']);
  // A remote group: its members' addresses.
  fw.setRules([rule({ direction: 'egress' }), rule({ direction: 'ingress', remoteSet: new AddressSet([{ words: new Uint32Array([0, 0, 0, PEER]), length: 128 }]) })]);
  assert.equal(inn(udp(PEER, VM, 1, 9)), -1);
  assert.equal(inn(udp(FAR, VM, 1, 9)), Drop['sg-refused']);
  // A member's allowed address pair may be a prefix: every address in it matches.
  fw.setRules([rule({ direction: 'egress' }), rule({ direction: 'ingress', remoteSet: new AddressSet([{ words: new Uint32Array([0, 0, 0, (FAR & 0xffffff00) >>> 0]), length: 96 + 24 }]) })]);
  assert.equal(inn(udp(FAR, VM, 1, 9)), -1);
  assert.equal(inn(udp(((FAR ^ 0x100) >>> 0), VM, 1, 9)), Drop['sg-refused'], 'outside the prefix');
  // DHCP to the VM and ARP are never filtered.
  assert.equal(inn(udp(parseIpv4('10.0.0.254'), VM, 67, 68)), -1);
  const arp = compose.ethernet(mac, mac, EtherType.Arp, compose.arpRequest(mac, PEER, VM));
  assert.equal(inn(arp), -1);
  // An ICMP error about a tracked connection passes (path MTU discovery); another does not.
  const quoted = compose.tcpV4(VM, FAR, new TcpRepr(40000, 443, 1, 1, ACK, 1000)).subarray(0, 28);
  const tooBig = (q: Uint8Array) => compose.ethernet(mac, mac, EtherType.Ipv4, compose.ipv4(FAR, VM, 1, new Uint8Array([3, 4, 0, 0, 0, 0, 5, 0xdc, ...q])));
  assert.equal(inn(tooBig(quoted)), -1);
  assert.equal(inn(tooBig(compose.tcpV4(VM, FAR, new TcpRepr(40009, 443, 1, 1, ACK, 1000)).subarray(0, 28))), Drop['sg-refused']);
  // Connections time out: an unanswered UDP flow after 30 s.
  fw.expire(1000 + 31_000);
  assert.equal(inn(udp(FAR, VM, 53, 5353), 1000 + 31_000), -1, 'answered: kept for 3 minutes');
});

test('security groups: a rule change stops what it no longer allows at its next packet, and keeps the rest', () => {
  const fw = new Firewall(8);
  const ssh = rule({ direction: 'ingress', protocol: 6, portMin: 22, portMax: 22 });
  const web = rule({ direction: 'ingress', protocol: 6, portMin: 80, portMax: 80 });
  fw.setRules([ssh, web]);
  const inn = (f: Uint8Array) => fw.ingress(f, flowOf(f), 1000);
  const out = (f: Uint8Array) => fw.egress(f, flowOf(f), 1000);
  assert.equal(inn(tcp(PEER, VM, 5000, 22, SYN)), -1);
  assert.equal(inn(tcp(PEER, VM, 5001, 80, SYN)), -1);
  fw.setRules([web]);
  assert.equal(out(tcp(VM, PEER, 22, 5000, SYNACK)), Drop['sg-revoked'], 'ssh is no longer allowed');
  assert.equal(inn(tcp(PEER, VM, 5000, 22, ACK)), Drop['sg-refused'], 'and is forgotten');
  assert.equal(out(tcp(VM, PEER, 80, 5001, SYNACK)), -1, 'web carries on');
});

test('security groups: a full table refuses new connections and keeps the tracked ones', () => {
  const fw = new Firewall(2);
  fw.setRules([rule({ direction: 'egress' })]);
  const out = (f: Uint8Array) => fw.egress(f, flowOf(f), 1000);
  assert.equal(out(udp(VM, FAR, 1, 53)), -1);
  assert.equal(out(udp(VM, FAR, 2, 53)), -1);
  assert.equal(out(udp(VM, FAR, 3, 53)), Drop['conntrack-full']);
  assert.equal(fw.refused, 1);
  assert.equal(fw.ingress(udp(FAR, VM, 53, 1), flowOf(udp(FAR, VM, 53, 1)), 1000), -1);
});

test('security groups: multicast listener reports are dropped both ways as expected, not refused; DAD passes', () => {
  const fw = new Firewall(16);
  fw.setRules([rule({ direction: 'egress', ipv6: true }), rule({ direction: 'ingress', ipv6: true, remote: [{ words: new Uint32Array([0xfd000000, 0, 0, 0]), length: 8 }] })]);
  for (const f of [MLD_REPORT_UNSPECIFIED, MLD_REPORT_LINK_LOCAL]) {
    assert.equal(fw.egress(f, flowOf(f), 0), Drop['listener-report']);
    assert.equal(fw.ingress(f, flowOf(f), 0), Drop['listener-report']);
  }
  assert.equal(fw.egress(DAD_SOLICITATION, flowOf(DAD_SOLICITATION), 0), -1);
  assert.equal(fw.ingress(DAD_SOLICITATION, flowOf(DAD_SOLICITATION), 0), -1);
  assert.equal(fw.size, 0, 'nothing tracked');
  assert.ok(isExpectedDrop('listener-report') && !isExpectedDrop('sg-refused') && !isExpectedDrop('spoofed-ip'));
});

test('security groups: the compiled table finds the same rule as a linear scan of the rules, for any rules and any connection', () => {
  fc.assert(fc.property(ruleSetArb, fc.array(tupleArb, { minLength: 1, maxLength: 40 }), (rules, tuples) => {
    const table = compileRuleTable(rules);
    for (const q of tuples) {
      const want = firstMatch(rules, q.inbound, q.ipv6, q.protocol, q.localPort, q.remotePort, q.icmpType, q.icmpCode, q.remote);
      const got = table.match(q.inbound, q.ipv6, q.protocol, q.localPort, q.remotePort, q.icmpType, q.icmpCode, q.remote);
      if (got !== want) return false;
    }
    return true;
  }), { numRuns: 500 });
});

test('security groups: one rule array is compiled once, and a port given it uses that table', () => {
  const rules = [rule({ direction: 'ingress', protocol: 6, portMin: 22, portMax: 22 })];
  const table = compileRuleTable(rules);
  assert.equal(compileRuleTable(rules), table);
  assert.notEqual(compileRuleTable([...rules]), table, 'another array is another table');
  const fw = new Firewall(8);
  fw.setRules(rules);
  assert.equal(fw.table, table);
  const f = tcp(PEER, VM, 5000, 22, SYN);
  assert.equal(fw.ingress(f, flowOf(f), 0), -1);
  assert.equal(fw.lastRule, rules[0]);
});
