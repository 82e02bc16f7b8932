import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseIpv6, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { Icmpv6Repr } from '../wire/icmpv6.js';
import { compileFilter, FilterError } from './capture-filter.js';

const A = parseIpv4('10.10.0.1');
const B = parseIpv4('10.10.0.2');
const mac = parseMac('02:00:00:00:00:01');
const udp = compose.ethernet(mac, mac, EtherType.Ipv4, compose.udpV4(A, B, 5000, 53, new Uint8Array(4)));
const arp = compose.ethernet(0xffffffffffff, mac, EtherType.Arp, compose.arp(1, mac, A, 0, B));
const v6 = compose.ethernet(mac, mac, EtherType.Ipv6, compose.icmpv6(parseIpv6('fd00::1'), parseIpv6('fd00::2'), new Icmpv6Repr(128, 0, 0, new Uint8Array(4))));
const passes = (expr: string, f: Uint8Array) => compileFilter(expr)(f, 0, f.length);

test('capture filter: host, net, port, protocols, and/or/not as tcpdump reads them', () => {
  assert.ok(passes('', udp));
  assert.ok(passes('udp and port 53', udp));
  assert.ok(passes('src host 10.10.0.1 and dst port 53', udp));
  assert.ok(!passes('dst host 10.10.0.1', udp));
  assert.ok(passes('net 10.10.0.0/24', udp) && !passes('net 10.20.0.0/16', udp));
  assert.ok(passes('tcp or udp', udp) && !passes('tcp', udp) && passes('not tcp', udp) && passes('! tcp && udp', udp));
  assert.ok(passes('arp and host 10.10.0.2', arp), 'ARP by its target address');
  assert.ok(!passes('ip', arp) && !passes('port 53', arp));
  assert.ok(passes('icmp6 and host fd00:0::2', v6) && passes('ip6', v6) && !passes('icmp', v6));
  assert.ok(passes('udp and (port 80 or port 53)', udp) && !passes('udp and (port 80 or port 443)', udp));
  assert.ok(passes('tcp and port 80 or udp', udp), 'and binds tighter than or');
  assert.ok(passes('proto udp', udp));
});

test('capture filter: a mistake is an error naming the word', () => {
  for (const [expr, why] of [['port http', '"http" is not a port number'], ['host 10.10.0', '"10.10.0" is not an IPv4 or IPv6 address'], ['(udp', 'a "(" is not closed'],
    ['udp tcp', '"tcp" is not expected here (join conditions with and, or)'], ['udp and', 'it ends where a condition should follow'], ['sctp', '"sctp" is not a condition this filter knows (host, net, port, proto, icmp, tcp, udp, arp, ip, ip6)']]) {
    assert.throws(() => compileFilter(expr), (e: unknown) => e instanceof FilterError && e.message === `filter ${JSON.stringify(expr)}: ${why}`, expr);
  }
});
