/**
 * A newcomer's first hour in a lab, through the CLI as a person types it: a port created
 * from the command line with a TAP, the TAP moved into a namespace of one's own (the VM),
 * DHCP and a ping from there; and what the CLI says to a lab that is not there, a host the
 * lab lacks, and a token given with --lab.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { udhcpcScript } from '../src/lab/guest.js';
import { e2eSkipReason, hasCommand } from './support/env.js';
import { withLab } from './support/lab.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const weft = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, WEFT_CONTROLLER: '', WEFT_TOKEN: '' } });
const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });

const skip = e2eSkipReason('ping') || (hasCommand('busybox') ? false : 'needs busybox (udhcpc): apt-get install busybox');

test('a port made with weft port create works from a namespace its TAP was moved to: DHCP, then a ping', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-lab-'));
  try {
    await withLab({
      name: 'e2eclitap',
      controller: true,
      hosts: [{ name: 'h1' }, { name: 'h2' }],
      networks: [{ name: 'blue', vni: 100 }],
      vms: [{ name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' }],
    }, async (lab) => {
      const created = weft('port', 'create', 'vm5', '--network', 'blue', '--host', 'h1', '--tap', 'tap5', '--lab', lab.name, '-o', 'json');
      assert.equal(created.status, 0, created.stderr);
      const port = JSON.parse(created.stdout) as { mac: string; ips: string[] };

      // The agent of h1 makes tap5 in h1's namespace, with the port's MAC: it is the VM's NIC.
      const h1 = `weft-${lab.name}-h1`;
      let shown = '';
      for (const deadline = Date.now() + 20_000; !shown.includes('tap5');) {
        if (Date.now() > deadline) throw new Error('the agent of h1 never made tap5');
        await new Promise((r) => setTimeout(r, 100));
        shown = ip('-n', h1, '-br', 'link', 'show', 'tap5').stdout;
      }
      assert.match(shown, new RegExp(`^tap5\\s+\\S+\\s+${port.mac}\\s`), `the kernel's MAC of tap5 is the port's ${port.mac}`);

      // As a user would: a namespace for the VM, the TAP moved into it, DHCP, a ping.
      const vm = `weft-${lab.name}-vm5`; // the lab's prefix: lab down removes it too
      for (const args of [['netns', 'add', vm], ['-n', h1, 'link', 'set', 'tap5', 'netns', vm], ['-n', vm, 'link', 'set', 'lo', 'up'], ['-n', vm, 'link', 'set', 'tap5', 'up']]) {
        const r = ip(...args);
        assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
      }
      const script = join(dir, 'udhcpc.sh');
      writeFileSync(script, udhcpcScript('/dev/null'), { mode: 0o755 });
      const dhcp = spawnSync('ip', ['netns', 'exec', vm, 'busybox', 'udhcpc', '-i', 'tap5', '-n', '-q', '-t', '5', '-T', '1', '-s', script], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(dhcp.status, 0, `udhcpc: ${dhcp.stdout}${dhcp.stderr}`);
      assert.match(dhcp.stdout + dhcp.stderr, new RegExp(`lease of ${port.ips[0].replace(/\./g, '\\.')} obtained`));
      const ping = spawnSync('ip', ['netns', 'exec', vm, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2'], { encoding: 'utf8' });
      assert.equal(ping.status, 0, ping.stdout + ping.stderr);
      const stats = (await lab.stats('h1')).ports.find((p) => p.name === 'vm5')!;
      assert.equal(stats.drops['spoofed-mac'] ?? 0, 0, `nothing dropped as spoofed: ${JSON.stringify(stats.drops)}`);

      // What the CLI says about the lab.
      const noLab = weft('port', 'list', '--lab', 'e2enosuchlab');
      assert.equal(noLab.status, 2);
      assert.match(noLab.stderr.trim(), new RegExp(`^no lab e2enosuchlab \\(labs: .*\\b${lab.name}\\b.*\\)$`));
      const noHost = weft('stats', '--lab', lab.name, '--host', 'h9');
      assert.equal(noHost.status, 2);
      assert.equal(noHost.stderr.trim(), `lab ${lab.name} has no host h9 (hosts: h1, h2)`);
      const portHost = weft('port', 'create', 'vm6', '--network', 'blue', '--host', 'h9', '--lab', lab.name);
      assert.equal(portHost.status, 1);
      assert.equal(portHost.stderr, 'weft: there is no host named h9 (hosts: h1, h2); register it with weft host create\n');
      const down = weft('lab', 'down', 'e2enosuchlab');
      assert.notEqual(down.status, 0, 'lab down of a lab that is not there fails');
      assert.match(down.stderr, /^no lab e2enosuchlab \(labs: /);
      // An explicit token is the one used, not silently the lab's admin token.
      const token = weft('network', 'list', '--lab', lab.name, '--token', 'not-the-token');
      assert.equal(token.status, 1);
      assert.match(token.stderr, /^weft: the token is not valid for this request\nthe lab's admin token is in \S+admin\.token, not the one given\n$/);
      for (const r of [noLab, noHost, portHost, down, token]) assert.doesNotMatch(r.stderr, /WEFT_DEBUG|\n\s+at /);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
