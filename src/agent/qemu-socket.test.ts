/**
 * The agent's side of QEMU sockets: a port whose socket lies outside the agent's directory
 * is not attached (its reason says why, and it is reported as failed), and nothing on disk
 * is touched; a port inside it is attached.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Datapath } from '../datapath/datapath.js';
import { MemoryFabric } from '../datapath/memory.js';
import { parseIpv4 } from '../wire/bytes.js';
import { backendOpener } from './agent.js';
import type { HostState, PortState } from './desired-state.js';
import { Reconciler } from './reconciler.js';

const qemuPort = (name: string, socket: string): PortState => ({ name, mode: 'access', network: 'blue', backend: { type: 'qemu', socket } });
const state = (ports: PortState[]): HostState => ({
  host: 'h1',
  underlay: { address: '192.0.2.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 },
  physicalNetworks: {}, nat: [], securityGroups: {}, addressSets: {},
  networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan', remotes: [] }],
  ports,
  limits: { maxPorts: 8, fdbLimit: 64, fdbAgingSeconds: 300 },
});

test('a port asking for a QEMU socket outside the agent\'s directory is failed with a sentence; the canary file survives', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-agent-qemu-'));
  const dp = new Datapath();
  try {
    const fabric = new MemoryFabric();
    dp.attachUnderlay(fabric.underlay(parseIpv4('192.0.2.1'), 4789), parseIpv4('192.0.2.1'), 4789, 'vxlan');
    const dir = join(root, 'qemu');
    const canary = join(root, 'precious.txt');
    writeFileSync(canary, 'keep me\n');
    const reconciler = new Reconciler(dp, backendOpener(dir), () => 0);

    const r = reconciler.apply(state([qemuPort('evil', canary), qemuPort('good', join(dir, 'good.sock'))]));
    assert.deepEqual(r.pending, { evil: `QEMU socket ${canary} is not in ${dir}/, the directory this agent keeps QEMU sockets in (weft agent --qemu-socket-dir); nothing was touched` });
    assert.deepEqual(r.added.filter((a) => a.startsWith('port')), ['port good']);
    assert.equal(readFileSync(canary, 'utf8'), 'keep me\n', 'the file is still a file, with its content');
    assert.ok(lstatSync(join(dir, 'good.sock')).isSocket(), 'the port inside the directory listens');
    // Retried later: still refused, still untouched.
    assert.ok('evil' in reconciler.apply(state([qemuPort('evil', canary), qemuPort('good', join(dir, 'good.sock'))])).pending);
    assert.equal(readFileSync(canary, 'utf8'), 'keep me\n');

    reconciler.apply(state([]));
    assert.ok(!existsSync(join(dir, 'good.sock')), 'a removed port takes its socket with it');
  } finally {
    dp.close();
    rmSync(root, { recursive: true, force: true });
  }
});
