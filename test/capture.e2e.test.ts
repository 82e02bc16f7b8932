/**
 * `weft capture` writes pcaps that an independent decoder (tshark) reads: a port's frames,
 * a tunnel's inner frames, and a tunnel's outer packets with the VXLAN or Geneve header.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, e2eSkipReason } from './support/env.js';
import { twoNetworks, withLab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'tshark');
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Starts `weft capture ARGS -w file`, runs `during`, and waits for the capture to end. */
async function capture(args: string[], file: string, during: () => Promise<unknown>): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'capture', ...args, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  // The capture is attached once the pcap's global header (24 bytes) has reached the file.
  for (const deadline = Date.now() + 20_000; !(existsSync(file) && statSync(file).size >= 24);) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`weft capture did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await during();
  const code = await done;
  assert.equal(code, 0, `weft capture failed: ${err}`);
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

      const portFile = join(dir, 'port.pcap');
      await capture([...at, '--port', 'blue1', '-d', '2'], portFile, () => lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '10.10.0.2'));
      const icmp = tshark(portFile, ['ip.src', 'ip.dst', 'icmp.type'], ['-Y', 'icmp']);
      assert.deepEqual(icmp, [['10.10.0.1', '10.10.0.2', '8'], ['10.10.0.2', '10.10.0.1', '0'], ['10.10.0.1', '10.10.0.2', '8'], ['10.10.0.2', '10.10.0.1', '0']]);

      const outerFile = join(dir, 'outer.pcap');
      await capture([...at, '--tunnel', '10.99.0.2', '--layer', 'outer', '-d', '2'], outerFile, () => lab.run('blue1', 'ping', '-c', '1', '10.10.0.2'));
      const outer = tshark(outerFile, ['ip.src', 'udp.dstport', 'vxlan.vni', 'icmp.type'], ['-Y', 'vxlan && icmp']);
      assert.deepEqual(outer, [['10.99.0.1,10.10.0.1', '4789', '100', '8'], ['10.99.0.2,10.10.0.2', '4789', '100', '0']]);

      // Geneve travels on its standard port, 6081, which tshark decodes as Geneve by itself.
      const genevFile = join(dir, 'geneve.pcap');
      await capture([...at, '--tunnel', 'all', '--layer', 'outer', '-d', '2'], genevFile, () => lab.run('red1', 'ping', '-c', '1', '10.20.0.2'));
      const gen = tshark(genevFile, ['geneve.vni', 'udp.dstport', 'ip.src', 'icmp.type'], ['-Y', 'geneve && icmp']);
      assert.deepEqual(gen, [['0x0000c8', '6081', '10.99.0.1,10.20.0.1', '8'], ['0x0000c8', '6081', '10.99.0.2,10.20.0.2', '0']]);

      const innerFile = join(dir, 'inner.pcap');
      await capture([...at, '--tunnel', '10.99.0.2', '-d', '2'], innerFile, () => lab.run('blue1', 'ping', '-c', '1', '10.10.0.2'));
      assert.deepEqual(tshark(innerFile, ['eth.type', 'ip.src'], ['-Y', 'icmp']), [['0x0800', '10.10.0.1'], ['0x0800', '10.10.0.2']]);
      const bad = tshark(innerFile, ['frame.number'], ['-Y', '_ws.malformed']);
      assert.deepEqual(bad, [], 'no malformed frame in the capture');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
