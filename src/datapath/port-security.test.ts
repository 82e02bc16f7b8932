import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseIpv6, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { Icmpv6Repr } from '../wire/icmpv6.js';
import { Drop } from './counters.js';
import { Flow, parseFlow } from './flow.js';
import { PortSecurity } from './port-security.js';
import { BOOT_MAC, DAD_SOLICITATION, MLD_REPORT_LINK_LOCAL, MLD_REPORT_UNSPECIFIED } from './boot-frames.js';

const MAC = parseMac('02:00:00:00:00:01');
const OTHER = parseMac('02:00:00:00:00:02');
const VRRP = parseMac('00:00:5e:00:01:01');
const ME = parseIpv4('10.0.0.1');
const sec = new PortSecurity([MAC, VRRP], ['10.0.0.1', '10.0.5.0/24', 'fd00::1']);
/** Port security's answer for a frame, given its flow key as `inside` parses it first. */
const checkWith = (s: PortSecurity, frame: Uint8Array) => {
  const flow = new Flow();
  assert.equal(parseFlow(frame, 0, frame.length, flow), -1, 'a whole frame');
  return s.check(frame, 0, flow);
};
const check = (frame: Uint8Array) => checkWith(sec, frame);
const udp = (mac: number, src: number, sport: number, dport: number) => compose.ethernet(0xffffffffffff, mac, EtherType.Ipv4, compose.udpV4(src, 0xffffffff, sport, dport, new Uint8Array(8)));
const v6 = (src: string, repr: Icmpv6Repr, mac = MAC) => compose.ethernet(0x333300000001, mac, EtherType.Ipv6, compose.icmpv6(parseIpv6(src), parseIpv6('ff02::1'), repr));
const na = (target: string, lladdr: number) => new Icmpv6Repr(136, 0, 0x6000_0000, new Uint8Array([...parseIpv6(target), 2, 1, ...[5, 4, 3, 2, 1, 0].map((i) => Math.floor(lladdr / 2 ** (8 * i)) & 0xff)]));

test('port security: the port\'s MACs and addresses pass; anything else is refused under its own reason', () => {
  assert.equal(check(udp(MAC, ME, 5000, 53)), -1);
  assert.equal(check(udp(MAC, parseIpv4('10.0.5.77'), 5000, 53)), -1, 'an allowed prefix');
  assert.equal(check(udp(VRRP, ME, 5000, 53)), -1, 'an allowed pair\'s MAC');
  assert.equal(check(udp(OTHER, ME, 5000, 53)), Drop['spoofed-mac']);
  assert.equal(check(udp(MAC, parseIpv4('10.0.0.2'), 5000, 53)), Drop['spoofed-ip']);
  assert.equal(check(udp(MAC, 0, 68, 67)), -1, 'a DHCP client without an address');
  assert.equal(check(udp(MAC, 0, 5000, 67)), Drop['spoofed-ip'], 'only DHCP may come from 0.0.0.0');
  assert.equal(check(udp(MAC, ME, 67, 68)), Drop['dhcp-server']);
  const arp = (senderMac: number, senderIp: number) => compose.ethernet(0xffffffffffff, MAC, EtherType.Arp, compose.arp(1, senderMac, senderIp, 0, parseIpv4('10.0.0.9')));
  assert.equal(check(arp(MAC, ME)), -1);
  assert.equal(check(arp(MAC, 0)), -1, 'an ARP probe');
  assert.equal(check(arp(MAC, parseIpv4('10.0.0.2'))), Drop['spoofed-arp']);
  assert.equal(check(arp(OTHER, ME)), Drop['spoofed-arp'], 'the sender MAC is the frame\'s');
  // IPv6: its address, its MACs' link-local addresses, :: for DAD; no RAs, no foreign NAs.
  const echo = new Icmpv6Repr(128, 0, 0, new Uint8Array(4));
  assert.equal(check(v6('fd00::1', echo)), -1);
  assert.equal(check(v6('fe80::ff:fe00:1', echo)), -1, 'the link-local address of its MAC');
  assert.equal(check(v6('fe80::ff:fe00:2', echo)), Drop['spoofed-ip']);
  assert.equal(check(v6('fd00::1', new Icmpv6Repr(134, 0, 0x4000_0708, new Uint8Array(8)))), Drop['router-advertisement']);
  assert.equal(check(v6('fd00::1', na('fd00::1', MAC))), -1);
  assert.equal(check(v6('fd00::1', na('fd00::2', MAC))), Drop['spoofed-nd'], 'an advertisement for a neighbour\'s address');
  assert.equal(check(v6('fd00::1', na('fd00::1', OTHER))), Drop['spoofed-nd'], 'a link-layer option naming another MAC');
  const dad = new Icmpv6Repr(135, 0, 0, new Uint8Array([...parseIpv6('fd00::1')]));
  assert.equal(check(v6('::', dad)), -1, 'duplicate address detection');
  assert.equal(check(v6('::', echo)), Drop['spoofed-ip']);
  // Other EtherTypes: refused, unless the port lists them; then they pass with the MAC checked.
  const experimental = (src: number) => compose.ethernet(0xffffffffffff, src, 0x88b5, new Uint8Array(46));
  assert.equal(check(experimental(MAC)), Drop['ethertype-not-allowed']);
  assert.equal(check(compose.ethernet(0x0180c2000000, MAC, 38, new Uint8Array(46))), Drop['ethertype-not-allowed'], 'an 802.3 frame (STP) is refused too');
  const listed = new PortSecurity([MAC], ['10.0.0.1'], [0x88b5]);
  assert.equal(checkWith(listed, experimental(MAC)), -1, 'listed in allowedEtherTypes');
  assert.equal(checkWith(listed, experimental(OTHER)), Drop['spoofed-mac'], 'still from the port\'s MAC only');
  assert.equal(checkWith(listed, compose.ethernet(0xffffffffffff, MAC, 0x88cc, new Uint8Array(46))), Drop['ethertype-not-allowed'], 'not listed');
  // What `weft trace` says of each refusal.
  assert.equal(listed.explain(Drop['ethertype-not-allowed']), 'the port sends IPv4, IPv6 and ARP, and EtherType 0x88b5');
  assert.equal(sec.explain(Drop['ethertype-not-allowed']), 'the port sends IPv4, IPv6 and ARP only (its allowedEtherTypes list no other)');
  assert.equal(listed.explain(Drop['spoofed-ip']), 'the port sends only as 02:00:00:00:00:01 from 10.0.0.1');
});

test('port security: a booting VM\'s IPv6 frames (DAD and MLD reports from ::, behind a hop-by-hop header) are not spoofs; a report from another\'s address is', () => {
  const boot = new PortSecurity([BOOT_MAC], ['10.10.0.1']);
  const at = (f: Uint8Array) => checkWith(boot, f);
  assert.equal(at(DAD_SOLICITATION), -1);
  assert.equal(at(MLD_REPORT_UNSPECIFIED), -1);
  assert.equal(at(MLD_REPORT_LINK_LOCAL), -1);
  const forged = MLD_REPORT_LINK_LOCAL.slice();
  forged[14 + 8 + 15] = 0x09; // fe80::5746:ff:fe00:9, not the port's
  assert.equal(at(forged), Drop['spoofed-ip']);
  const other = MLD_REPORT_UNSPECIFIED.slice();
  other[14 + 40 + 8] = 128; // an echo request behind the hop-by-hop header, from ::
  assert.equal(at(other), Drop['spoofed-ip'], 'only DAD and listener reports come from ::');
});
