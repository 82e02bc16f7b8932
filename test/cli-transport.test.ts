/**
 * The CLI never downgrades: an https:// controller gets TLS with a verified certificate or
 * nothing, and the token never leaves in clear; a URL's path is kept; a URL without a scheme
 * and a wrong token get sentences. The controllers here are small local servers that record
 * what reached them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
