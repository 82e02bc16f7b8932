/**
 * The control-plane CLI against a real controller (SQLite on disk, TCP on loopback), as a
 * person would use it: create, list, show, refuse, apply with a plan, and never a stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLI, startController } from './support/controller.js';

test('resources, refusals and apply from the command line; no token in any log line', { timeout: 60_000 }, async () => {
  const ctl = await startController('weft-cli-ctl-');
  try {
    const { dir, token } = ctl;
    const weft = (...args: string[]) => ctl.run(args);

    assert.equal(weft('network', 'create', 'blue', '--vni', '100').status, 0);
    const h = weft('host', 'create', 'h9', '--address', '192.0.2.9');
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /h9\s+192\.0\.2\.9:4789\s+1500\s+not enrolled\s+away/);
    // Its join token: alone on the last line, said once what it is for.
    assert.match(h.stdout.trim().split('\n').pop()!, /^[A-Za-z0-9_-]{43}$/);
    assert.match(h.stderr, /join token for host h9 \(single use, until .*\); start its agent with WEFT_JOIN_TOKEN=TOKEN or from a file with --join-token-file:/);
    const revoked = weft('host', 'revoke', 'h9');
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.match(revoked.stdout, /h9\s+192\.0\.2\.9:4789\s+1500\s+REVOKED /);
    const events = weft('events');
    assert.equal(events.status, 0, events.stderr);
    assert.match(events.stdout, /controller\.started/);
    assert.match(events.stdout, /network\.created\s+-\s+network blue created/);
    assert.match(events.stdout, /host\.revoked\s+h9\s+host h9 revoked/);
    for (const [name, address] of [['h1', '192.0.2.1'], ['h2', '192.0.2.2']]) assert.equal(weft('host', 'create', name, '--address', address).status, 0);
    assert.equal(weft('subnet', 'create', 'blue4', '--network', 'blue', '--cidr', '10.0.0.0/24', '--range', '10.0.0.10-10.0.0.20').status, 0);
    const created = weft('port', 'create', 'vm1', '--network', 'blue', '--host', 'h1', '-o', 'json');
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout).ips, ['10.0.0.10']);
    assert.match(weft('port', 'list').stdout, /^NAME\s+NETWORK\s+HOST\s+MAC\s+IPS\s+BACKEND\s+PORT SECURITY\nvm1\s+blue\s+h1\s+02:\S+\s+10\.0\.0\.10\s+memory\s+on, groups default\n$/);
    assert.match(weft('network', 'show', 'blue', '-o', 'yaml').stdout, /^name: blue\nvni: 100\nencapsulation: vxlan\nencryption: noise\n$/);

    const refused = weft('network', 'delete', 'blue');
    assert.equal(refused.status, 1);
    assert.equal(refused.stderr.trim(), 'weft: network blue still has 1 port(s): vm1; delete them first');
    const bad = weft('port', 'create', 'vm2', '--network', 'blue', '--host', 'h1', '--ip', '10.9.9.9');
    assert.equal(bad.stderr.trim(), 'weft: 10.9.9.9 is outside every subnet of network blue (10.0.0.0/24)');
    const noToken = spawnSync(process.execPath, [CLI, 'network', 'list', '--controller', ctl.url, '--token', 'wrong'], { encoding: 'utf8', env: { ...process.env, WEFT_TOKEN: '' } });
    assert.equal(noToken.stderr.trim(), "weft: the token is not valid for this request\nthe admin token is the file admin.token in the controller's data directory (--data-dir, /var/lib/weft by default)");

    const file = join(dir, 'net.yaml');
    writeFileSync(file, 'networks:\n  - { name: blue, vni: 100 }\n  - { name: red, vni: 200, encapsulation: geneve }\nports:\n  - { name: vm1, network: blue, host: h2 }\n  - { name: vm3, network: red, host: h1 }\n');
    const dry = weft('apply', '-f', file, '--dry-run');
    assert.equal(dry.status, 0, dry.stderr);
    assert.equal(dry.stdout, 'plan: 3 change(s)\n  + network red (vni 200, geneve)\n  + port vm3 (red on h1)\n  ~ port vm1: host h1 -> h2\n');
    assert.equal(weft('network', 'list', '-o', 'json').stdout.includes('red'), false, 'a dry run changes nothing');
    const applied = weft('apply', '-f', file);
    assert.match(applied.stdout, /applied \(revision \d+\)\n$/);
    assert.equal(weft('apply', '-f', file).stdout, 'nothing to change\n');
    assert.equal(JSON.parse(weft('port', 'show', 'vm1', '-o', 'json').stdout).host, 'h2');

    // All or nothing: the third resource is refused, so neither of the first two is made.
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'networks:\n  - { name: green, vni: 300 }\nports:\n  - { name: vm5, network: green, host: h1 }\n  - { name: vm6, network: blue, host: h1, ips: [10.9.9.9] }\n');
    const refusedApply = weft('apply', '-f', broken);
    assert.equal(refusedApply.status, 1);
    assert.equal(refusedApply.stderr.trim(), 'weft: port vm6: 10.9.9.9 is outside every subnet of network blue (10.0.0.0/24); nothing was changed');
    assert.equal(refusedApply.stdout, '', 'no plan is printed for a file that cannot be applied');
    assert.equal(weft('network', 'show', 'green').status, 1, 'green was not created');
    // What a file leaves out is kept, and said so, unless --prune.
    writeFileSync(broken, 'networks:\n  - { name: blue, vni: 100 }\n');
    assert.equal(weft('apply', '-f', broken, '--dry-run').stdout, 'nothing to change\nkept, not in the file (--prune deletes them): network red\n');
    const pruneRefused = weft('apply', '-f', broken, '--prune', '--dry-run');
    assert.equal(pruneRefused.stderr.trim(), '--prune plans deleting what the file leaves out of the kinds it lists (networks): network red; without --prune they are kept\n'
      + 'weft: network red: network red still has 1 port(s): vm3; delete them first; nothing was changed', 'a dry run checks every rule, and says pruning planned the deletion');
    writeFileSync(broken, 'networks:\n  - { name: blue, vni: 100 }\nports:\n  - { name: vm1, network: blue, host: h2 }\n');
    assert.equal(weft('apply', '-f', broken, '--prune', '--dry-run').stdout, 'plan: 2 change(s)\n  - port vm3\n  - network red\n');

    for (const out of [refused.stderr, bad.stderr, noToken.stderr]) assert.doesNotMatch(out, /\n\s+at /);
    assert.ok(ctl.logs().length > 0);
    assert.ok(!ctl.logs().includes(token), 'no token in the controller\'s log');
  } finally {
    await ctl.stop();
  }
});

test('a join token file is a new 0600 file, whatever was there; a symbolic link is refused before the host is made', { timeout: 60_000 }, async () => {
  const ctl = await startController('weft-cli-token-');
  try {
    // Beside the controller's data directory, removed with it.
    const dir = dirname(ctl.dir);
    const adminToken = join(ctl.dir, 'admin.token');
    const weft = (...args: string[]) => ctl.run(args);
    const mode = (f: string) => statSync(f).mode & 0o777;

    // A file left readable by others (an old token, say): replaced by a 0600 one.
    const file = join(dir, 'h1.token');
    writeFileSync(file, 'an old token that was left readable\n');
    chmodSync(file, 0o644);
    const created = weft('host', 'create', 'h1', '--address', '192.0.2.1', '--join-token-file', file);
    assert.equal(created.status, 0, created.stderr);
    assert.equal(mode(file), 0o600);
    assert.match(readFileSync(file, 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);
    assert.doesNotMatch(created.stdout, /[A-Za-z0-9_-]{43}/, 'the token is in the file only');
    chmodSync(file, 0o644);
    const again = weft('host', 'token', 'h1', '--join-token-file', file, '--ttl', '60');
    assert.equal(again.status, 0, again.stderr);
    assert.equal(mode(file), 0o600);
    // Asked for in a file, the token is not in the JSON either.
    const json = join(dir, 'h3.token');
    const asJson = weft('host', 'create', 'h3', '--address', '192.0.2.3', '--join-token-file', json, '-o', 'json');
    assert.equal(asJson.status, 0, asJson.stderr);
    assert.equal(JSON.parse(asJson.stdout).joinToken, undefined);
    assert.match(readFileSync(json, 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);

    // A symbolic link: refused, and neither what it points to nor the controller is touched.
    const target = join(dir, 'precious');
    writeFileSync(target, 'precious\n');
    chmodSync(target, 0o644);
    const link = join(dir, 'h2.token');
    symlinkSync(target, link);
    const refused = weft('host', 'create', 'h2', '--address', '192.0.2.2', '--join-token-file', link);
    assert.equal(refused.status, 2);
    assert.equal(refused.stderr, `cannot write the join token file ${link}: it is a symbolic link, which is not followed; remove it or choose another path\n`);
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');
    assert.equal(mode(target), 0o644);
    assert.equal(weft('host', 'show', 'h2').status, 1, 'h2 was not created');

    // The admin token the controller made is 0600 too.
    assert.equal(mode(adminToken), 0o600);
  } finally {
    await ctl.stop();
  }
});
