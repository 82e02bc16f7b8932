/**
 * A real Prometheus server (Debian's `prometheus`) scrapes a controller and an agent as an
 * operator would set it up: the agent's `/metrics` on its TCP metrics listener, the
 * controller's with the admin token from a file. Both targets come up, and the series that
 * say what happened can be queried from Prometheus itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../src/agent/agent.js';
import { hostStateFrom } from '../src/agent/config.js';
import { ApiClient } from '../src/cli/api-client.js';
import { Controller } from '../src/controller/controller.js';
import { MemoryFabric } from '../src/datapath/memory.js';
import { generateKeyPair } from '../src/tunnel/noise.js';
import { generateIdentity, identityFromPem } from '../src/view/agent-auth.js';
import { test, hasCommand } from './support/env.js';

const log = pino({ level: 'silent' });

/** A TCP port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

test('a Prometheus server scrapes the controller and an agent', { skip: hasCommand('prometheus') ? false : 'needs Debian\'s prometheus (see .ci/run)', timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-prom-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  let agent: Agent | null = null;
  let prometheus: ReturnType<typeof spawn> | null = null;
  try {
    await controller.start();
    const url = `http://127.0.0.1:${controller.port}`;
    const api = new ApiClient({ url, token: controller.tokens.admin });
    const [metricsPort, promPort, underlayPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const fabric = new MemoryFabric();
    const state = hostStateFrom({ host: 'h1', underlay: { address: '127.0.0.1', port: underlayPort, genevePort: underlayPort + 1, tunnelPort: underlayPort + 2 } }, 'test');
    agent = new Agent(state, log, join(dir, 'h1.sock'), (p) => fabric.port(p.name),
      { tunnelKey: generateKeyPair(), identity: identityFromPem(generateIdentity().pem), metricsListen: { host: '127.0.0.1', port: metricsPort } });
    await agent.start();
    const { joinToken } = await api.call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    await agent.followController(url, joinToken).ready;
    await api.call('POST', '/v1/networks', { name: 'blue', vni: 100 });
    await api.call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:01' });

    writeFileSync(join(dir, 'admin.token.prom'), controller.tokens.admin);
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s, scrape_timeout: 1s }',
      'scrape_configs:',
      '  - job_name: weft-agent',
      `    static_configs: [{ targets: ["127.0.0.1:${metricsPort}"] }]`,
      '  - job_name: weft-controller',
      `    authorization: { credentials_file: ${join(dir, 'admin.token.prom')} }`,
      `    static_configs: [{ targets: ["127.0.0.1:${controller.port}"] }]`,
      '',
    ].join('\n'));
    prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    prometheus.stderr!.on('data', (d) => (stderr += d));

    const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
      try {
        const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
        return res.ok ? ((await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data.result : [];
      } catch {
        return [];
      }
    };
    const deadline = Date.now() + 60_000;
    let up: Awaited<ReturnType<typeof query>> = [];
    while (Date.now() < deadline) {
      up = await query('up');
      if (up.length === 2 && up.every((r) => r.value[1] === '1')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(up.map((r) => [r.metric.job, r.value[1]]).sort(), [['weft-agent', '1'], ['weft-controller', '1']], `both targets up (prometheus said: ${stderr})`);
    const watches = await query('weft_controller_watches');
    assert.equal(watches[0]?.value[1], '1', 'the controller reports one watching agent');
    let fdb: Awaited<ReturnType<typeof query>> = [];
    for (let i = 0; i < 40 && fdb.length === 0; i++) {
      fdb = await query('weft_network_fdb_limit{host="h1",network="blue"}');
      if (fdb.length === 0) await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(fdb[0]?.value[1], '4096', 'the agent reports its network blue');
    const ports = await query('weft_network_ports{host="h1",network="blue"}');
    assert.equal(ports[0]?.value[1], '1', 'with its one port');
  } finally {
    if (prometheus) {
      prometheus.kill('SIGTERM');
      await new Promise((r) => prometheus!.once('exit', r));
    }
    agent?.stop();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
