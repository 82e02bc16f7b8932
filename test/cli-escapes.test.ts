/**
 * What the CLI prints cannot drive the terminal: a controller (here a small local server
 * standing for an old or compromised one) answers with escape sequences, newlines and bidi
 * overrides in events, resource fields and error text, and every table, line, JSON and YAML
 * output shows them escaped, with JSON and YAML still meaning the same values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** Any character a terminal acts on, but the newline that ends each printed line. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

function weft(url: string, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args, '--controller', url], { env: { ...process.env, WEFT_TOKEN: 't', WEFT_CA_FILE: '', HOME: '/nonexistent' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

const EVENTS = [
  { id: 1, at: '2026-01-01T00:00:00.000Z', kind: 'port.failed', host: 'h1', message: 'port vm1 is not attached on h1: \u001b[2J\u001b[H\n2026-01-01T00:00:01.000Z  host.revoked         h1           host h1 revoked' },
  { id: 2, at: '2026-01-01T00:00:02.000Z', kind: 'view.failed\u001b[31m', host: 'h\r2', message: 'bad\u009b2J view \u202eoof' },
];
const PORTS = [{ name: 'vm\u202e1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:01', ips: ['10.0.0.2'], backend: { type: 'qemu', socket: '/run/vm1\nvm2  blue  h2.sock' }, portSecurity: true }];

test('events, tables, JSON, YAML and errors from the controller are printed with their control and bidi characters escaped', async () => {
  const server: Server = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url?.startsWith('/v1/events')) return json(200, EVENTS);
    if (req.url === '/v1/ports') return json(200, PORTS);
    json(404, { title: 'Not Found', status: 404, detail: 'there is no network named \u001b]0;pwned\u0007x\nweft: all is well', errors: [{ field: 'a', message: 'b\u001b[K' }, { field: 'c', message: '\u202ed' }] });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const events = await weft(url, 'events');
    assert.equal(events.status, 0, events.stderr);
    assert.doesNotMatch(events.stdout, RAW);
    const lines = events.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, 'one line per event: no forged line');
    assert.ok(lines[0].endsWith('port vm1 is not attached on h1: \\x1b[2J\\x1b[H\\n2026-01-01T00:00:01.000Z  host.revoked         h1           host h1 revoked'), lines[0]);
    assert.match(lines[1], /view\.failed\\x1b\[31m +h\\r2 +bad\\x9b2J view \\u202eoof$/);

    const table = await weft(url, 'port', 'list');
    assert.equal(table.status, 0, table.stderr);
    assert.doesNotMatch(table.stdout, RAW);
    const rows = table.stdout.trimEnd().split('\n');
    assert.equal(rows.length, 2, 'a header and one row');
    assert.match(rows[1], /^vm\\u202e1 +blue +h1 .* qemu \/run\/vm1\\nvm2  blue  h2\.sock/);

    for (const [format, read] of [['json', (t: string) => JSON.parse(t)], ['yaml', (t: string) => parse(t)]] as const) {
      const out = await weft(url, 'port', 'list', '-o', format);
      assert.equal(out.status, 0, out.stderr);
      assert.doesNotMatch(out.stdout, RAW, format);
      assert.deepEqual(read(out.stdout), PORTS, `${format} means the same values`);
    }

    const err = await weft(url, 'network', 'show', 'x');
    assert.equal(err.status, 1);
    assert.doesNotMatch(err.stderr, RAW);
    assert.equal(err.stderr.trimEnd(), 'weft: there is no network named \\x1b]0;pwned\\x07x\\nweft: all is well\n  a: b\\x1b[K\n  c: \\u202ed');
  } finally {
    server.close();
  }
});
