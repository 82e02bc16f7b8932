/**
 * npm run bench:control: the control plane at scale. A real `weft controller` process (its
 * SQLite store on disk, its API on loopback TCP with TLS, as it runs in production: the
 * certificate authority it makes in its data directory) and, in this process, 100 simulated
 * agents: each a real data path, reconciler and watch client (pinning that authority by the
 * fingerprint its join token carries), with in-memory ports and underlay. The API's clients
 * here trust the same authority and keep their TLS connections open, as a long-running
 * client does.
 *
 * Topology: 100 hosts x 100 ports = 10,000 ports, in 100 networks of 100 ports each, every
 * network spanning 10 hosts (10 ports on each), so every host is in 10 networks.
 *
 * Reports: the time from empty to all 10,000 ports applied on every agent; for single-port
 * changes, the time from the API request to every affected agent having applied it (median,
 * p99), and the same again with 10 web consoles open and /metrics scraped (what serving
 * them costs); the controller's and one agent's memory per port; the API's requests per
 * second; the bytes the watch sent per single-port change (weft_controller_watch_sent_bytes_total),
 * and the time and size of one host's full state (weft host resync); then sustained churn:
 * single-port creates and deletes started at a fixed rate (200 a second) for a minute,
 * whatever the answers' pace, each timed to every affected host having applied it, the
 * first ten seconds' latency against the last ten's. Last, one JSON line. Options:
 * --hosts N --ports-per-host N --samples N --viewers N --churn-rate N --churn-seconds N
 * (defaults 100, 100, 200, 10, 200, 60).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ControllerSource } from '../src/agent/controller-source.js';
import { Reconciler } from '../src/agent/reconciler.js';
import { Datapath } from '../src/datapath/datapath.js';
import { MemoryFabric } from '../src/datapath/memory.js';
import { hostStateFromView } from '../src/agent/desired-state.js';
import type { HostView } from '../src/view/host-view.js';
import { formatIpv4, parseMac } from '../src/wire/bytes.js';
import { NO_PIN, type NetworkTables } from '../src/datapath/tables.js';
import { Tunnels } from '../src/tunnel/tunnels.js';
import { generateKeyPair } from '../src/tunnel/noise.js';
import { generateIdentity, identityFromPem } from '../src/view/agent-auth.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const HOSTS = arg('hosts', 100);
const PER_HOST = arg('ports-per-host', 100);
const SAMPLES = arg('samples', 200);
/** Web consoles open during the second round of changes. */
const VIEWERS = arg('viewers', 10);
/** Sustained churn after that: changes per second (creates and deletes), for how long. */
const CHURN_RATE = arg('churn-rate', 200);
const CHURN_SECONDS = arg('churn-seconds', 60);
/** Each network spans this many hosts, with PER_HOST / HOSTS_PER_NETWORK ports on each; so
 * there are as many networks as hosts, and every host is in HOSTS_PER_NETWORK of them. */
const HOSTS_PER_NETWORK = Math.min(10, HOSTS);
const CONCURRENCY = 32;
/** Ports a simulated host has room for: its own, the changes' (each host is the first of
 * one network, where its changes' ports are made), and the churn's in flight. */
const MAX_PORTS = PER_HOST + 8 + Math.ceil(CHURN_RATE / HOSTS) * 2;
const log = pino({ level: 'silent' });
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** A host: a real data path and reconciler fed by a real watch client. */
class SimAgent {
  readonly datapath: Datapath;
  readonly reconciler: Reconciler;
  readonly source: ControllerSource;
  /** MAC -> when this agent's tables first pinned it, and when they no longer did: only
   * for the MACs a change waits for (`watch`), so that looking costs the benchmark nothing
   * per view. */
  readonly seen = new Map<string, number>();
  readonly gone = new Map<string, number>();
  /** By network: the MACs waited for, and the tables last looked at (unchanged tables need
   * no look). */
  private readonly watched = new Map<string, { macs: Map<string, { hi: number; lo: number }>; tables: unknown }>();

