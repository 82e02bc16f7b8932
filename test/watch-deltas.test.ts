/**
 * The watch's deltas and faults, with real sockets: a real controller (SQLite file, API and
 * watch on loopback TCP) and the agent's watch client (ControllerSource) reaching it through
 * a TCP relay on loopback that the test can cut; a fake controller (a WebSocket server on
 * loopback) for deltas no real controller sends; a raw WebSocket client that stops reading.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { Controller } from '../src/controller/controller.js';
import { ApiClient } from '../src/cli/api-client.js';
import { ControllerSource } from '../src/agent/controller-source.js';
import { generateIdentity, identityFromPem } from '../src/view/agent-auth.js';
import type { HostView } from '../src/view/host-view.js';
import { waitFor } from './support/wait.js';

const log = pino({ level: 'silent' });
const HOST = { address: '127.0.0.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500, tunnelKey: Buffer.alloc(32, 1).toString('base64') };

/** A TCP relay on loopback to `target`: `cut()` drops every connection through it and
 * refuses new ones until `mend()`. */
async function relay(target: () => number): Promise<{ port: number; cut(): void; mend(): void; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let refusing = false;
  const server: TcpServer = createTcpServer((c) => {
    if (refusing) return c.destroy();
    const up = connect(target(), '127.0.0.1');
    open.add(c).add(up);
    c.pipe(up).pipe(c);
    const drop = () => {
      c.destroy();
      up.destroy();
      open.delete(c);
      open.delete(up);
    };
    c.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      refusing = true;
      for (const s of open) s.destroy();
    },
    mend() {
      refusing = false;
    },
    close: () => new Promise<void>((r) => {
      for (const s of open) s.destroy();
      server.close(() => r());
    }),
  };
}

/** The agent's watch client for h1, through `url`, recording each view it applies. */
function agentFor(url: string, joinToken: string) {
  const applied: Array<{ view: HostView; revision: number }> = [];
  const source = new ControllerSource({
    url, token: joinToken, log, identity: identityFromPem(generateIdentity().pem), host: { name: 'h1', ...HOST },
    apply: (view, revision) => applied.push({ view, revision }),
    status: () => ({ ports: {}, counters: null }),
  });
  return { source, applied, last: () => applied.at(-1)! };
}

/** Asks the controller for h1's full state (weft host resync) and returns it as the agent
 * applied it, after checking the agent's view before it was the same. */
async function assertSameAsFull(api: ApiClient, a: ReturnType<typeof agentFor>, what: string): Promise<void> {
  const before = a.last();
  const states = a.source.watchStats.states;
  assert.deepEqual(await api.call('POST', '/v1/hosts/h1/resync'), { host: 'h1', sent: 'state' });
  await waitFor(() => a.source.watchStats.states > states, { what: 'the full state asked for' });
  assert.equal(a.source.watchStats.lastStateReason, 'admin');
  assert.deepStrictEqual(before.view, a.last().view, `${what}: the agent's view equals a full state`);
  assert.equal(before.revision, a.last().revision);
}

