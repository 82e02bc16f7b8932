/**
 * The CLI never downgrades: an https:// controller gets TLS with a verified certificate or
 * nothing, and the token never leaves in clear; a URL's path is kept; a URL without a scheme
 * and a wrong token get sentences. The controllers here are small local servers that record
 * what reached them. A controller slow to answer is waited for (an apply: while it works)
 * and never called out of reach.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Runs the CLI without blocking the event loop (the servers live in this process). */
function weft(env: Record<string, string>, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, WEFT_CONTROLLER: '', WEFT_TOKEN: '', WEFT_CA_FILE: '', HOME: '/nonexistent', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

test('https:// is TLS with the certificate verified, the URL path kept; never plain HTTP', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=weft test controller',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const seen: Array<{ path: string; auth: string }> = [];
  const tls = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    seen.push({ path: req.url ?? '', auth: req.headers.authorization ?? '' });
    res.writeHead(req.headers.authorization === 'Bearer right' ? 200 : 401, { 'content-type': 'application/json' });
    res.end(req.headers.authorization === 'Bearer right' ? '[]' : JSON.stringify({ title: 'Unauthorized', status: 401, detail: 'the token is not valid for this request' }));
  });
  // A plain HTTP server standing where an https:// URL points: it records every byte, and
  // answers as plain HTTP would.
  let plainBytes = '';
  const plain = createNetServer((s) => s.on('data', (d) => {
    plainBytes += d.toString('latin1');
    s.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  }).on('error', () => {}));
  await Promise.all([new Promise<void>((r) => tls.listen(0, '127.0.0.1', r)), new Promise<void>((r) => plain.listen(0, '127.0.0.1', r))]);
  const tlsPort = (tls.address() as AddressInfo).port;
  const plainPort = (plain.address() as AddressInfo).port;
  try {
    const ok = await weft({ WEFT_TOKEN: 'right', WEFT_CA_FILE: join(dir, 'cert.pem') }, 'network', 'list', '--controller', `https://127.0.0.1:${tlsPort}/weft/`);
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(seen, [{ path: '/weft/v1/networks', auth: 'Bearer right' }], 'over TLS, with the path kept');

    const untrusted = await weft({ WEFT_TOKEN: 'right' }, 'network', 'list', '--controller', `https://127.0.0.1:${tlsPort}`);
    assert.equal(untrusted.status, 1);
    assert.match(untrusted.stderr, /^weft: cannot reach the controller at https:\/\/127\.0\.0\.1:\d+ over TLS: .*self.signed/);
    assert.equal(seen.length, 1, 'nothing was sent to a controller whose certificate is not trusted');

    const downgrade = await weft({ WEFT_TOKEN: 'secret-token' }, 'network', 'list', '--controller', `https://127.0.0.1:${plainPort}`);
    assert.equal(downgrade.status, 1);
    assert.match(downgrade.stderr, /over TLS/);
    assert.ok(!plainBytes.includes('secret-token') && !plainBytes.includes('Bearer'), 'the token never went out in clear');
    assert.ok(plainBytes.length > 0 && plainBytes.charCodeAt(0) === 0x16, 'what arrived was a TLS handshake');

    const wrong = await weft({ WEFT_TOKEN: 'wrong', WEFT_CA_FILE: join(dir, 'cert.pem') }, 'network', 'list', '--controller', `https://127.0.0.1:${tlsPort}`);
    assert.equal(wrong.stderr.trim(), "weft: the token is not valid for this request\nthe admin token is the file admin.token in the controller's data directory (--data-dir, /var/lib/weft by default)");

    const noScheme = await weft({ WEFT_TOKEN: 'right' }, 'network', 'list', '--controller', '127.0.0.1:7411');
    assert.equal(noScheme.status, 2);
    assert.equal(noScheme.stderr.trim(), '"127.0.0.1:7411" has no scheme: give http://127.0.0.1:7411 (or https://127.0.0.1:7411 for TLS)');
  } finally {
    tls.close();
    plain.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a controller slow to answer is not one out of reach: apply waits and says so; other requests say the request may still be running', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-slow-'));
  const file = join(dir, 'net.yaml');
  writeFileSync(file, 'networks:\n  - { name: blue, vni: 100 }\n  - { name: red, vni: 200 }\n');
  // Plans an apply in 12 s (longer than any request used to be waited for), carries it out
  // at once; never answers a list.
  const held: ServerResponse[] = [];
  const actions = [
    { verb: 'create', kind: 'networks', name: 'blue', text: '+ network blue (vni 100, vxlan)' },
    { verb: 'create', kind: 'networks', name: 'red', text: '+ network red (vni 200, vxlan)' },
  ];
  const slow = createHttpServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      if (req.url !== '/v1/apply') {
        held.push(res);
        return;
      }
      const body = JSON.parse(text) as { dryRun?: boolean };
      const answer = { actions, kept: [], planDigest: 'a'.repeat(64), applied: !body.dryRun, revision: body.dryRun ? 1 : 2 };
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      }, body.dryRun ? 12_000 : 0);
    });
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const closed = createNetServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const nobody = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((r) => closed.close(() => r()));
  try {
    const [applied, listed, refused] = await Promise.all([
      weft({ WEFT_TOKEN: 't', WEFT_CONTROLLER: url }, 'apply', '-f', file),
      weft({ WEFT_TOKEN: 't', WEFT_CONTROLLER: url }, 'network', 'list'),
      weft({ WEFT_TOKEN: 't', WEFT_CONTROLLER: nobody }, 'network', 'list'),
    ]);
    assert.equal(applied.status, 0, applied.stderr);
    assert.match(applied.stderr, /^still waiting for the controller \(planning 2 resources, 5 s so far\)\.\.\.\n/);
    assert.doesNotMatch(applied.stderr, /cannot reach/);
    assert.equal(applied.stdout, 'plan: 2 change(s)\n  + network blue (vni 100, vxlan)\n  + network red (vni 200, vxlan)\napplied (revision 2)\n');

    assert.equal(listed.status, 1);
    assert.equal(listed.stderr.trim(), `weft: the controller at ${url} did not answer in 10 s; the request reached it and may still be running there`);

    assert.equal(refused.status, 1);
    assert.equal(refused.stderr.trim(), `weft: cannot reach the controller at ${nobody}: ECONNREFUSED`);
  } finally {
    for (const res of held) res.destroy();
    slow.closeAllConnections();
    slow.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