  constructor(readonly name: string, index: number, url: string, token: string) {
    const fabric = new MemoryFabric();
    this.datapath = new Datapath({ maxPorts: MAX_PORTS });
    const address = 0x0a000000 + index + 1;
    this.datapath.attachUnderlay(fabric.underlay(address, 4789), address, 4789, 'vxlan');
    this.datapath.attachUnderlay(fabric.underlay(address, 6081), address, 6081, 'geneve');
    this.reconciler = new Reconciler(this.datapath, () => fabric.port('vm'), Date.now);
    const underlay = { address: formatIpv4(address), port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 };
    // Networks are encrypted by default: a host without a tunnel key would be nobody's remote.
    const tunnels = new Tunnels({ privateKey: generateKeyPair().privateKey, maxPlaintext: 1500 });
    this.datapath.attachTunnels(fabric.underlay(address, 4793), address, 4793, tunnels);
    const limits = { maxPorts: MAX_PORTS, fdbLimit: 4096, fdbAgingSeconds: 300 };
    this.source = new ControllerSource({
      url, token, log, identity: identityFromPem(generateIdentity().pem),
      host: { name, ...underlay, tunnelKey: tunnels.publicKey.toString('base64') },
      apply: (view: HostView) => {
        this.reconciler.apply(hostStateFromView(view, { host: name, underlay, networks: [], ports: [], nat: [], securityGroups: {}, addressSets: {}, physicalNetworks: {}, limits }));
        this.look(performance.now());
      },
      status: () => ({ ports: {}, counters: null }),
    });
  }

  /** Starts looking for `mac` in the tables of `network` after every apply. */
  watch(mac: string, network: string): void {
    const m = parseMac(mac);
    let w = this.watched.get(network);
    if (!w) this.watched.set(network, (w = { macs: new Map(), tables: null }));
    w.macs.set(mac, { hi: Math.floor(m / 2 ** 32), lo: m >>> 0 });
    w.tables = null;
    this.look(performance.now());
  }

  unwatch(mac: string): void {
    for (const w of this.watched.values()) w.macs.delete(mac);
    this.seen.delete(mac);
    this.gone.delete(mac);
  }

  /** Whether each watched MAC is pinned in its network's tables now. */
  private look(now: number): void {
    for (const [network, w] of this.watched) {
      let tables: NetworkTables | null = null;
      try {
        tables = this.datapath.tablesOf(network);
      } catch {
        // The network is not on this host (yet).
      }
      if (tables !== null && tables === w.tables) continue;
      w.tables = tables;
      for (const [mac, { hi, lo }] of w.macs) {
        const pinned = tables !== null && tables.pins.get(hi, lo) !== NO_PIN;
        if (pinned && !this.seen.has(mac)) this.seen.set(mac, now);
        else if (!pinned && this.seen.has(mac)) {
          this.seen.delete(mac);
          this.gone.set(mac, now);
        }
      }
    }
  }
}

function hostOf(network: number, k: number): number {
  return (network * HOSTS_PER_NETWORK + k) % HOSTS;
}

