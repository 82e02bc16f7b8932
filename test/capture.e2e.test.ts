/**
 * `weft capture` writes pcapng files that an independent decoder (tshark) reads: a port's
 * frames with their direction, a tunnel's inner frames with each one's network, a tunnel's
 * outer packets with the VXLAN or Geneve header; microsecond timestamps, a filter, and the
 * number of frames written said at the end.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, e2eSkipReason } from './support/env.js';
import { twoNetworks, withLab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'tshark');
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Starts `weft capture ARGS -w file`, runs `during`, and waits for the capture to end;
 * returns what it said on standard error. */
async function capture(args: string[], file: string, during: () => Promise<unknown>): Promise<string> {
  const child = spawn(process.execPath, [CLI, 'capture', ...args, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  // The capture is attached once the section header (28 bytes at least) has reached the file.
  for (const deadline = Date.now() + 20_000; !(existsSync(file) && statSync(file).size >= 28);) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`weft capture did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await during();
  const code = await done;
  assert.equal(code, 0, `weft capture failed: ${err}`);
  return err;
}

function tshark(file: string, fields: string[], extra: string[] = []): string[][] {
  const out = execFileSync('tshark', ['-r', file, ...extra, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8' });
  return out.trim().split('\n').filter(Boolean).map((l) => l.split('|'));
}

test('captures of a port and of a tunnel decode in tshark', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-capture-'));
  try {
    await withLab(twoNetworks('e2ecap'), async (lab) => {
      await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2'); // resolve ARP first
      await lab.run('red1', 'ping', '-c', '1', '-W', '2', '10.20.0.2');
      const at = ['--lab', lab.name, '--host', 'h1'];

      // Over a file left readable by everyone: the capture replaces it, for root alone.
      const portFile = join(dir, 'port.pcapng');
      writeFileSync(portFile, '');
      chmodSync(portFile, 0o644);
      await capture([...at, '--port', 'blue1', '-d', '2'], portFile, () => lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '10.10.0.2'));
      assert.equal(statSync(portFile).mode & 0o777, 0o600);
      const icmp = tshark(portFile, ['ip.src', 'ip.dst', 'icmp.type', 'frame.interface_name', 'frame.packet_flags_direction'], ['-Y', 'icmp']);
      // In (epb_flags 1): from the VM into the port; out (2): to the VM.
      const [IN, OUT] = ['0x00000001', '0x00000002'];
      assert.deepEqual(icmp, [['10.10.0.1', '10.10.0.2', '8', 'blue1', IN], ['10.10.0.2', '10.10.0.1', '0', 'blue1', OUT], ['10.10.0.1', '10.10.0.2', '8', 'blue1', IN], ['10.10.0.2', '10.10.0.1', '0', 'blue1', OUT]]);
      // Microseconds, as the clock has them (not whole milliseconds).
      const times = tshark(portFile, ['frame.time_epoch']).map(([t]) => t);
      assert.ok(times.some((t) => !/\.\d{3}000/.test(t)), `microsecond timestamps: ${times.join(' ')}`);

      // A filter, and the count said at the end.
      const filtered = join(dir, 'filtered.pcapng');
      const said = await capture([...at, '--port', 'blue1', '-d', '2', '--filter', 'icmp and dst host 10.10.0.2'], filtered, () => lab.run('blue1', 'ping', '-c', '3', '-i', '0.2', '10.10.0.2'));
      assert.deepEqual(tshark(filtered, ['ip.dst', 'icmp.type']), [['10.10.0.2', '8'], ['10.10.0.2', '8'], ['10.10.0.2', '8']]);
      assert.equal(said.trim(), `3 frames written to ${filtered}`);
      const bad = spawnSync(process.execPath, [CLI, 'capture', ...at, '--port', 'blue1', '--filter', 'icmp and port http', '-w', join(dir, 'x')], { encoding: 'utf8' });
      assert.equal(bad.status, 2);
      assert.equal(bad.stderr.trim(), 'filter "icmp and port http": "http" is not a port number');

      const outerFile = join(dir, 'outer.pcapng');
      await capture([...at, '--tunnel', '10.99.0.2', '--layer', 'outer', '-d', '2'], outerFile, () => lab.run('blue1', 'ping', '-c', '1', '10.10.0.2'));
      const outer = tshark(outerFile, ['ip.src', 'udp.dstport', 'vxlan.vni', 'icmp.type'], ['-Y', 'vxlan && icmp']);
      assert.deepEqual(outer, [['10.99.0.1,10.10.0.1', '4789', '100', '8'], ['10.99.0.2,10.10.0.2', '4789', '100', '0']]);

      // Geneve travels on its standard port, 6081, which tshark decodes as Geneve by itself.
      const genevFile = join(dir, 'geneve.pcapng');
      await capture([...at, '--tunnel', 'all', '--layer', 'outer', '-d', '2'], genevFile, () => lab.run('red1', 'ping', '-c', '1', '10.20.0.2'));
      const gen = tshark(genevFile, ['geneve.vni', 'udp.dstport', 'ip.src', 'icmp.type'], ['-Y', 'geneve && icmp']);
      assert.deepEqual(gen, [['0x0000c8', '6081', '10.99.0.1,10.20.0.1', '8'], ['0x0000c8', '6081', '10.99.0.2,10.20.0.2', '0']]);

      // Inner frames of both networks, the remote host by its name: each frame's network
      // is its interface.
      const innerFile = join(dir, 'inner.pcapng');
      await capture([...at, '--tunnel', 'h2', '-d', '2'], innerFile, async () => {
        await lab.run('blue1', 'ping', '-c', '1', '10.10.0.2');
        await lab.run('red1', 'ping', '-c', '1', '10.20.0.2');
      });
      assert.equal(statSync(innerFile).mode & 0o777, 0o600, 'decrypted traffic, for root alone');
      assert.deepEqual(tshark(innerFile, ['frame.interface_name', 'eth.type', 'ip.src'], ['-Y', 'icmp']),
        [['blue', '0x0800', '10.10.0.1'], ['blue', '0x0800', '10.10.0.2'], ['red', '0x0800', '10.20.0.1'], ['red', '0x0800', '10.20.0.2']]);
      const malformed = tshark(innerFile, ['frame.number'], ['-Y', '_ws.malformed']);
      assert.deepEqual(malformed, [], 'no malformed frame in the capture');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
