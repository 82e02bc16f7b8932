/**
 * `weft capture -w FILE` holds frames as the VMs sent them (decrypted, for a tunnel's inner
 * layer): the file is for its owner alone, whatever was at FILE before. A real agent (a
 * memory port, its underlay on loopback) serves the capture; no namespace is needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './support/wait.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('a capture file is 0600 with the capture only, over a file that was 0644; a symbolic link is refused', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-capture-file-'));
  const base = 41000 + (process.pid % 1000) * 3;
  writeFileSync(join(dir, 'h1.yaml'), [
    'host: capt',
    `underlay: { address: 127.0.0.1, port: ${base}, genevePort: ${base + 1}, tunnelPort: ${base + 2} }`,
    'networks: [{ name: blue, vni: 100 }]',
    'ports: [{ name: vm1, network: blue, backend: { type: memory } }]',
    '',
  ].join('\n'));
  const socket = join(dir, 'agent.sock');
  const agent = spawn(process.execPath, [CLI, 'agent', '--config', join(dir, 'h1.yaml'), '--key-file', join(dir, 'state', 'tunnel.key'), '--socket', socket, '--qemu-socket-dir', join(dir, 'qemu')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  agent.stderr.on('data', (d) => (logs += d));
  try {
    await waitFor(() => logs.includes('agent ready') || agent.exitCode !== null, { what: 'the agent to be ready' });
    assert.equal(agent.exitCode, null, logs);
    const capture = (file: string) => spawnSync(process.execPath, [CLI, 'capture', '--socket', socket, '--port', 'vm1', '-d', '1', '-w', file], { encoding: 'utf8', timeout: 30_000 });

    const file = join(dir, 'vm1.pcapng');
    writeFileSync(file, 'the last capture, readable by everyone: longer than a section header and an interface block '.repeat(4));
    chmodSync(file, 0o644);
    const made = capture(file);
    assert.equal(made.status, 0, made.stderr);
    assert.equal(made.stderr, `0 frames written to ${file}\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const pcapng = readFileSync(file);
    assert.equal(pcapng.readUInt32LE(0), 0x0a0d0d0a, 'a section header block first');
    assert.ok(!pcapng.includes('readable by everyone'), 'nothing of the old file is left');

    const target = join(dir, 'precious');
    writeFileSync(target, 'precious\n');
    const link = join(dir, 'link.pcapng');
    symlinkSync(target, link);
    const refused = capture(link);
    assert.equal(refused.status, 2);
    assert.equal(refused.stderr, `cannot write the capture file ${link}: it is a symbolic link, which is not followed; remove it or choose another path\n`);
    assert.equal(readFileSync(target, 'utf8'), 'precious\n');
    assert.equal(statSync(target).mode & 0o777, 0o644);
    assert.equal(existsSync(join(dir, 'state', 'tunnel.key')), true);
    assert.equal(statSync(join(dir, 'state', 'tunnel.key')).mode & 0o777, 0o600);
  } finally {
    agent.kill('SIGTERM');
    if (agent.exitCode === null) await new Promise((r) => agent.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
