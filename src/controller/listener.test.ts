/**
 * The controller under clients that connect and send nothing: real sockets on loopback
 * against a real controller. 127.0.0.2 is another client (every 127/8 address is this
 * machine's, and a socket bound to it is counted apart from 127.0.0.1's).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Controller } from './controller.js';
import { clientOf, HEAD_TIMEOUT_MS, MAX_CONNECTIONS_PER_CLIENT, TIMEOUT_CHECK_MS, TLS_HANDSHAKE_TIMEOUT_MS } from './listener.js';
import { MemoryStore } from './store/memory-store.js';

const log = pino({ level: 'silent' });

async function until(what: string, f: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A connection that sends nothing, and what became of it. */
interface Idle {
  socket: Socket;
  connected: boolean;
  closed: boolean;
  /** What the controller sent before closing (a 408, or nothing). */
  heard: string;
}

function idle(port: number, sockets: Socket[]): Idle {
  const socket = connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  const c: Idle = { socket, connected: false, closed: false, heard: '' };
  socket.on('connect', () => (c.connected = true));
  socket.on('data', (d) => (c.heard += String(d)));
  socket.on('close', () => (c.closed = true));
  socket.on('error', () => {});
  return c;
}

/** GET /healthz from `localAddress`: the status, or the error's code. */
function healthz(port: number, localAddress: string, tls: boolean): Promise<number | string> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path: '/healthz', localAddress, agent: false, timeout: 5000, rejectUnauthorized: false };
    const req = (tls ? httpsRequest : httpRequest)(options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

async function withController(tls: boolean, f: (c: Controller, sockets: Socket[]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-listener-'));
  const controller = new Controller({ dataDir: dir, listen: { host: '127.0.0.1', port: 0 }, store: new MemoryStore(), tls, log });
  const sockets: Socket[] = [];
  try {
    await controller.start();
    await f(controller, sockets);
  } finally {
    for (const s of sockets) s.destroy();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Long enough for the head (or handshake) timeout and Node's look for it, with room. */
const CLOSED_WITHIN_MS = 2 * (Math.max(HEAD_TIMEOUT_MS, TLS_HANDSHAKE_TIMEOUT_MS) + TIMEOUT_CHECK_MS);

for (const tls of [false, true]) {
  test(`${tls ? 'https' : 'http'}: a client holding its share of idle connections is refused more; another client is still answered; the idle ones are closed by the timeout`, { timeout: 60_000 }, async () => {
    await withController(tls, async (controller, sockets) => {
      const extra = 20;
      const conns = Array.from({ length: MAX_CONNECTIONS_PER_CLIENT + extra }, () => idle(controller.port, sockets));
      // Those beyond the share are closed as they are accepted, without a word.
      await until('the extra connections closed', () => conns.filter((c) => c.closed).length >= extra, CLOSED_WITHIN_MS);
      assert.equal(controller.clients.refused, extra);
      assert.equal(controller.clients.holding('127.0.0.1'), MAX_CONNECTIONS_PER_CLIENT);
      // 127.0.0.1 holds all it may; 127.0.0.2 is another client, and is answered.
      assert.equal(await healthz(controller.port, '127.0.0.2', tls), 200);
      // The idle ones are closed by the head timeout (the TLS handshake's, on https).
      await until('every idle connection closed', () => conns.every((c) => c.closed), CLOSED_WITHIN_MS);
      assert.equal(conns.filter((c) => c.heard === '').length, tls ? conns.length : extra, 'the refused heard nothing; on http, the idle heard a 408');
      if (!tls) assert.ok(conns.filter((c) => c.heard !== '').every((c) => c.heard.startsWith('HTTP/1.1 408')));
      await until('the share given back', () => controller.clients.holding('127.0.0.1') === 0, CLOSED_WITHIN_MS);
      assert.equal(await healthz(controller.port, '127.0.0.1', tls), 200, 'the first client is answered again');
    });
  });
}

test('a client is its IPv4 address, or its IPv6 /64', () => {
  assert.equal(clientOf('192.0.2.7'), '192.0.2.7');
  assert.equal(clientOf('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientOf('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(clientOf('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  assert.equal(clientOf('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientOf('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientOf('::1'), '0:0:0:0::/64');
  assert.equal(clientOf(undefined), null, 'a unix socket\'s peer');
});
