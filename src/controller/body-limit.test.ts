/**
 * A body over the limit is answered 413 and the connection closed, and the answer says
 * `Connection: close` (a client that believed `keep-alive` would send its next request into
 * a closed connection); the close lingers, so that a client still sending reads the answer
 * rather than a reset. Over a raw socket on loopback, to see the bytes the client sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'node:http';
import { Worker } from 'node:worker_threads';
import { BODY_LIMIT } from './api.js';

/** Sends `request` on a fresh connection; resolves with all it got once the server closes
 * it, or (keepOpen) with the first answer while the connection is still open. */
function exchange(port: number, request: string, keepOpen = false): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (keepOpen && /\r\n\r\n[\s\S]*\}$/.test(text)) {
        s.destroy();
        resolve({ text, closed: false });
      }
    });
    s.on('error', (err) => (text ? undefined : reject(err)));
    s.on('close', () => resolve({ text, closed: true }));
    s.write(request);
  });
}

/** Streams a chunked body into POST /v1/networks until the answer comes; resolves with its
 * status once the answer has been read whole (a reset before that rejects). */
function flood(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request({ host: '127.0.0.1', port, path: '/v1/networks', method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      answered = true;
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', (err) => (answered ? undefined : reject(err)));
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const pump = () => {
      while (!answered) if (!req.write(chunk)) return void req.once('drain', pump);
    };
    req.write('{"name":"');
    pump();
  });
}

/** The API on loopback, in a thread of its own: a client in this thread then sends while
 * the server answers and closes, as a real client does. Resolves with its port and a stop. */
async function serveInThread(): Promise<{ port: number; stop(): Promise<number> }> {
  const here = (m: string) => new URL(m, import.meta.url).href;
  const worker = new Worker(`
    const { parentPort } = await import('node:worker_threads');
    const { createAdaptorServer } = await import('@hono/node-server');
    const { apiApp } = await import(${JSON.stringify(here('./api.js'))});
    const { Applier } = await import(${JSON.stringify(here('./apply.js'))});
    const { NetworkService } = await import(${JSON.stringify(here('./service.js'))});
    const { MemoryStore } = await import(${JSON.stringify(here('./store/memory-store.js'))});
    const store = new MemoryStore();
    const app = apiApp({ service: new NetworkService(store), applier: new Applier(store), adminToken: 't', agents: { status: () => ({}) } });
    const server = createAdaptorServer({ fetch: app.fetch });
    server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
    parentPort.on('message', () => { server.closeAllConnections(); server.close(() => process.exit(0)); });
  `, { eval: true, type: 'module' } as never);
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { port, stop: () => new Promise((resolve) => { worker.once('exit', resolve); worker.postMessage('stop'); }) };
}

test('a 413 says Connection: close, and the connection is closed', async () => {
  const { port, stop } = await serveInThread();
  const head = (length: number) => `POST /v1/networks HTTP/1.1\r\nHost: controller\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
  try {
    // Half of a body twice the limit: the answer comes while the client is still sending.
    const big = await exchange(port, head(2 * BODY_LIMIT) + 'x'.repeat(BODY_LIMIT + 1000));
    const [status, ...headers] = big.text.split('\r\n\r\n')[0].split('\r\n');
    assert.match(status, /^HTTP\/1\.1 413 /);
    const connection = headers.filter((h) => /^connection:/i.test(h)).map((h) => h.split(':')[1].trim().toLowerCase());
    assert.deepEqual(connection, ['close'], headers.join(' | '));
    assert.ok(!headers.some((h) => /^keep-alive:/i.test(h)), 'no Keep-Alive header');
    assert.ok(big.closed);
    assert.match(big.text, /"status":413/);

    // A client still sending when the answer comes: the close lingers, so what it reads is
    // the answer, not a reset (tried a few times: without the linger most tries fail).
    for (let i = 0; i < 8; i++) {
      const r = await flood(port);
      assert.equal(r, 413, `try ${i}`);
    }

    // An ordinary request keeps its connection, as before.
    const body = '{"name":"blue"}';
    const ok = await exchange(port, head(body.length) + body, true);
    assert.match(ok.text, /^HTTP\/1\.1 201 /);
    assert.match(ok.text, /\r\nConnection: keep-alive\r\n/i);
  } finally {
    await stop();
  }
});
