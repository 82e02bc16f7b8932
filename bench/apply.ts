/**
 * npm run bench:apply: `weft apply` against a real `weft controller` process (SQLite store on
 * disk, plain HTTP on loopback), one /16 network and subnet, two hosts, and files of
 * 500, 1,000, 2,000 and 6,000 ports (addresses and MACs allocated by the controller).
 *
 * For each size: the dry run, the apply itself, and the apply of a file without those ports
 * (`ports: []` with prune: every one deleted), each timed from request to answer, and its
 * ratio to the 500-port figure (linear: the ratio is the size's, 2, 4, 12). During the
 * largest apply and dry run, a client asks `/healthz` every 50 ms (its longest answer is
 * reported) and the controller's own event-loop monitor (the max of
 * `monitorEventLoopDelay`, read from its /metrics before and after) says how long the
 * loop was held at most.
 *
 * Last, the largest file once more through `weft apply -f FILE` (the CLI reading the YAML,
 * asking for the plan, then carrying it out), timed whole.
 *
 * Options: --sizes 500,1000,2000,6000.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZES = arg('sizes', '500,1000,2000,6000').split(',').map(Number);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface Reply { status: number; body: string }

function send(port: number, token: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function call<T = unknown>(port: number, token: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await send(port, token, method, path, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.body.slice(0, 500)}`);
  return (r.body ? JSON.parse(r.body) : null) as T;
}

/** The controller's event-loop delay max since the last scrape, in ms. */
async function loopMaxMs(port: number, token: string): Promise<number> {
  const r = await send(port, token, 'GET', '/metrics');
  const m = /^weft_controller_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(r.body);
  return m ? Number(m[1]) * 1000 : NaN;
}

/** Runs `f` while asking /healthz every 50 ms; returns f's seconds, the longest /healthz
 * answer and the controller's event-loop delay max meanwhile (ms). */
async function watched(port: number, token: string, f: () => Promise<unknown>): Promise<{ seconds: number; healthMs: number; loopMs: number }> {
  await loopMaxMs(port, token); // resets the monitor
  let running = true;
  let healthMs = 0;
  const prober = (async () => {
    while (running) {
      const t = performance.now();
      await send(port, token, 'GET', '/healthz');
      healthMs = Math.max(healthMs, performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  await f();
  const seconds = (performance.now() - t0) / 1000;
  running = false;
  await prober;
  return { seconds, healthMs, loopMs: await loopMaxMs(port, token) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-apply-'));
  const port = 18411 + (process.pid % 1000);
  const ctl = spawn(process.execPath, [...(process.env.WEFT_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.WEFT_PROFILE] : []), CLI, 'controller', '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    let token = '';
    for (let i = 0; ; i++) {
      try {
        token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
        await send(port, token, 'GET', '/healthz');
        break;
      } catch {
        if (i > 200) throw new Error('the controller did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const [name, address] of [['h1', '192.0.2.1'], ['h2', '192.0.2.2']]) await call(port, token, 'POST', '/v1/hosts', { name, address });
    await call(port, token, 'POST', '/v1/networks', { name: 'big', vni: 100 });
    await call(port, token, 'POST', '/v1/subnets', { name: 'big-v4', network: 'big', cidr: '10.20.0.0/16' });
    console.log(`controller: SQLite on disk, HTTP on loopback; network big with subnet 10.20.0.0/16, hosts h1 and h2`);

    const apply = (ports: unknown[], extra: Record<string, unknown>) => call(port, token, 'POST', '/v1/apply', { resources: { ports }, ...extra });
    const file = (size: number) => Array.from({ length: size }, (_, i) => ({ name: `p${i}`, network: 'big', host: `h${1 + (i % 2)}` }));
    // Once through, unmeasured: the controller's code compiled before the first figure.
    await apply(file(SIZES[0]), { dryRun: true });
    await apply(file(SIZES[0]), {});
    await apply([], { prune: true });
    const rows: Array<{ size: number; dry: number; real: number; del: number }> = [];
    const largest = Math.max(...SIZES);
    const during: string[] = [];
    for (const size of SIZES) {
      const ports = file(size);
      const timed = async (what: string, f: () => Promise<unknown>) => {
        if (size !== largest) {
          const t0 = performance.now();
          await f();
          return (performance.now() - t0) / 1000;
        }
        const w = await watched(port, token, f);
        during.push(`${size}-port ${what}: ${w.seconds.toFixed(2)} s; /healthz answered in at most ${w.healthMs.toFixed(0)} ms; the controller's event loop was held at most ${w.loopMs.toFixed(0)} ms`);
        return w.seconds;
      };
      const dry = await timed('dry run', () => apply(ports, { dryRun: true }));
      const real = await timed('apply', () => apply(ports, {}));
      const del = await timed('delete (prune)', () => apply([], { prune: true }));
      rows.push({ size, dry, real, del });
      console.log(`${size} ports: dry run ${dry.toFixed(2)} s, apply ${real.toFixed(2)} s, delete ${del.toFixed(2)} s`);
    }
    const base = rows[0];
    console.log('');
    console.log(`| ports | dry run | apply | delete (prune) | size ratio | time ratios (dry / apply / delete) |`);
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.size} | ${r.dry.toFixed(2)} s | ${r.real.toFixed(2)} s | ${r.del.toFixed(2)} s | ${(r.size / base.size).toFixed(0)} | ${(r.dry / base.dry).toFixed(1)} / ${(r.real / base.real).toFixed(1)} / ${(r.del / base.del).toFixed(1)} |`);
    }
    console.log('');
    for (const d of during) console.log(d);

    // The same largest file through the CLI, as a person runs it: the plan, then the apply.
    const yaml = join(dir, 'ports.yaml');
    writeFileSync(yaml, `ports:\n${file(largest).map((p) => `  - { name: ${p.name}, network: ${p.network}, host: ${p.host} }`).join('\n')}\n`);
    const t0 = performance.now();
    const cli = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'apply', '-f', yaml], { env: { ...process.env, WEFT_CONTROLLER: `http://127.0.0.1:${port}`, WEFT_TOKEN: token } });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('exit', (status) => resolve({ status, stdout, stderr }));
    });
    if (cli.status !== 0) throw new Error(`weft apply: ${cli.stderr}`);
    console.log(`weft apply -f FILE (${largest} ports: read the file, plan, apply): ${((performance.now() - t0) / 1000).toFixed(2)} s; ${cli.stdout.trim().split('\n').at(-1)}${cli.stderr ? `; said: ${cli.stderr.trim().split('\n').join(' / ')}` : ''}`);
  } finally {
    ctl.kill('SIGTERM');
    await new Promise((r) => ctl.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`bench:apply: ${(err as Error).message}`);
  process.exit(1);
});
