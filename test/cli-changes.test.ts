/**
 * The CLI against a real controller, as a newcomer meets it: changes that say what they take
 * away (or add and remove one item), settings that change in place and those that say why
 * not, `weft export` that `weft apply -f -` takes back with nothing to change, a pruning
 * plan that says it is the pruning, and messages: --version, the help of --controller, no
 * debugging hint after a refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, startController } from './support/controller.js';

const PACKAGE = fileURLToPath(new URL('../../package.json', import.meta.url));

test('router, port, network and subnet changes; export and apply round trip; prune explained', { timeout: 60_000 }, async () => {
  const ctl = await startController('weft-cli-changes-');
  try {
    const { dir } = ctl;
    const weft = (args: string[], input?: string) => ctl.run(args, input);
    const ok = (...args: string[]) => {
      const r = weft(args);
      assert.equal(r.status, 0, `weft ${args.join(' ')}: ${r.stderr}`);
      return r;
    };

    ok('host', 'create', 'h1', '--address', '192.0.2.1');
    for (const [net, vni, cidr] of [['blue', '100', '10.10.0.0/24'], ['red', '200', '10.20.0.0/24'], ['green', '300', '10.30.0.0/24']]) {
      ok('network', 'create', net, '--vni', vni);
      ok('subnet', 'create', `${net}4`, '--network', net, '--cidr', cidr);
    }
    ok('router', 'create', 'r1', '--subnet', 'blue4', 'red4');

    // Adding a subnet keeps the others; replacing them says what went.
    assert.match(ok('router', 'set', 'r1', '--add-subnet', 'green4').stdout, /^r1\s+blue4,red4,green4\s/m);
    const replaced = ok('router', 'set', 'r1', '--subnet', 'green4');
    assert.match(replaced.stdout, /^r1\s+green4\s/m);
    assert.equal(replaced.stderr, 'router r1 no longer joins subnets blue4, red4: --subnet gives all of them (--add-subnet adds one and keeps the others)\n');
    ok('router', 'set', 'r1', '--add-subnet', 'blue4', 'red4');
    const removed = ok('router', 'set', 'r1', '--remove-subnet', 'green4');
    assert.match(removed.stdout, /^r1\s+blue4,red4\s/m);
    assert.equal(removed.stderr, '', 'what was asked for is not said again');
    const notThere = weft(['router', 'set', 'r1', '--remove-subnet', 'green4']);
    assert.equal(notThere.status, 1);
    assert.equal(notThere.stderr, 'weft: router r1 joins no subnet green4 (it joins: blue4, red4)\n');
    const both = weft(['router', 'set', 'r1', '--subnet', 'blue4', '--add-subnet', 'green4']);
    assert.equal(both.status, 2);
    assert.equal(both.stderr, 'give --subnet (all of them), or --add-subnet and --remove-subnet, not both\n');
    ok('router', 'set', 'r1', '--add-route', '10.40.0.0/24=10.10.0.9');
    assert.match(ok('router', 'set', 'r1', '--add-route', '10.50.0.0/24=10.10.0.9').stdout, /10\.40\.0\.0\/24 via 10\.10\.0\.9, 10\.50\.0\.0\/24 via 10\.10\.0\.9/);
    assert.doesNotMatch(ok('router', 'set', 'r1', '--remove-route', '10.40.0.0/24').stdout, /10\.40\.0\.0/);

    // A port's security groups, the same way.
    ok('security-group', 'create', 'web');
    ok('port', 'create', 'vm1', '--network', 'blue', '--host', 'h1');
    assert.match(ok('port', 'update', 'vm1', '--add-security-group', 'web').stdout, /groups default,web$/m);
    assert.match(ok('port', 'update', 'vm1', '--remove-security-group', 'default').stdout, /groups web$/m);
    ok('port', 'update', 'vm1', '--add-security-group', 'default');
    const groups = ok('port', 'update', 'vm1', '--security-group', 'web');
    assert.equal(groups.stderr, 'port vm1 is no longer in security group default: --security-group gives all of them (--add-security-group adds one and keeps the others)\n');

    // Networks and subnets change where that is safe, and say why not where it is not.
    assert.match(ok('network', 'set', 'blue', '--mtu', '1400').stdout, /^blue\s+100\s+vxlan\s+yes\s+1400\s/m);
    const vni = weft(['network', 'set', 'blue', '--vni', '101']);
    assert.equal(vni.status, 2);
    assert.equal(vni.stderr, 'network blue: its VNI does not change in place (every host carries the network under it): create another network and move the ports to it\n');
    const subnet = ok('subnet', 'set', 'blue4', '--range', '10.10.0.100-10.10.0.200', '--dns', '10.10.0.53');
    assert.match(subnet.stdout, /^blue4\s+blue\s+10\.10\.0\.0\/24\s+10\.10\.0\.1\s+10\.10\.0\.100-10\.10\.0\.200\s+10\.10\.0\.53\s+on$/m);
    const cidr = weft(['subnet', 'set', 'blue4', '--cidr', '10.10.0.0/16']);
    assert.equal(cidr.status, 2);
    assert.match(cidr.stderr, /^subnet blue4: its CIDR does not change in place/);

    // What export prints, apply takes back with nothing to change: from a file or standard input.
    const exported = ok('export');
    assert.match(exported.stdout, /^# weft export at revision \d+/);
    const file = join(dir, 'all.yaml');
    writeFileSync(file, exported.stdout);
    assert.equal(ok('apply', '-f', file).stdout, 'nothing to change\n');
    assert.equal(weft(['apply', '-f', '-', '--prune'], exported.stdout).stdout, 'nothing to change\n');
    assert.equal(weft(['apply', '-f', '-'], ok('export', '-o', 'json').stdout).stdout, 'nothing to change\n');
    // ... and a change to it is planned as one.
    const edited = exported.stdout.replace('mtu: 1400', 'mtu: 1300');
    assert.equal(weft(['apply', '-f', '-', '--dry-run'], edited).stdout, 'plan: 1 change(s)\n  ~ network blue: mtu 1400 -> 1300\n');
    const bad = weft(['apply', '-f', '-'], 'networks: [{ name: blue, vni: 100, colour: blue }]\n');
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, '(standard input): networks[0]: Unrecognized key: "colour"\n');

    const listed = weft(['apply', '-f', '-'], ok('network', 'list', '-o', 'yaml').stdout);
    assert.equal(listed.status, 2);
    assert.equal(listed.stderr, '(standard input): (top level): a list, as weft KIND list -o yaml prints; apply takes the kinds by name (networks:, subnets:, ports:, ...), as weft export prints them\n');

    // A partial file with --prune: the refusal comes after a sentence saying pruning planned it.
    const partial = weft(['apply', '-f', '-', '--prune', '--dry-run'], 'networks:\n  - { name: blue, vni: 100, mtu: 1400 }\n');
    assert.equal(partial.status, 1);
    assert.equal(partial.stderr, '--prune plans deleting what the file leaves out of the kinds it lists (networks): network green, network red; without --prune they are kept\n'
      + 'weft: network green: network green still has 1 subnet(s): green4; delete them first; nothing was changed\n');

    // Messages.
    assert.equal(ok('--version').stdout.trim(), (JSON.parse(readFileSync(PACKAGE, 'utf8')) as { version: string }).version);
    assert.match(ok('port', 'list', '--help').stdout, /--controller <url>\s+the controller: https:\/\/HOST:PORT/);
    const both2 = weft(['port', 'list', '--lab', 'x', '--controller', 'https://192.0.2.1:7411']);
    assert.equal(both2.stderr, 'give --lab LAB or --controller URL, not both\n');
    for (const r of [notThere, both, vni, cidr, bad, listed, partial]) assert.doesNotMatch(r.stderr, /WEFT_DEBUG|\n\s+at /);
  } finally {
    await ctl.stop();
  }
});

test('an agent\'s refusal is a sentence, with no debugging hint', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-agent-'));
  const socket = join(dir, 'agent.sock');
  // Stands in for an agent's control socket: it knows no port of that name.
  const server = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'no port named vm9 on this host (ports: vm1)' }));
  });
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    const run = (...args: string[]) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    const stats = await run('stats', '--socket', socket);
    assert.equal(stats.code, 1);
    assert.equal(stats.stderr, 'weft: no port named vm9 on this host (ports: vm1)\n');
    const capture = await run('capture', '--socket', socket, '--port', 'vm9', '-w', join(dir, 'x.pcap'));
    assert.equal(capture.code, 1);
    assert.equal(capture.stderr, 'weft: no port named vm9 on this host (ports: vm1)\n');
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
