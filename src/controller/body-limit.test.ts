/**
 * A body over the limit is answered 413 and the connection closed, and the answer says
 * `Connection: close` (a client that believed `keep-alive` would send its next request into
 * a closed connection). Over a raw socket on loopback, to see the bytes the client sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { apiApp, BODY_LIMIT } from './api.js';
import { Applier } from './apply.js';
import { NetworkService } from './service.js';
import { MemoryStore } from './store/memory-store.js';

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
    s.on('error', reject);
    s.on('close', () => resolve({ text, closed: true }));
    s.write(request);
  });
}

test('a 413 says Connection: close, and the connection is closed', async () => {
  const store = new MemoryStore();
  const app = apiApp({ service: new NetworkService(store), applier: new Applier(store), adminToken: 't', agents: { status: () => ({}) } });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
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

    // An ordinary request keeps its connection, as before.
    const body = '{"name":"blue"}';
    const ok = await exchange(port, head(body.length) + body, true);
    assert.match(ok.text, /^HTTP\/1\.1 201 /);
    assert.match(ok.text, /\r\nConnection: keep-alive\r\n/i);
  } finally {
    server.close();
  }
});