test('a watch dropped mid-stream resumes with the deltas since its revision; after a controller restart, with a full state that says why', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-deltas-'));
  let controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  await controller.start();
  const net = await relay(() => controller.port);
  let a: ReturnType<typeof agentFor> | null = null;
  try {
    const api = () => new ApiClient({ url: `http://127.0.0.1:${controller.port}`, token: controller.tokens.admin });
    const { joinToken } = await api().call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    await api().call('POST', '/v1/hosts', { name: 'h2', address: '127.0.0.2', tunnelKey: Buffer.alloc(32, 2).toString('base64') });
    a = agentFor(`http://127.0.0.1:${net.port}`, joinToken);
    a.source.start();
    await a.source.ready;
    await api().call('POST', '/v1/networks', { name: 'blue', vni: 100 });
    await api().call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.0.0.0/24' });
    await api().call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' });
    for (let i = 0; i < 5; i++) await api().call('POST', '/v1/ports', { name: `r${i}`, network: 'blue', host: 'h2' });
    await waitFor(() => a!.last().view.networks[0]?.neighbors?.length === 6, { what: 'six neighbors on h1' });
    assert.equal(a.source.watchStats.states, 1, 'one full state, the first');
    assert.ok(a.source.watchStats.deltas >= 5, 'then deltas');

    // The watch is dropped; changes are made meanwhile; it comes back.
    net.cut();
    await waitFor(async () => !(await api().call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h1')).status.connected, { what: 'h1 away' });
    await api().call('DELETE', '/v1/ports/r0');
    await api().call('POST', '/v1/ports', { name: 'r9', network: 'blue', host: 'h2' });
    await api().call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1' });
    const deltas = a.source.watchStats.deltas;
    net.mend();
    await waitFor(() => a!.last().view.ports.length === 2, { what: 'vm2 on h1' });
    assert.equal(a.source.watchStats.states, 1, 'no full state: it resumed');
    assert.equal(a.source.watchStats.deltas, deltas + 3, 'with the three deltas since its revision');
    assert.deepEqual(a.last().view.networks[0].neighbors!.map((n) => n.port ?? n.mac).length, 7);
    await assertSameAsFull(api(), a, 'after resuming');

    // Away again, changes, and the controller restarts meanwhile: its history is gone.
    net.cut();
    await api().call('DELETE', '/v1/ports/r1');
    const port = controller.port;
    await controller.stop();
    controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port }, loopbackUnderlay: true, log });
    await controller.start();
    const states = a.source.watchStats.states;
    net.mend();
    await waitFor(() => a!.source.watchStats.states > states, { what: 'a full state after the restart' });
    assert.equal(a.source.watchStats.lastStateReason, 'compacted');
    assert.equal(a.last().view.networks[0].neighbors!.length, 6, 'r1 is gone');
    await api().call('POST', '/v1/ports', { name: 'r10', network: 'blue', host: 'h2' });
    await waitFor(() => a!.last().view.networks[0].neighbors!.length === 7, { what: 'the next change, by delta' });
    await assertSameAsFull(api(), a, 'after the restart');
    assert.equal(a.source.watchStats.refused, 0);
    const metrics = await (await fetch(`http://127.0.0.1:${controller.port}/metrics`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } })).text();
    assert.match(metrics, /^weft_controller_watch_deltas_total [1-9]/m);
    assert.match(metrics, /^weft_controller_watch_full_states_total [1-9]/m);
  } finally {
    a?.source.stop();
    await net.close();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an agent away longer than the history kept gets a full state, and says why', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-compacted-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log, watch: { history: { messages: 2, bytes: 1 << 20 } } });
  await controller.start();
  const net = await relay(() => controller.port);
  let a: ReturnType<typeof agentFor> | null = null;
  try {
    const api = new ApiClient({ url: `http://127.0.0.1:${controller.port}`, token: controller.tokens.admin });
    const { joinToken } = await api.call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    await api.call('POST', '/v1/networks', { name: 'blue', vni: 100 });
    a = agentFor(`http://127.0.0.1:${net.port}`, joinToken);
    a.source.start();
    await a.source.ready;
    net.cut();
    await waitFor(async () => !(await api.call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h1')).status.connected, { what: 'h1 away' });
    for (let i = 0; i < 3; i++) await api.call('POST', '/v1/ports', { name: `vm${i}`, network: 'blue', host: 'h1' });
    net.mend();
    await waitFor(() => a!.source.watchStats.states === 2, { what: 'a second full state' });
    assert.equal(a.source.watchStats.lastStateReason, 'compacted');
    assert.deepEqual(a.last().view.ports.map((p) => p.name), ['vm0', 'vm1', 'vm2']);
    assert.equal(a.source.watchStats.deltas, 0);
  } finally {
    a?.source.stop();
    await net.close();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weft host resync: the CLI sends a host its full state; an agent away is a conflict', { timeout: 30_000 }, async () => {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'weft-resync-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  await controller.start();
  let a: ReturnType<typeof agentFor> | null = null;
  try {
    const url = `http://127.0.0.1:${controller.port}`;
    const api = new ApiClient({ url, token: controller.tokens.admin });
    const { joinToken } = await api.call<{ joinToken: string }>('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    // The CLI as a child process (not spawnSync: the controller is in this process).
    const weft = (...args: string[]) => new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [cli, ...args, '--controller', url], { env: { ...process.env, WEFT_TOKEN: controller.tokens.admin } }, (err, stdout, stderr) => {
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      });
    });
    const away = await weft('host', 'resync', 'h1');
    assert.equal(away.status, 1, away.stderr);
    assert.match(away.stderr, /the agent of host h1 is not connected/);
    a = agentFor(url, joinToken);
    a.source.start();
    await a.source.ready;
    const r = await weft('host', 'resync', 'h1');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'sent h1 its full state');
    await waitFor(() => a!.source.watchStats.lastStateReason === 'admin', { what: 'the full state' });
    const unknown = await weft('host', 'resync', 'nope');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /there is no host named nope/);
  } finally {
    a?.source.stop();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a delta on the wrong revision, or removing what the agent does not have, is refused: the agent asks for a full state and counts it', { timeout: 20_000 }, async () => {
  // A fake controller: accepts the join; on the watch, a full state at revision 5, then a
  // delta from revision 3; after the agent asks, a full state at 7 and a delta removing a
  // neighbor that is not there; then a good state and a good delta.
  const server = createServer((_req, res) => res.end('{}'));
  const wss = new WebSocketServer({ server });
  const asked: Array<{ type: string; reason?: string }> = [];
  const blue = (neighbors: Array<{ mac: string; ips: string[]; port?: string; remote?: { address: string; port: number } }>) => ({ name: 'blue', vni: 1, encapsulation: 'vxlan', remotes: [], neighbors });
  const one = { mac: '02:00:00:00:00:01', ips: ['10.0.0.1'], remote: { address: '127.0.0.2', port: 4789 } };
  const two = { mac: '02:00:00:00:00:02', ips: ['10.0.0.2'], remote: { address: '127.0.0.2', port: 4789 } };
  let urlSeen = '';
  wss.on('connection', (ws, req) => {
    urlSeen = req.url ?? '';
    ws.send(JSON.stringify({ type: 'state', revision: 5, view: { host: 'h1', networks: [blue([one])], ports: [] }, keys: { blue: ['p1'] }, groups: {} }));
    ws.send(JSON.stringify({ type: 'delta', from: 3, revision: 6, networks: { blue: { neighbors: { set: [['p2', two]] } } } }));
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type: string; reason?: string };
      if (m.type !== 'resync') return;
      asked.push(m);
      if (asked.length === 1) {
        ws.send(JSON.stringify({ type: 'state', revision: 7, view: { host: 'h1', networks: [blue([one])], ports: [] }, keys: { blue: ['p1'] }, groups: {}, reason: 'requested' }));
        ws.send(JSON.stringify({ type: 'delta', from: 7, revision: 8, networks: { blue: { neighbors: { remove: ['p9'] } } } }));
        // Ignored: the agent waits for the full state it asked for.
        ws.send(JSON.stringify({ type: 'delta', from: 7, revision: 9, networks: { blue: { neighbors: { set: [['p2', two]] } } } }));
      } else if (asked.length === 2) {
        ws.send(JSON.stringify({ type: 'state', revision: 10, view: { host: 'h1', networks: [blue([one])], ports: [] }, keys: { blue: ['p1'] }, groups: {}, reason: 'requested' }));
        ws.send(JSON.stringify({ type: 'delta', from: 10, revision: 11, networks: { blue: { neighbors: { set: [['p2', two]] } } } }));
        // Malformed inside, past the outer checks (an address set's part that is no pair):
        // refused like the others, not the end of the agent.
        ws.send(JSON.stringify({ type: 'delta', from: 11, revision: 12, addressSets: { set: { g: { blue: [5] } } } }));
      } else {
        ws.send(JSON.stringify({ type: 'state', revision: 13, view: { host: 'h1', networks: [blue([one, two])], ports: [] }, keys: { blue: ['p1', 'p2'] }, groups: {}, reason: 'requested' }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const warned: string[] = [];
  const applied: Array<{ view: HostView; revision: number }> = [];
  const source = new ControllerSource({
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, token: 't', identity: identityFromPem(generateIdentity().pem), host: { name: 'h1', ...HOST },
    log: { ...log, warn: (o: { why?: string }) => o.why && warned.push(o.why), info: () => {}, error: () => {}, debug: () => {} } as never,
    apply: (view, revision) => applied.push({ view, revision }),
    status: () => ({ ports: {}, counters: null }),
  });
  try {
    source.start();
    await waitFor(() => applied.at(-1)?.revision === 13, { what: 'the full state after the malformed delta applied' });
    assert.match(urlSeen, /[?&]protocol=2(&|$)/, 'the agent says it speaks deltas');
    assert.deepEqual(applied.map((x) => x.revision), [5, 7, 10, 11, 13], 'the refused deltas were not applied; the one after a refusal was ignored');
    assert.deepEqual(applied[3].view.networks[0].neighbors, [one, two]);
    assert.equal(source.watchStats.refused, 3);
    assert.equal(source.watchStats.resyncs, 3);
    assert.equal(asked.length, 3);
    assert.match(asked[2].reason!, /a malformed delta \(/);
    assert.match(asked[0].reason!, /from revision 3, but this host is at revision 5/);
    assert.match(asked[1].reason!, /remove names port p9, which this host does not have/);
    assert.equal(warned.length, 3, 'each refusal logged');
    assert.equal(source.watchStats.lastRefusal, warned[2]);
    assert.equal(source.appliedRevision, 13);
  } finally {
    source.stop();
    wss.close();
    server.close();
  }
});

test('the agent asks for a full state periodically, as a safety net', { timeout: 20_000 }, async () => {
  const server = createServer((_req, res) => res.end('{}'));
  const wss = new WebSocketServer({ server });
  const asked: string[] = [];
  let revision = 1;
  const state = (reason?: string) => JSON.stringify({ type: 'state', revision, view: { host: 'h1', networks: [], ports: [] }, keys: {}, groups: {}, ...(reason ? { reason } : {}) });
  wss.on('connection', (ws) => {
    ws.send(state());
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type: string; reason?: string };
      if (m.type !== 'resync') return;
      asked.push(m.reason!);
      revision++;
      ws.send(state('requested'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const source = new ControllerSource({
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, token: 't', identity: identityFromPem(generateIdentity().pem), host: { name: 'h1', ...HOST },
    log, apply: () => {}, status: () => ({ ports: {}, counters: null }), resyncMs: 100,
  });
  try {
    source.start();
    await waitFor(() => source.watchStats.states >= 3, { what: 'two periodic full states' });
    assert.deepEqual(asked.slice(0, 2), ['periodic', 'periodic']);
    assert.equal(source.watchStats.lastStateReason, 'requested');
    assert.equal(source.watchStats.refused, 0);
  } finally {
    source.stop();
    wss.close();
    server.close();
  }
});

test('an agent that does not say protocol=2 gets its full view on every change, as before', { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-v1-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log });
  await controller.start();
  let ws: WebSocket | null = null;
  try {
    const api = new ApiClient({ url: `http://127.0.0.1:${controller.port}`, token: controller.tokens.admin });
    await api.call('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    await api.call('POST', '/v1/networks', { name: 'blue', vni: 100 });
    const got: Array<{ type: string; view?: HostView; keys?: unknown }> = [];
    ws = new WebSocket(`ws://127.0.0.1:${controller.port}/v1/agents/h1/watch?revision=-1`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } });
    ws.on('message', (data) => got.push(JSON.parse(String(data))));
    await waitFor(() => got.length === 1, { what: 'the first view' });
    await api.call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1' });
    await api.call('POST', '/v1/ports', { name: 'vm2', network: 'blue', host: 'h1' });
    await waitFor(() => got.at(-1)?.view?.ports.length === 2, { what: 'both ports in a view' });
    assert.deepEqual([...new Set(got.map((m) => m.type))], ['state'], 'full views only');
    assert.ok(got.every((m) => m.keys === undefined), 'without what deltas need');
  } finally {
    ws?.terminate();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a watch client that stops reading is disconnected at its bound and counted', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-slow-'));
  const limit = 256 * 1024;
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, loopbackUnderlay: true, log, watch: { bufferLimit: limit } });
  await controller.start();
  let ws: WebSocket | null = null;
  try {
    const url = `http://127.0.0.1:${controller.port}`;
    const api = new ApiClient({ url, token: controller.tokens.admin });
    await api.call('POST', '/v1/hosts', { name: 'h1', address: '127.0.0.1' });
    await api.call('POST', '/v1/networks', { name: 'blue', vni: 100, encryption: 'none' });
    await api.call('POST', '/v1/subnets', { name: 'blue4', network: 'blue', cidr: '10.0.0.0/16' });
    // An old-protocol client (a full view on every change), as the administrator; it reads
    // the first message, then nothing.
    ws = new WebSocket(`ws://127.0.0.1:${controller.port}/v1/agents/h1/watch?revision=-1`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } });
    const client = ws;
    await new Promise((r) => client.once('message', r));
    (client as unknown as { _socket: Socket })._socket.pause();
    let closed = false;
    client.on('close', () => (closed = true));
    // Changes to h1's view until the controller gives up on it.
    let i = 0;
    await waitFor(async () => {
      await api.call('POST', '/v1/ports', { name: `vm${i}`, network: 'blue', host: 'h1', allowedAddresses: [{ ip: `10.1.${i >> 8}.${i & 255}` }] });
      i++;
      const events = await api.call<Array<{ kind: string }>>('GET', '/v1/events');
      return events.some((e) => e.kind === 'agent.slow');
    }, { what: 'the slow client cut off', timeoutMs: 50_000, everyMs: 1 });
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${controller.tokens.admin}` } })).text();
    assert.match(metrics, /^weft_controller_watch_slow_disconnects_total 1$/m);
    (client as unknown as { _socket: Socket })._socket.resume();
    await waitFor(() => closed, { what: 'the connection closed' });
    const host = await api.call<{ status: { connected: boolean } }>('GET', '/v1/hosts/h1');
    assert.equal(host.status.connected, false);
  } finally {
    ws?.terminate();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
