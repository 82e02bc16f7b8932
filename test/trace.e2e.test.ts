/**
 * `weft trace` in a lab with a controller: the real CLI asks the controller, every agent
 * follows the probe through its real data path, and the path comes back hop by hop, host
 * by host, with a verdict: delivered across hosts (through the encrypted tunnel), through
 * the router, out through the external gateway's NAT; dropped by a security group (naming
 * what no rule allows), by the MTU (naming it), by port security (a spoofed source), by the
 * router (no neighbour). A trace
 * changes nothing: the VM's own traffic and counters go on as before, and one trace runs
 * at a time.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TraceResult } from '../src/controller/trace.js';
import { test, e2eSkipReason } from './support/env.js';
import { withLab } from './support/lab.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const skip = e2eSkipReason('ping');

function trace(lab: string, ...args: string[]): { result: TraceResult; text: string; code: number } {
  const json = spawnSync(process.execPath, [CLI, 'trace', '--lab', lab, ...args, '--json'], { encoding: 'utf8' });
  assert.equal(json.stderr, '', json.stderr);
  const result = JSON.parse(json.stdout) as TraceResult;
  const text = spawnSync(process.execPath, [CLI, 'trace', '--lab', lab, ...args], { encoding: 'utf8' });
  return { result, text: text.stdout, code: text.status ?? -1 };
}

const stages = (r: TraceResult) => r.steps.map((s) => `${s.host} ${s.stage}`);

test('weft trace follows a probe across hosts and says where it ended and why', { skip, timeout: 180_000 }, async () => {
  await withLab({
    name: 'e2etrace',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [
      { name: 'blue', vni: 100, encapsulation: 'vxlan' },
      { name: 'red', vni: 200, encapsulation: 'vxlan' },
      { name: 'public', vni: 900, provider: {} },
    ],
    outside: { ip: '203.0.113.1/24' },
    routers: [{ name: 'r1', networks: ['blue', 'red'], externalGateway: 'public', gatewayHost: 'h2' }],
    securityGroups: [{
      name: 'web',
      rules: [
        { direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 } },
        { direction: 'ingress', protocol: 'icmp' },
        { direction: 'egress' },
      ],
    }],
    vms: [
      { name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'vm2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', securityGroups: ['web'] },
      { name: 'vm3', host: 'h2', network: 'red', ip: '10.20.0.3/24' },
    ],
  }, async (lab) => {
    const before = (await lab.stats('h2')).ports.find((p) => p.name === 'vm2')!;

    // Across hosts, switched, through the encrypted tunnel.
    const across = trace(lab.name, '--from', 'vm1', '--to', '10.10.0.2');
    assert.equal(across.result.verdict, 'delivered to vm2 on h2');
    assert.equal(across.code, 0);
    assert.deepEqual(stages(across.result), ['h1 port vm1', 'h1 port security', 'h1 security groups', 'h1 switch', 'h1 encrypt',
      'h2 encrypted tunnel from 10.99.0.1', 'h2 decapsulate', 'h2 switch', 'h2 security groups', 'h2 deliver']);
    assert.match(across.result.steps[4].detail, /sealed in the tunnel to 10\.99\.0\.2:4793/);
    assert.match(across.result.steps[8].detail, /icmp from 10\.10\.0\.1 allowed by group web, rule 2/);
    assert.match(across.text, /verdict: delivered to vm2 on h2/);
    assert.match(across.text, /h2 +\+\d+\.\d{3} ms +=> deliver +to port vm2/);

    // Through the router, on to another network on the other host.
    const routed = trace(lab.name, '--from', 'vm1', '--to', '10.20.0.3', '--proto', 'udp', '--port', '53');
    assert.equal(routed.result.verdict, 'delivered to vm3 on h2');
    const route = routed.result.steps.find((s) => s.stage === 'route')!;
    assert.equal(route.host, 'h1', 'routed on the sending host (the distributed router)');
    assert.equal(route.detail, '10.20.0.3 via network red, TTL 64');

    // Out through the external gateway's NAT, held by h2.
    const out = trace(lab.name, '--from', 'vm1', '--to', '203.0.113.1', '--proto', 'tcp', '--port', '443');
    assert.equal(out.result.verdict, 'delivered out of h2\'s uplink to physical network physnet');
    assert.match(out.result.steps.find((s) => s.stage === 'nat')!.detail, /^source 10\.10\.0\.1 -> 203\.0\.113\.2:\d+ \(router r1, network public\)$/);

    // Dropped by a security group, saying what no rule allows.
    const refused = trace(lab.name, '--from', 'vm1', '--to', '10.10.0.2', '--proto', 'tcp', '--port', '22');
    assert.equal(refused.result.verdict, 'dropped on h2: security groups, sg-refused: no rule of the port\'s groups allows tcp/22 from 10.10.0.1');
    assert.equal(refused.code, 1, 'the CLI fails when the probe was not delivered');
    const allowed = trace(lab.name, '--from', 'vm1', '--to', '10.10.0.2', '--proto', 'tcp', '--port', '80');
    assert.equal(allowed.result.verdict, 'delivered to vm2 on h2');
    assert.match(allowed.result.steps.find((s) => s.host === 'h2' && s.stage === 'security groups')!.detail, /tcp\/80 from 10\.10\.0\.1 allowed by group web, rule 1/);

    // Dropped by the MTU (blue is encrypted: 1418), naming it.
    const big = trace(lab.name, '--from', 'vm1', '--to', '10.10.0.2', '--size', '1419');
    assert.equal(big.result.verdict, 'dropped on h1: mtu, mtu-exceeded: 1419 bytes, network blue\'s MTU is 1418');
    assert.equal(trace(lab.name, '--from', 'vm1', '--to', '10.10.0.2', '--size', '1418').result.verdict, 'delivered to vm2 on h2');

    // Dropped by port security: a probe from another address than vm1's, as a VM spoofing
    // it would send.
    const spoofed = trace(lab.name, '--from', 'vm1', '--to', '10.10.0.2', '--source', '10.10.0.99');
    assert.equal(spoofed.result.verdict, 'dropped on h1: port security, spoofed-ip: the port sends only as 02:57:46:00:00:01 from 10.10.0.1');

    // Dropped by the router: no port has the address.
    const nobody = trace(lab.name, '--from', 'vm1', '--to', '10.20.0.99');
    assert.equal(nobody.result.verdict, 'dropped on h1: route, no-neighbor: no port on network red has 10.20.0.99');
    assert.match(nobody.result.steps.map((s) => s.detail).join('\n'), /ICMP destination unreachable \(code 1\) sent back to port vm1/);

    // The probes were the only frames traced: vm2's counters moved by what reached it, and
    // its own traffic is untouched.
    await lab.run('vm1', 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.10.0.2');
    const after = (await lab.stats('h2')).ports.find((p) => p.name === 'vm2')!;
    assert.ok(after.tx.frames >= before.tx.frames + 5, 'the delivered probes and the pings reached vm2');

    // Bad requests get clear errors.
    const unknown = spawnSync(process.execPath, [CLI, 'trace', '--lab', lab.name, '--from', 'nosuch', '--to', '10.10.0.2'], { encoding: 'utf8' });
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /no port nosuch/);
  });
});
