/**
 * The control plane in one process, with real parts: a controller on a SQLite file serving
 * TCP on loopback, and two agents whose underlays are real UDP sockets on 127.0.0.1 and
 * 127.0.0.2; only the VMs' ports are in memory. Networks and ports are created through the
 * API, and frames cross between the agents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { hasCommand, subtest } from './support/env.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { generateKeyPair } from '../src/tunnel/noise.js';
import { generateIdentity, identityFromPem, signAgentRequest } from '../src/view/agent-auth.js';
import { Agent } from '../src/agent/agent.js';
import { hostStateFrom } from '../src/agent/config.js';
import { MemoryFabric, type MemoryPort } from '../src/datapath/memory.js';
import { Controller } from '../src/controller/controller.js';
import { loadOrCreateTls } from '../src/controller/tls.js';
import { ApiClient } from '../src/cli/api-client.js';
import { ArpOperation, ArpPacket } from '../src/wire/arp.js';
import { parseIpv4, parseMac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EthernetFrame, EtherType } from '../src/wire/ethernet.js';

const log = pino({ level: 'silent' });

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('agents follow the controller: ports appear, ARP is answered locally, frames cross, deletes apply', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cp-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  const agents: Agent[] = [];
  try {
    await controller.start();
    const url = `http://127.0.0.1:${controller.port}`;
    const api = new ApiClient({ url, token: controller.tokens.admin });
    const vmPorts = new Map<string, MemoryPort>();
    const port0 = 20000 + (process.pid % 20000);
    for (const [i, host] of ['h1', 'h2'].entries()) {
      const fabric = new MemoryFabric();
      // The tunnel socket is bound to every address (for roaming): one port per agent here.
      const state = hostStateFrom({ host, underlay: { address: `127.0.0.${i + 1}`, port: port0, genevePort: port0 + 1, tunnelPort: port0 + 2 + i } }, 'test');
      const agent = new Agent(state, log, join(dir, `${host}.sock`), (p) => {
        const m = fabric.port(p.name);
        vmPorts.set(p.name, m);
        return m;
      }, { tunnelKey: generateKeyPair(), identity: identityFromPem(generateIdentity().pem) });
      await agent.start();
      // Each host registered by the administrator, its agent enrolled with its own token.
      const { joinToken } = await api.call<{ joinToken: string }>('POST', '/v1/hosts', { name: host, address: `127.0.0.${i + 1}` });
      await agent.followController(url, joinToken).ready;
      agents.push(agent);
    }

    await api.call('POST', '/v1/networks', { name: 'blue', vni: 100 });
    await api.call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.10.0.0/24' });
    await api.call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:01', ips: ['10.10.0.11'] });
    await api.call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h2', mac: '02:00:00:00:00:02', ips: ['10.10.0.12'] });
    await until('both ports attached', () => agents[0].datapath.hasPort('vm1') && agents[1].datapath.hasPort('vm2'));

    // ARP for vm2 from vm1 is answered by h1's agent itself: nothing crosses the underlay.
    const vm1 = vmPorts.get('vm1')!;
    const vm2 = vmPorts.get('vm2')!;
    const before = agents[0].datapath.tunnelCounters(parseIpv4('127.0.0.2'))?.snapshot().tx.frames ?? 0;
    vm1.send(compose.ethernet(0xffffffffffff, parseMac('02:00:00:00:00:01'), EtherType.Arp, compose.arpRequest(parseMac('02:00:00:00:00:01'), parseIpv4('10.10.0.11'), parseIpv4('10.10.0.12'))));
    vm1.poke();
    const reply = await until('the ARP reply', () => vm1.take()[0]);
    const arp = ArpPacket.checked(reply, 14) as ArpPacket;
    assert.equal(arp.operation, ArpOperation.Reply);
    assert.equal(arp.senderMac, parseMac('02:00:00:00:00:02'));
    assert.equal(arp.senderIp, parseIpv4('10.10.0.12'));
    assert.equal(agents[0].datapath.tunnelCounters(parseIpv4('127.0.0.2'))?.snapshot().tx.frames ?? 0, before, 'no flood for a known address');

    // A unicast frame to vm2's MAC goes straight to h2 (its MAC was installed, not learned).
    const ping = compose.ethernet(parseMac('02:00:00:00:00:02'), parseMac('02:00:00:00:00:01'), EtherType.Ipv4, compose.icmpEchoV4(parseIpv4('10.10.0.11'), parseIpv4('10.10.0.12'), 1, 1, new Uint8Array(32)));
    vm1.send(ping);
    vm1.poke();
    const got = await until('the frame at vm2', () => vm2.take()[0]);
    assert.deepEqual(got, ping);
    assert.equal((EthernetFrame.checked(got) as EthernetFrame).src, parseMac('02:00:00:00:00:01'));

    // The controller shows what the agents report.
    type HostWithStatus = { status: { connected: boolean; ports: Record<string, { attached: boolean }> } };
    let h1: HostWithStatus | undefined;
    for (let i = 0; i < 100 && !h1?.status.ports.vm1?.attached; i++) {
      h1 = await api.call<HostWithStatus>('GET', '/v1/hosts/h1');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(h1!.status.connected, true);
    assert.deepEqual(h1!.status.ports, { vm1: { attached: true } });

    // Metrics, as Prometheus reads them: checked by promtool (Prometheus's own linter and
    // parser; without it a skip, which fails in CI), and for the series that say what
    // happened here.
    const agentText = await new Promise<string>((resolve, reject) => {
      httpGet({ socketPath: join(dir, 'h1.sock'), path: '/metrics' }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve(t));
      }).on('error', reject);
    });
    const ctlRes = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } });
    assert.equal(ctlRes.status, 200);
    const ctlText = await ctlRes.text();
    assert.equal((await fetch(`${url}/metrics`)).status, 401, 'metrics need the admin token');
    const series = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.ok(series(agentText, /^weft_tunnel_handshakes_total\{remote="127\.0\.0\.\d:\d+",host="h1"\} (\d+)$/m) >= 1, 'a handshake with h2');
    assert.ok(series(agentText, /^weft_port_rx_frames_total\{port="vm1",host="h1"\} (\d+)$/m) >= 1, 'frames from vm1');
    assert.equal(series(agentText, /^weft_tunnel_encrypted\{remote="127\.0\.0\.\d:\d+",host="h1"\} (\d+)$/m), 1);
    assert.ok(series(ctlText, /^weft_controller_http_request_duration_seconds_count\{method="POST",route="\/v1\/ports",status="201"\} (\d+)$/m) >= 2);
    assert.equal(series(ctlText, /^weft_controller_watches (\d+)$/m), 2);
    assert.ok(series(ctlText, /^weft_controller_store_commit_duration_seconds_count\{outcome="ok"\} (\d+)$/m) >= 4);
    await subtest(t, 'promtool parses the agent\'s and the controller\'s metrics, and finds nothing to lint in ours', { skip: hasCommand('promtool') ? false : 'needs promtool (Debian: prometheus)' }, () => {
      for (const [whose, text] of [['the agent', agentText], ['the controller', ctlText]]) {
        // Exit 1: it did not parse; 3: it parsed, with lint findings. prom-client's own Node.js
        // gauges (active handles, requests, resources) end in _total, which the linter
        // dislikes; every series of ours must be clean.
        const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
        const findings = `${check.stdout}${check.stderr}`.split('\n').filter((l) => l.trim() && !/^weft_(agent|controller)_nodejs_active_\w+_total /.test(l));
        assert.ok(check.status === 0 || (check.status === 3 && findings.length === 0), `promtool on ${whose}'s metrics (exit ${check.status}): ${findings.join('\n')}`);
      }
    });

    await api.call('DELETE', '/v1/ports/vm2');
    await until('vm2 removed on h2', () => !agents[1].datapath.hasPort('vm2'));
    // What happened, as `weft events` tells it.
    const events = await until('the events of all that', async () => {
      const e = await api.call<Array<{ kind: string; host?: string; message: string }>>('GET', '/v1/events?since=0');
      return e.some((x) => x.kind === 'port.deleted') && e.some((x) => x.kind === 'port.attached' && x.host === 'h2') ? e : undefined;
    });
    const said = events.map((e) => `${e.kind} ${e.message}`);
    for (const want of ['controller.started', 'host.created host h1 created', 'host.enrolled host h1 enrolled its identity', 'agent.connected the agent of h1 connected',
      'network.created network blue created', 'port.created port vm1 created on h1', 'port.attached port vm1 is up on h1', 'port.deleted port vm2 deleted']) {
      assert.ok(said.some((x) => x.startsWith(want)), `an event "${want}" in:\n${said.join('\n')}`);
    }
    const last = (events.at(-1) as unknown as { id: number }).id;
    const later = await api.call<Array<{ id: number }>>('GET', `/v1/events?since=${last}`);
    assert.ok(later.every((e) => e.id > last), 'since= gives only what came after');
    assert.equal((await fetch(`${url}/v1/events?since=-1`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } })).status, 400);
    await until('h2 gone from h1\'s tunnels', () => agents[0].datapath.stats(String).networks.length === 1 && agents[0].datapath.stats(String).tunnels.length === 0);
  } finally {
    for (const a of agents) await a.stop();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a view the agent cannot apply is logged and the agent keeps its state', { timeout: 10_000 }, async () => {
  const { WebSocketServer } = await import('ws');
  const { createServer } = await import('node:http');
  const { ControllerSource } = await import('../src/agent/controller-source.js');
  // A fake controller that accepts the join, then sends one broken view and one good one.
  const server = createServer((req, res) => res.end('{}'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.send(JSON.stringify({ type: 'state', revision: 1, view: { host: 'h1', networks: [{ name: 'blue', vni: 1, encapsulation: 'vxlan', remotes: [], neighbors: [{ mac: 'not-a-mac', ips: [] }] }], ports: [] } }));
    ws.send(JSON.stringify({ type: 'state', revision: 2, view: { host: 'h1', networks: [], ports: [] } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const errors: string[] = [];
  const applied: number[] = [];
  const source = new ControllerSource({
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    token: 't',
    identity: identityFromPem(generateIdentity().pem),
    host: { name: 'h1', address: '127.0.0.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 },
    log: { ...log, error: (o: { err: string }) => errors.push(o.err), info: () => {}, warn: () => {}, debug: () => {} } as never,
    apply: (view, revision) => {
      for (const n of view.networks) for (const nb of n.neighbors ?? []) parseMac(nb.mac);
      applied.push(revision);
    },
    status: () => ({ ports: {}, counters: null }),
  });
  try {
    source.start();
    await until('the good view', () => applied.length === 1);
    assert.deepEqual(applied, [2]);
    assert.equal(errors.length, 1);
    assert.match(errors[0], /not a MAC address/);
    assert.equal(source.appliedRevision, 2);
  } finally {
    source.stop();
    wss.close();
    server.close();
  }
});

test('after a controller restart, an agent at the current revision resumes without a resend', { timeout: 20_000 }, async () => {
  const { ControllerSource } = await import('../src/agent/controller-source.js');
  const dir = mkdtempSync(join(tmpdir(), 'weft-resume-'));
  let controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  const applied: number[] = [];
  let source: InstanceType<typeof ControllerSource> | null = null;
  try {
    await controller.start();
    const port = controller.port;
    const url = `http://127.0.0.1:${port}`;
    const api = () => new ApiClient({ url, token: controller.tokens.admin });
    const { joinToken } = await api().call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    source = new ControllerSource({
      url, token: joinToken, log, identity: identityFromPem(generateIdentity().pem),
      host: { name: 'h1', address: '127.0.0.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 },
      apply: (_view, revision) => applied.push(revision),
      status: () => ({ ports: {}, counters: null }),
    });
    source.start();
    await source.ready;
    await api().call('POST', '/v1/networks', { name: 'blue', vni: 100 });
    await api().call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' });
    await until('the port in a view', () => applied.length >= 2);
    const revision = source.appliedRevision;
    const appliesBefore = applied.length;

    await controller.stop();
    controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port }, loopbackUnderlay: true, log });
    await controller.start();
    let connected = false;
    for (let i = 0; i < 200 && !connected; i++) {
      connected = (await api().call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h1')).status.connected;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(connected, 'the agent reconnected');
    assert.equal(applied.length, appliesBefore, 'no view was resent: the agent had the current revision');
    assert.equal(source.appliedRevision, revision);

    await api().call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1' });
    await until('the next change', () => applied.length === appliesBefore + 1);
    assert.ok(source.appliedRevision > revision);
  } finally {
    source?.stop();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the watch stream: a host\'s own, signed with its identity; another host\'s signature is refused, and a revoked host\'s watch is closed', { timeout: 20_000 }, async () => {
  const { ControllerSource } = await import('../src/agent/controller-source.js');
  const { default: WebSocket } = await import('ws');
  const dir = mkdtempSync(join(tmpdir(), 'weft-watch-auth-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  const sources: Array<InstanceType<typeof ControllerSource>> = [];
  try {
    await controller.start();
    const url = `http://127.0.0.1:${controller.port}`;
    const api = new ApiClient({ url, token: controller.tokens.admin });
    const ids = ['h1', 'h2'].map(() => identityFromPem(generateIdentity().pem));
    for (const [i, name] of ['h1', 'h2'].entries()) {
      const { joinToken } = await api.call<{ joinToken: string }>('POST', '/v1/hosts', { name, address: `127.0.0.${i + 1}` });
      const source = new ControllerSource({
        url, token: joinToken, log, identity: ids[i],
        host: { name, address: `127.0.0.${i + 1}`, port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 },
        apply: () => {}, status: () => ({ ports: {}, counters: null }),
      });
      source.start();
      await source.ready;
      sources.push(source);
    }
    // h2's agent asks for h1's view, signing as itself, then as h1 with its own key.
    const attempt = (header: string) => new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${controller.port}/v1/agents/h1/watch`, { headers: { authorization: header } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => { ws.close(); resolve(101); });
      ws.on('error', () => {});
    });
    const watch = { method: 'GET', target: '/v1/agents/h1/watch' };
    assert.equal(await attempt(signAgentRequest('h2', ids[1].key, watch)), 403);
    assert.equal(await attempt(signAgentRequest('h1', ids[1].key, watch)), 401);
    assert.equal(await attempt(signAgentRequest('h1', ids[0].key, { method: 'GET', target: '/v1/agents/h1/watch?revision=5' })), 401, 'signed for another query');
    assert.equal(await attempt(signAgentRequest('h1', ids[0].key, watch)), 101, 'h1 itself');
    // Revoked: its watch is closed and it cannot come back.
    await until('h1 watching', async () => (await api.call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h1')).status.connected);
    await api.call('POST', '/v1/hosts/h1/revoke');
    await until('h1\'s watch closed', async () => !(await api.call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h1')).status.connected);
    assert.equal(await attempt(signAgentRequest('h1', ids[0].key, watch)), 401);
    assert.ok((await api.call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h2')).status.connected, 'h2 is untouched');
  } finally {
    for (const s of sources) s.stop();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a watch header is taken once: sent again, it is refused, and the agent that used it keeps its watch and its status', { timeout: 20_000 }, async () => {
  const { default: WebSocket } = await import('ws');
  const dir = mkdtempSync(join(tmpdir(), 'weft-watch-replay-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  const sockets: Array<InstanceType<typeof WebSocket>> = [];
  try {
    await controller.start();
    const url = `http://127.0.0.1:${controller.port}`;
    const api = new ApiClient({ url, token: controller.tokens.admin });
    const id = identityFromPem(generateIdentity().pem);
    const { joinToken } = await api.call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    const enrolled = await fetch(`${url}/v1/agents/join`, {
      method: 'POST', headers: { authorization: `Bearer ${joinToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'h1', address: '127.0.0.1', identityKey: id.publicKey }),
    });
    assert.equal(enrolled.status, 200);
    const status = async () => (await api.call<{ status: { connected: boolean; appliedRevision: number | null; ports: object } }>('GET', '/v1/hosts/h1')).status;
    const open = (header: string) => new Promise<{ code: number; ws: InstanceType<typeof WebSocket> }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${controller.port}/v1/agents/h1/watch?revision=-1`, { headers: { authorization: header } });
      sockets.push(ws);
      ws.on('unexpected-response', (_req, res) => resolve({ code: res.statusCode ?? 0, ws }));
      ws.on('open', () => resolve({ code: 101, ws }));
      ws.on('error', () => {});
    });
    // The agent's watch, as its ControllerSource signs it; it reports revision 1.
    const header = signAgentRequest('h1', id.key, { method: 'GET', target: '/v1/agents/h1/watch?revision=-1' });
    const agent = await open(header);
    assert.equal(agent.code, 101);
    let closed: number | null = null;
    agent.ws.on('close', (code) => (closed = code));
    agent.ws.send(JSON.stringify({ type: 'status', revision: 1, ports: {} }));
    await until('the agent\'s status', async () => (await status()).appliedRevision === 1);
    // The same header again, from someone who saw it: refused.
    const replay = await open(header);
    assert.equal(replay.code, 401, 'the replayed watch is refused');
    // The agent's watch is still up, and its status is the host's.
    agent.ws.send(JSON.stringify({ type: 'status', revision: 2, ports: {} }));
    await until('the agent\'s next status', async () => (await status()).appliedRevision !== 1);
    const now = await status();
    assert.deepEqual([now.connected, now.appliedRevision, now.ports], [true, 2, {}]);
    assert.equal(closed, null, 'the agent\'s watch was not replaced');
  } finally {
    for (const ws of sockets) ws.terminate();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a watch path names a host as host names are written: H1, like any other bad name, is refused with the rule it breaks', { timeout: 20_000 }, async () => {
  const { default: WebSocket } = await import('ws');
  const dir = mkdtempSync(join(tmpdir(), 'weft-watch-name-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  try {
    await controller.start();
    const api = new ApiClient({ url: `http://127.0.0.1:${controller.port}`, token: controller.tokens.admin });
    await api.call('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    const attempt = (host: string) => new Promise<{ code: number; says: string }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${controller.port}/v1/agents/${host}/watch`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } });
      ws.on('unexpected-response', (_req, res) => {
        let says = '';
        res.on('data', (d) => (says += d));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, says }));
      });
      ws.on('open', () => { ws.close(); resolve({ code: 101, says: '' }); });
      ws.on('error', () => {});
    });
    const rule = 'a name of lower-case letters, digits, "-", "_" and ".", up to 63 characters, starting with a letter or digit';
    assert.deepEqual(await attempt('H1'), { code: 400, says: 'Bad Request: "H1" is not a valid host name: names are lower case: give "h1", not "H1"\n' });
    for (const bad of ['-h1', 'h1%20', 'a'.repeat(64), '']) {
      assert.deepEqual(await attempt(bad), { code: 400, says: `Bad Request: ${JSON.stringify(bad)} is not a valid host name: ${rule}\n` }, bad);
    }
    assert.equal((await attempt('h9')).code, 409, 'a name, of a host that has not joined');
    assert.equal((await attempt('h1')).code, 101);
  } finally {
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TLS: the join token pins the controller\'s certificate authority; the agent checks it before sending anything, and keeps it', { timeout: 20_000 }, async () => {
  const { ControllerSource } = await import('../src/agent/controller-source.js');
  const dir = mkdtempSync(join(tmpdir(), 'weft-tls-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, tls: true, loopbackUnderlay: true, log });
  const sources: Array<InstanceType<typeof ControllerSource>> = [];
  try {
    await controller.start();
    assert.ok(controller.tls);
    const url = `https://127.0.0.1:${controller.port}`;
    const admin = new ApiClient({ url, token: controller.tokens.admin, ca: controller.tls.ca });
    const warnings: string[] = [];
    const source = (name: string, token: string, caFile: string) => {
      const s = new ControllerSource({
        url, token, caFile, identity: identityFromPem(generateIdentity().pem),
        log: { ...log, warn: (o: { err?: string }) => warnings.push(o.err ?? ''), info: () => {}, debug: () => {}, error: () => {} } as never,
        host: { name, address: name === 'h1' ? '127.0.0.1' : '127.0.0.2', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 },
        apply: () => {}, status: () => ({ ports: {}, counters: null }),
      });
      sources.push(s);
      s.start();
      return s;
    };
    const t1 = (await admin.call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' })).joinToken;
    assert.equal(t1.split('.')[1], controller.tls.fingerprint, 'the token names the authority');
    await source('h1', t1, join(dir, 'h1-ca.pem')).ready;
    assert.equal(readFileSync(join(dir, 'h1-ca.pem'), 'utf8').trim(), controller.tls.ca.trim(), 'pinned for later starts');
    // A token naming another authority (the controller was swapped, or someone is in between).
    const t2 = (await admin.call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h2', address: '127.0.0.2' })).joinToken;
    const forged = `${t2.split('.')[0]}.${'A'.repeat(43)}`;
    source('h2', forged, join(dir, 'h2-ca.pem'));
    await until('the refusal', () => warnings.find((w) => w.includes('is not the controller')));
    assert.match(warnings.find((w) => w.includes('is not the controller'))!, /its certificate authority's fingerprint is [A-Za-z0-9_-]{43}, the token names A{43}; nothing was sent to it/);
    assert.equal((await admin.call<{ identityKey?: string }>('GET', '/v1/hosts/h2')).identityKey, undefined, 'h2 did not enroll');
    assert.equal(existsSync(join(dir, 'h2-ca.pem')), false);
    // The admin's CLI with the wrong authority is refused too.
    const other = await loadOrCreateTls(join(dir, 'another-controller'));
    await assert.rejects(new ApiClient({ url, token: controller.tokens.admin, ca: other.ca }).call('GET', '/v1/hosts'), /certificate/);
  } finally {
    for (const s of sources) s.stop();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
