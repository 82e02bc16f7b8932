/**
 * `weft stats` as a newcomer meets it, on the quick start's topology: a lab whose VMs have
 * just booted shows no problem drops (their listener reports are expected, in parentheses),
 * a VM spoofing an address does, every host fits 100 columns in human units, `--explain`
 * says what each reason means, `--watch` refreshes with rates, and `host list` counts the
 * ports `port list` shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { e2eSkipReason } from './support/env.js';
import { withLab, type Lab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'sysctl');
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const weft = (...args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `weft ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

/** Waits (polling the agent, up to 15 s) until `ok` holds of `host`'s stats. */
async function until(lab: Lab, host: string, what: string, ok: (s: Awaited<ReturnType<Lab['stats']>>) => boolean): Promise<void> {
  for (const deadline = Date.now() + 15_000; !ok(await lab.stats(host));) {
    if (Date.now() > deadline) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('weft stats: booting VMs are no problem, a spoof is; every host in 100 columns; --explain, --watch, host list', { skip, timeout: 120_000 }, async () => {
  const topology = parse(readFileSync(`${ROOT}/examples/quickstart.yaml`, 'utf8')) as Record<string, unknown>;
  topology.name = 'e2estats';
  await withLab(topology, async (lab) => {
    // Boot IPv6 again in every VM: duplicate address detection, listener reports from ::
    // and then from the link-local address, router solicitations.
    const reports = async () => (await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!.drops['listener-report'] ?? 0;
    const before = await reports();
    for (const vm of ['blue1', 'red1', 'blue2', 'red2']) {
      await lab.run(vm, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=1');
      await lab.run(vm, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=0');
    }
    await until(lab, 'h1', 'blue1\'s listener reports from :: and from its link-local address', (s) => (s.ports.find((p) => p.name === 'blue1')!.drops['listener-report'] ?? 0) >= before + 4);

    const all = weft('stats', '--lab', lab.name);
    for (const line of all.split('\n')) assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
    assert.doesNotMatch(all, /spoofed|sg-refused/, 'a VM booting is not an attack');
    assert.match(all, /^HOST +PORT +NETWORK +RX +TX +DROPS$/m);
    assert.match(all, /^h1 +blue1 +blue +\d+ \/ [\d.]+ (B|KiB) +\d+ \/ [\d.]+ (B|KiB) +.*\(listener-report=\d+\)$/m);
    assert.match(all, /^h2 +blue2 +blue /m);
    assert.match(all, /^h\d +public +900 +provider +- /m, 'the physical network is not vxlan');
    assert.match(all, /^h1 +h2 10\.99\.0\.2:4793 +blue +yes /m, 'tunnels named by their remote host');

    // A VM sending from an address that is not its own: that one is a problem.
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2'); // blue2's MAC known: no ARP from the spoofed address
    await lab.run('blue1', 'ip', 'addr', 'add', '10.10.0.99/32', 'dev', 'eth0');
    await lab.exec('blue1', 'ping', '-c', '1', '-W', '1', '-I', '10.10.0.99', '10.10.0.2');
    await until(lab, 'h1', 'the spoofed ping counted', (s) => (s.ports.find((p) => p.name === 'blue1')!.drops['spoofed-ip'] ?? 0) >= 1);
    const h1 = weft('stats', '--lab', lab.name, '--host', 'h1', '--explain');
    const blue1 = h1.split('\n').find((l) => l.startsWith('blue1 '))!;
    assert.match(blue1.split('(')[0], /\bspoofed-ip=\d+\b/, `outside the parentheses: ${blue1}`);
    assert.match(h1, /^spoofed-ip +port security: an IPv4 or IPv6 source address that is not the port's$/m);
    assert.match(h1, /^listener-report +\(expected\) a VM's multicast listener report/m);

    const wide = weft('stats', '--lab', lab.name, '--host', 'h1', '-o', 'wide');
    assert.match(wide, /^PORT +NETWORK +RX +TX +DROPS +MODE +KERNEL DROPS +CONNECTIONS \(REFUSED\)$/m);
    assert.match(wide, /^UNDERLAY .* BACKEND$/m);

    // host list counts what port list shows: the hosts' uplinks are not ports of VMs.
    const hosts = weft('host', 'list', '--lab', lab.name);
    assert.match(hosts, /^h1 .* 2\/2$/m);
    assert.match(hosts, /^h2 .* 2\/2$/m);

    // --watch: the screen redrawn in place, with rates.
    const watch = spawn(process.execPath, [CLI, 'stats', '--lab', lab.name, '--watch', '--interval', '0.5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        watch.stdout.on('data', (d) => { out += d; if (out.includes('rates over the last interval')) resolve(); });
        watch.on('exit', (code) => reject(new Error(`weft stats --watch exited ${code}`)));
      });
      const last = out.slice(out.lastIndexOf('\x1b[H\x1b[J'));
      assert.match(last, /^HOST +PORT +NETWORK +RX\/s +TX\/s +DROPS$/m);
      assert.match(last, /^h1 +blue1 +blue +\d+\/s, [\d.]+ (B|KiB)\/s /m);
    } finally {
      watch.kill('SIGINT');
    }
  });
});