const macOf = (n: number) => `02:00:${[(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

/** TLS connections to the controller, kept open, trusting its authority (set once read). */
let tls: Agent | null = null;

interface Reply { status: number; etag: string | undefined; body: Buffer }

/** One HTTPS request to the controller at `url`. */
function send(url: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { method, agent: tls!, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, etag: res.headers.etag, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function call(url: string, token: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await send(url, method, path, { authorization: `Bearer ${token}` }, body === undefined ? undefined : JSON.stringify(body));
  if (res.status < 200 || res.status > 299) throw new Error(`${method} ${path}: ${res.status} ${res.body.toString()}`);
  return res.status === 204 ? null : JSON.parse(res.body.toString());
}

async function pool<T>(items: T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await f(items[next++]);
  }));
}

/** CPU seconds a process has used (user and system). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-control-'));
  const port = 17411 + (process.pid % 1000);
  const ctl = spawn(process.execPath, [...(process.env.WEFT_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.WEFT_PROFILE] : []), CLI, 'controller', '--data-dir', dir, '--listen', `127.0.0.1:${port}`, '--tls', '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `https://127.0.0.1:${port}`;
  const agents: SimAgent[] = [];
  try {
    const caFile = join(dir, 'tls', 'ca.crt');
    for (let i = 0; ; i++) {
      try {
        if (!existsSync(caFile)) throw new Error('no authority yet');
        tls ??= new Agent({ ca: readFileSync(caFile, 'utf8'), keepAlive: true, maxSockets: CONCURRENCY + VIEWERS * 6 + 1 });
        await send(url, 'GET', '/healthz', {});
        break;
      } catch {
        if (i > 200) throw new Error('the controller did not start');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    console.log('controller: TLS on (its own certificate authority, pinned by the agents), SQLite store on disk');
    const admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const rss0 = rssMiB(ctl.pid!);
    global.gc?.();
    const heap0 = process.memoryUsage().heapUsed;

    // Each host registered, and its agent enrolled with its own join token and identity.
    for (let h = 0; h < HOSTS; h++) {
      const { joinToken } = await call(url, admin, 'POST', '/v1/hosts', { name: `h${h}`, address: formatIpv4(0x0a000000 + h + 1) }) as { joinToken: string };
      agents.push(new SimAgent(`h${h}`, h, url, joinToken));
    }
    for (const a of agents) a.source.start();
    await Promise.all(agents.map((a) => a.source.ready));
    const netCount = HOSTS;
    const portsPerHostPerNet = PER_HOST / HOSTS_PER_NETWORK;

    // Bring-up: every network, then every port, through the API; done when every agent
    // has every one of its ports.
    const t0 = performance.now();
    await pool([...Array(netCount).keys()], CONCURRENCY, async (n) => {
      await call(url, admin, 'POST', '/v1/networks', { name: `net${n}`, vni: n + 1 });
      await call(url, admin, 'POST', '/v1/subnets', { name: `net${n}-v4`, network: `net${n}`, cidr: `10.${100 + Math.floor(n / 256)}.${n % 256}.0/24` });
    });
    const ports: Array<{ name: string; network: string; host: string; mac: string }> = [];
    let serial = 0;
    for (let n = 0; n < netCount; n++) {
      for (let k = 0; k < HOSTS_PER_NETWORK; k++) {
        for (let j = 0; j < portsPerHostPerNet; j++) {
          ports.push({ name: `p${serial}`, network: `net${n}`, host: `h${hostOf(n, k)}`, mac: macOf(serial++) });
        }
      }
    }
    const tApi = performance.now();
    await pool(ports, CONCURRENCY, async (p) => void (await call(url, admin, 'POST', '/v1/ports', p)));
    const apiSeconds = (performance.now() - tApi) / 1000;
    const want = new Map<string, number>();
    for (const p of ports) want.set(p.host, (want.get(p.host) ?? 0) + 1);
    while (!agents.every((a) => a.datapath.stats(String).ports.length === want.get(a.name))) await new Promise((r) => setTimeout(r, 20));
    const bringUp = (performance.now() - t0) / 1000;
    console.log(`bring-up: ${ports.length} ports on ${HOSTS} hosts applied everywhere in ${bringUp.toFixed(1)} s (API creates: ${(ports.length / apiSeconds).toFixed(0)} req/s)`);

    global.gc?.();
    const agentBytesPerPort = (process.memoryUsage().heapUsed - heap0) / HOSTS / PER_HOST;
    const ctlMiBPerPort = (rssMiB(ctl.pid!) - rss0) / ports.length;

    // Single-port changes: create a port, then delete it; each time, wait until every host
    // of its network has applied the change. `base` keeps each round's names apart.
    const changes = async (base: number): Promise<number[]> => {
      const latencies: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const n = i % netCount;
        const mac = macOf(base + i);
        const hosts = [...Array(HOSTS_PER_NETWORK).keys()].map((k) => agents[hostOf(n, k)]);
        const start = performance.now();
        if (i % 2 === 0) {
          for (const a of hosts) a.watch(mac, `net${n}`);
          await call(url, admin, 'POST', '/v1/ports', { name: `s${base + i}`, network: `net${n}`, host: hosts[0].name, mac });
          while (!hosts.every((a) => a.seen.has(mac))) await new Promise((r) => setImmediate(r));
          latencies.push(Math.max(...hosts.map((a) => a.seen.get(mac)!)) - start);
        } else {
          const prevMac = macOf(base + i - 1);
          const prevHosts = [...Array(HOSTS_PER_NETWORK).keys()].map((k) => agents[hostOf((i - 1) % netCount, k)]);
          await call(url, admin, 'DELETE', `/v1/ports/s${base + i - 1}`);
          while (!prevHosts.every((a) => !a.seen.has(prevMac))) await new Promise((r) => setImmediate(r));
          latencies.push(Math.max(...prevHosts.map((a) => a.gone.get(prevMac)!)) - start);
          for (const a of prevHosts) a.unwatch(prevMac);
        }
      }
      return latencies;
    };
    // What the watch sent, from the controller's own counter (views and deltas, as text).
    const watchBytes = async () => {
      const text = (await send(url, 'GET', '/metrics', { authorization: `Bearer ${admin}` })).body.toString();
      const m = /^weft_controller_watch_sent_bytes_total (\d+)/m.exec(text);
      return m ? Number(m[1]) : NaN;
    };
    const bytes0 = await watchBytes();
    let cpu0 = cpuSeconds(ctl.pid!);
    let w0 = performance.now();
    const latencies = await changes(1_000_000);
    const quietCpu = (cpuSeconds(ctl.pid!) - cpu0) / ((performance.now() - w0) / 1000);
    const bytesPerChange = ((await watchBytes()) - bytes0) / SAMPLES;
    console.log(`single-port change applied on every affected host (${SAMPLES} samples, ${HOSTS_PER_NETWORK} hosts each): median ${pct(latencies, 50).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms; controller ${(quietCpu * 100).toFixed(0)} % of a core; watch ${Number.isNaN(bytesPerChange) ? 'bytes not counted (a controller without weft_controller_watch_sent_bytes_total)' : `${(bytesPerChange / 1024).toFixed(1)} KiB sent per change`}`);

    // A full state for one host (weft host resync): how long until its agent applied it,
    // and its size (what the watch sent every affected host on every change before deltas).
    const target = agents[0];
    const resyncBytes0 = await watchBytes();
    const states0 = target.source.watchStats.states;
    const tResync = performance.now();
    await call(url, admin, 'POST', `/v1/hosts/${target.name}/resync`);
    while (target.source.watchStats.states === states0) await new Promise((r) => setImmediate(r));
    const resyncMs = performance.now() - tResync;
    const viewBytes = (await watchBytes()) - resyncBytes0;
    console.log(`full state of one host (weft host resync) applied in ${resyncMs.toFixed(1)} ms: ${(viewBytes / 1024).toFixed(1)} KiB; full views on every change sent ${HOSTS_PER_NETWORK} x that per change`);

    // The same with VIEWERS web consoles open (each reads what the console reads, every
    // two seconds: hosts with their agents' reports, networks, subnets, routers, ports,
    // events) and a Prometheus server scraping the controller's /metrics every two seconds.
    let watching = true;
    let polls = 0;
    let bytes = 0;
    const get = async (path: string, tags?: Map<string, string>) => {
      const tag = tags?.get(path);
      const res = await send(url, 'GET', path, { authorization: `Bearer ${admin}`, ...(tag ? { 'if-none-match': tag } : {}) });
      bytes += res.body.byteLength;
      if (tags && res.etag) tags.set(path, res.etag);
    };
    const viewer = async (k: number) => {
      await new Promise((r) => setTimeout(r, (2000 * k) / VIEWERS)); // not all at once
      let since = 0;
      // As the console does: a list the store has not changed since comes back 304.
      const tags = new Map<string, string>();
      while (watching) {
        const t = performance.now();
        await Promise.all(['/v1/hosts', '/v1/networks', '/v1/subnets', '/v1/routers', '/v1/ports'].map((p) => get(p, tags)));
        const events = await call(url, admin, 'GET', `/v1/events?since=${since}`) as Array<{ id: number }>;
        since = events.at(-1)?.id ?? since;
        polls++;
        await new Promise((r) => setTimeout(r, Math.max(0, 2000 - (performance.now() - t))));
      }
    };
    const scraper = async () => {
      while (watching) {
        await get('/metrics');
        await new Promise((r) => setTimeout(r, 2000));
      }
    };
    const viewers = [...Array.from({ length: VIEWERS }, (_, k) => viewer(k)), scraper()];
    await new Promise((r) => setTimeout(r, 2000));
    cpu0 = cpuSeconds(ctl.pid!);
    w0 = performance.now();
    bytes = 0;
    polls = 0;
    const watched = await changes(2_000_000);
    const seconds = (performance.now() - w0) / 1000;
    const watchedCpu = (cpuSeconds(ctl.pid!) - cpu0) / seconds;
    const watchedBytes = bytes / seconds;
    const watchedPolls = polls / seconds;
    // And with nothing changing: the store's lists come back 304.
    cpu0 = cpuSeconds(ctl.pid!);
    w0 = performance.now();
    bytes = 0;
    await new Promise((r) => setTimeout(r, 10_000));
    const idle = (performance.now() - w0) / 1000;
    const idleCpu = (cpuSeconds(ctl.pid!) - cpu0) / idle;
    const idleBytes = bytes / idle;
    watching = false;
    await Promise.all(viewers);
    console.log(`with ${VIEWERS} consoles open and /metrics scraped: median ${pct(watched, 50).toFixed(1)} ms, p99 ${pct(watched, 99).toFixed(1)} ms; controller ${(watchedCpu * 100).toFixed(0)} % of a core;`
      + ` ${watchedPolls.toFixed(1)} console refreshes/s, ${(watchedBytes / 1e6).toFixed(1)} MB/s served; with no changes, ${(idleCpu * 100).toFixed(0)} % of a core and ${(idleBytes / 1e6).toFixed(2)} MB/s`);

    // API reads per second, CONCURRENCY at a time, for 3 s.
    let reads = 0;
    const until = performance.now() + 3000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        await call(url, admin, 'GET', `/v1/ports/p${reads % ports.length}`);
        reads++;
      }
    }));
    console.log(`API reads: ${(reads / 3).toFixed(0)} req/s (GET /v1/ports/NAME, ${CONCURRENCY} in flight)`);

    // Sustained churn: a change started every 1/CHURN_RATE s (open loop: late answers do
    // not slow the schedule down). The first second creates; after it, creates and deletes
    // of the oldest port made alternate, so the count stays level. Each is timed until
    // every host of its network has applied it.
    const churn: Array<{ at: number; ms: number }> = [];
    let churnFailed = 0;
    const churnStart = performance.now();
    const churnCpu0 = cpuSeconds(ctl.pid!);
    const benchCpu0 = process.cpuUsage();
    const inFlight: Array<Promise<void>> = [];
    const made: Array<{ name: string; mac: string; hosts: SimAgent[] }> = [];
    let serialChurn = 0;
    for (let i = 0; CHURN_SECONDS > 0 && i < CHURN_RATE * CHURN_SECONDS; i++) {
      const due = churnStart + (i * 1000) / CHURN_RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const create = i < CHURN_RATE || i % 2 === 0 || made.length === 0;
      const at = performance.now();
      if (create) {
        const k = serialChurn++;
        const n = k % netCount;
        const p = { name: `c${k}`, mac: macOf(3_000_000 + k), hosts: [...Array(HOSTS_PER_NETWORK).keys()].map((j) => agents[hostOf(n, j)]) };
        inFlight.push((async () => {
          for (const a of p.hosts) a.watch(p.mac, `net${n}`);
          try {
            await call(url, admin, 'POST', '/v1/ports', { name: p.name, network: `net${n}`, host: p.hosts[0].name, mac: p.mac });
          } catch {
            churnFailed++;
            for (const a of p.hosts) a.unwatch(p.mac);
            return;
          }
          while (!p.hosts.every((a) => a.seen.has(p.mac))) await new Promise((r) => setTimeout(r, 5));
          made.push(p);
          churn.push({ at: at - churnStart, ms: Math.max(...p.hosts.map((a) => a.seen.get(p.mac)!)) - at });
        })());
      } else {
        const p = made.shift()!;
        inFlight.push((async () => {
          try {
            await call(url, admin, 'DELETE', `/v1/ports/${p.name}`);
          } catch {
            churnFailed++;
            return;
          }
          while (p.hosts.some((a) => a.seen.has(p.mac))) await new Promise((r) => setTimeout(r, 5));
          churn.push({ at: at - churnStart, ms: Math.max(...p.hosts.map((a) => a.gone.get(p.mac)!)) - at });
          for (const a of p.hosts) a.unwatch(p.mac);
        })());
      }
    }
    await Promise.all(inFlight);
    const churnSeconds = (performance.now() - churnStart) / 1000;
    const churnCtlCpu = (cpuSeconds(ctl.pid!) - churnCpu0) / churnSeconds;
    const used = process.cpuUsage(benchCpu0);
    const churnBenchCpu = (used.user + used.system) / 1e6 / churnSeconds;
    const window = (from: number, to: number) => churn.filter((c) => c.at >= from && c.at < to).map((c) => c.ms);
    const first = window(0, 10_000);
    const last = window((CHURN_SECONDS - 10) * 1000, CHURN_SECONDS * 1000);
    const churnAll = churn.map((c) => c.ms);
    if (CHURN_SECONDS > 0) {
      console.log(`sustained churn: ${churn.length} changes in ${churnSeconds.toFixed(1)} s (${(churn.length / churnSeconds).toFixed(0)}/s asked ${CHURN_RATE}/s${churnFailed ? `, ${churnFailed} refused` : ''}), applied on every affected host: median ${pct(churnAll, 50).toFixed(1)} ms, p99 ${pct(churnAll, 99).toFixed(1)} ms;`
        + ` first 10 s p99 ${pct(first, 99).toFixed(1)} ms, last 10 s p99 ${pct(last, 99).toFixed(1)} ms; controller ${(churnCtlCpu * 100).toFixed(0)} % of a core, this process (the ${HOSTS} agents and the clients) ${(churnBenchCpu * 100).toFixed(0)} %`);
    }
    console.log(`memory: controller ${(ctlMiBPerPort * 1024).toFixed(1)} KiB/port (process RSS), agent ${(agentBytesPerPort / 1024).toFixed(1)} KiB/port (heap, ${HOSTS} agents)`);
    console.log('');
    console.log('| measure | result | goal |');
    console.log('|---|---|---|');
    console.log(`| ${ports.length} ports up from empty, applied on every host | ${bringUp.toFixed(1)} s | < 20 s |`);
    console.log(`| single-port change applied everywhere, p99 | ${pct(latencies, 99).toFixed(1)} ms (median ${pct(latencies, 50).toFixed(1)} ms) | < 200 ms |`);
    console.log(`| watch bytes sent per single-port change (all hosts) | ${Number.isNaN(bytesPerChange) ? 'not counted' : `${(bytesPerChange / 1024).toFixed(1)} KiB`} (a full view: ${(viewBytes / 1024).toFixed(1)} KiB) | |`);
    console.log(`| full state of one host, applied | ${resyncMs.toFixed(1)} ms | |`);
    console.log(`| the same, with ${VIEWERS} web consoles open and /metrics scraped, p99 | ${pct(watched, 99).toFixed(1)} ms (median ${pct(watched, 50).toFixed(1)} ms); controller CPU ${(watchedCpu * 100).toFixed(0)} % vs ${(quietCpu * 100).toFixed(0)} % without; ${(idleCpu * 100).toFixed(0)} % with no changes | |`);
    console.log(`| API creates / reads | ${(ports.length / apiSeconds).toFixed(0)} / ${(reads / 3).toFixed(0)} req/s | |`);
    if (CHURN_SECONDS > 0) console.log(`| ${CHURN_RATE} changes/s for ${CHURN_SECONDS} s, applied everywhere, p99 (first / last 10 s) | ${pct(churnAll, 99).toFixed(1)} ms (${pct(first, 99).toFixed(1)} / ${pct(last, 99).toFixed(1)} ms; median ${pct(churnAll, 50).toFixed(1)} ms) | held |`);
    console.log(`| memory per port: controller / one agent | ${(ctlMiBPerPort * 1024).toFixed(1)} / ${(agentBytesPerPort / 1024).toFixed(1)} KiB | |`);
    console.log(JSON.stringify({
      hosts: HOSTS, ports: ports.length, bringUpS: Number(bringUp.toFixed(1)), changeP50Ms: Number(pct(latencies, 50).toFixed(1)), changeP99Ms: Number(pct(latencies, 99).toFixed(1)),
      resyncOneHostMs: Number(resyncMs.toFixed(1)), controllerRssMiB: Number(rssMiB(ctl.pid!).toFixed(1)), watchBytesPerChange: Math.round(bytesPerChange), fullViewBytes: viewBytes,
      ...(CHURN_SECONDS > 0 ? { churnPerS: Number((churn.length / churnSeconds).toFixed(1)), churnP99Ms: Number(pct(churnAll, 99).toFixed(1)) } : {}),
    }));
  } finally {
    for (const a of agents) a.source.stop();
    tls?.destroy();
    ctl.kill('SIGTERM');
    await new Promise((r) => ctl.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(`bench:control: ${(err as Error).message}`);
  process.exit(1);
});
