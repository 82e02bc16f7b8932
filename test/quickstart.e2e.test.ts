/**
 * The README's quick start, as a user types it: `weft lab up examples/quickstart.yaml`
 * builds the lab and pings across both networks, through the router, and fetches a page
 * from the outside; `weft lab down quickstart` removes it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labDir, listLabs } from '../src/lab/lab.js';
import { test, e2eSkipReason } from './support/env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const weft = (...args: string[]) => spawnSync(`${ROOT}/weft`, args, { encoding: 'utf8', cwd: ROOT });
const skip = e2eSkipReason('ping') || (listLabs().includes('quickstart') ? 'a quickstart lab is running on this machine; this test would clash with it' : false);

test('the quick start brings up the lab and shows traffic crossing both networks', { skip, timeout: 60_000 }, () => {
  try {
    const up = weft('lab', 'up', 'examples/quickstart.yaml');
    assert.equal(up.status, 0, up.stderr);
    assert.match(up.stdout, /ping blue1 \(h1\) -> blue2 \(h2, 10\.10\.0\.2\) on blue: [\d.]+ ms/);
    assert.match(up.stdout, /ping red1 \(h1\) -> red2 \(h2, 10\.20\.0\.2\) on red: [\d.]+ ms/);
    assert.match(up.stdout, /ping blue1 \(h1\) -> red2 \(h2, 10\.20\.0\.2\) through router r1: [\d.]+ ms/);
    assert.match(up.stdout, /fetch blue1 \(h1\) -> http:\/\/203\.0\.113\.1\/ \(outside, through r1's external gateway\): "hello from outside"/);
    assert.doesNotMatch(up.stdout, /FAILED/);
    const stats = weft('stats', '--lab', 'quickstart', '--host', 'h2', '-o', 'json');
    assert.equal(stats.status, 0, stats.stderr);
    const h2 = JSON.parse(stats.stdout) as { networks: Array<{ name: string }>; nats: unknown[] };
    // public too, if h2 holds the router's external gateway.
    assert.deepEqual(h2.networks.map((n) => n.name).sort(), ['blue', 'red', ...(h2.nats.length ? ['public'] : [])].sort());
    const hosts = weft('host', 'list', '--lab', 'quickstart', '-o', 'json');
    assert.deepEqual(JSON.parse(hosts.stdout).map((h: { name: string; status: { connected: boolean } }) => [h.name, h.status.connected]), [['h1', true], ['h2', true]]);
    // No token in any log line of the controller or the agents.
    const dir = labDir('quickstart');
    const tokens = [join(dir, 'controller', 'admin.token'), ...['h1', 'h2'].map((h) => join(dir, 'hosts', h, 'join.token'))].map((f) => readFileSync(f, 'utf8').trim());
    const logs = readdirSync(dir).filter((f) => f.endsWith('.log')).map((f) => readFileSync(join(dir, f), 'utf8'));
    assert.deepEqual(logs.length, 4, 'the controller, two agents, the outside web server');
    for (const log of logs) for (const t of tokens) assert.ok(!log.includes(t), 'a token appears in a log');
  } finally {
    const down = weft('lab', 'down', 'quickstart');
    assert.equal(down.status, 0, down.stderr);
  }
});
