/**
 * What a hostile or careless client meets at the controller's edges, against a real `weft
 * controller` process: bodies larger than any request needs are refused while they stream
 * in, non-JSON is a 415, the database file is its owner's alone, and a data directory that
 * cannot be used ends the process with a sentence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startController } from './support/controller.js';

/** Streams up to `total` bytes of a chunked body; resolves with the answer and how much had
 * been written when it came. */
function flood(port: number, path: string, token: string, total: number): Promise<{ status: number; body: string; writtenWhenAnswered: number }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let answeredAt = -1;
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      answeredAt = written;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, writtenWhenAnswered: answeredAt }));
    });
    req.on('error', (err) => (answeredAt >= 0 ? undefined : reject(err)));
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    req.write('{"name":"');
    const pump = () => {
      while (answeredAt < 0 && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (answeredAt < 0) req.end('"}');
    };
    pump();
  });
}

test('oversized and mistyped bodies are refused as problems, without the controller holding them', { timeout: 60_000 }, async () => {
  const ctl = await startController('weft-limits-');
  try {
    const { dir, port, url: base, token: admin } = ctl;
    // An agent's route, with a host's join token.
    const registered = await fetch(`${base}/v1/hosts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'h1', address: '192.0.2.1' }) });
    const { joinToken } = await registered.json() as { joinToken: string };
    const r = await flood(port, '/v1/agents/join', joinToken, 100 * 1024 * 1024);
    assert.equal(r.status, 413);
    assert.deepEqual(JSON.parse(r.body).errors, [{ field: '(body)', message: 'too large' }]);
    assert.ok(r.writtenWhenAnswered < 16 * 1024 * 1024, `refused only after ${r.writtenWhenAnswered} bytes`);

    const declared = await fetch(`${base}/v1/networks`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(100_000) }) });
    assert.equal(declared.status, 413);
    assert.equal(declared.headers.get('content-type'), 'application/problem+json');

    const text = await fetch(`${base}/v1/networks`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'text/plain' }, body: '{"name":"blue"}' });
    assert.equal(text.status, 415);
    assert.match((await text.json() as { detail: string }).detail, /^send the body as JSON, with Content-Type: application\/json \(not "text\/plain"\)$/);

    const fine = await fetch(`${base}/v1/networks`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json; charset=utf-8' }, body: '{"name":"blue"}' });
    assert.equal(fine.status, 201, 'the controller still works');

    for (const f of ['weft.db', 'admin.token']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  } finally {
    await ctl.stop();
  }
});

test('a data directory that cannot be used ends the controller with a sentence', { timeout: 30_000 }, () => {
  const file = join(mkdtempSync(join(tmpdir(), 'weft-datadir-')), 'a-file');
  spawnSync('touch', [file]);
  for (const [dir, why] of [['/proc/nope', /^weft: cannot use the data directory \/proc\/nope: cannot create \/proc\/nope \(ENOENT\)$/], [join(file, 'sub'), /is not a directory$/]] as const) {
    const r = spawnSync(process.execPath, [CLI, 'controller', '--data-dir', dir, '--listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.signal, null, `${dir}: still running after 20 s`);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr.trim(), why);
  }
  rmSync(join(file, '..'), { recursive: true, force: true });
});

test('the built CLI is executable', () => {
  assert.notEqual(statSync(CLI).mode & 0o111, 0, 'dist/src/cli/main.js has its execute bit after npm run build');
});
