/**
 * npm run bench:firewall: new-connection rule lookups per second, for 1, 10, 100 and 1,000
 * rules, by the linear scan the firewall used to do (test/support/firewall-oracle.ts) and
 * by the compiled table (src/datapath/rule-table.ts), in one run. The rules are a group's
 * usual shape: ingress TCP and UDP to single ports (every tenth a range of 10) from a /24,
 * an ICMP rule, all egress. The connections are ingress TCP to ports the rules name and
 * ports they do not (a refused SYN scans every rule linearly), from inside and outside the
 * prefix.
 */
import { compileRuleTable, type FirewallRule } from '../src/datapath/firewall.js';
import { firstMatch } from '../test/support/firewall-oracle.js';

const net = { words: new Uint32Array([0, 0, 0, 0x0a000000]), length: 96 + 24 };
function ruleSet(n: number): FirewallRule[] {
  const rules: FirewallRule[] = [{ direction: 'egress', ipv6: false, protocol: -1, portMin: -1, portMax: -1, icmpType: -1, icmpCode: -1, remote: null, remoteSet: null }];
  for (let i = 0; rules.length < n; i++) {
    const port = 1000 + i * 20;
    rules.push({ direction: 'ingress', ipv6: false, protocol: i % 3 === 2 ? 17 : 6, portMin: port, portMax: i % 10 === 9 ? port + 9 : port, icmpType: -1, icmpCode: -1, remote: [net], remoteSet: null, source: `rule ${i}` });
  }
  return rules.slice(0, n);
}

const remotes = [new Uint32Array([0, 0, 0, 0x0a000005]), new Uint32Array([0, 0, 0, 0xc0000209])];
function time(run: (k: number) => unknown): number {
  const n = 2_000_000;
  for (let i = 0; i < n / 10; i++) run(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run(i);
  return n / ((performance.now() - t0) / 1000);
}

console.log('rules   linear lookups/s   indexed lookups/s   indexed/linear');
for (const n of [1, 10, 100, 1000]) {
  const rules = ruleSet(n);
  const table = compileRuleTable(rules);
  // 1,024 connections: ports over the rules' span and beyond it.
  const ports = Int32Array.from({ length: 1024 }, (_, i) => 1000 + ((i * 7919) % (n * 20 + 200)));
  let hits = 0;
  const linear = time((k) => { if (firstMatch(rules, true, false, 6, ports[k & 1023], 40000, -1, -1, remotes[(k >> 10) & 1]) !== null) hits++; });
  const indexed = time((k) => { if (table.match(true, false, 6, ports[k & 1023], 40000, -1, -1, remotes[(k >> 10) & 1]) !== null) hits++; });
  console.log(`${String(n).padStart(5)} ${linear.toExponential(2).padStart(18)} ${indexed.toExponential(2).padStart(19)} ${(indexed / linear).toFixed(1).padStart(15)}x   (${hits} allowed)`);
}
