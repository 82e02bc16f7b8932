/**
 * `weft controller`: holds the intended network in a store (a SQLite file by default),
 * serves the REST API over TCP (and, for local administration, a unix socket), and streams
 * each agent its part of the network.
 *
 * The admin token is generated at first start and written to DATA_DIR/admin.token,
 * readable only by its owner, and never logged. Agents have no shared token: each host gets
 * a join token of its own from `weft host create` (single use, expiring), and its agent
 * then signs with the identity key it enrolled.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import type { Logger } from 'pino';
import { createServer as createHttpsServer } from 'node:https';
import { apiApp } from './api.js';
import { ControllerMetrics } from './metrics.js';
import { loadOrCreateTls, tlsFromFiles, type ControllerTls } from './tls.js';
import { Applier } from './apply.js';
import { ModelCache } from './model-cache.js';
import { NetworkService } from './service.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Change, Store } from './store/store.js';
import { WatchHub, type WatchOptions } from './watch.js';
import { ClientConnections, serverOptions } from './listener.js';
import { Traces } from './trace.js';
import { loadConsole } from './console.js';
import { readPrivateFile, writePrivateFile } from '../io/private-file.js';


export interface ControllerOptions {
  dataDir: string;
  /** TCP address to listen on, e.g. 0.0.0.0:7411. */
  listen: { host: string; port: number };
  /** Also serve the API on this unix socket (mode 0600). */
  socket?: string;
  /** Accept loopback underlay addresses (every agent on this machine; tests). */
  loopbackUnderlay?: boolean;
  /** A store to use instead of DATA_DIR/weft.db (tests, benchmarks). */
  store?: Store;
  /** TLS on the TCP listener: always where it is not a loopback address (plain HTTP is
   * only for loopback and the unix socket); on loopback when true. */
  tls?: boolean;
  /** The operator's certificate chain and key, instead of DATA_DIR/tls's. */
  tlsCert?: string;
  tlsKey?: string;
  /** Where agents keep QEMU sockets: ports' QEMU sockets must be inside (default /run/weft/qemu). */
  qemuSocketDir?: string;
  /** The watch's bounds (watch.ts): bytes queued for a client, each host's history. */
  watch?: WatchOptions;
  log: Logger;
}

/** The controller cannot use its data directory: says which, and why. */
export class DataDirError extends Error {
  readonly code = 'EDATADIR';
}

function dataDirStep<T>(dir: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof DataDirError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new DataDirError(`cannot use the data directory ${dir}: ${e.code ? `${e.code}, ` : ''}${e.message.replace(/^\w+: /, '')}`);
  }
}

/**
 * Makes the data directory (0700), one missing level at a time. (Node's recursive mkdir
 * loops forever where a parent exists but refuses children, as /proc does.)
 */
function prepareDataDir(dir: string): void {
  const missing: string[] = [];
  let p = resolve(dir);
  while (!existsSync(p)) {
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  if (existsSync(p) && !statSync(p).isDirectory()) throw new DataDirError(`cannot use the data directory ${dir}: ${p} is not a directory`);
  for (const m of missing) {
    try {
      mkdirSync(m, { mode: 0o700 });
    } catch (err) {
      throw new DataDirError(`cannot use the data directory ${dir}: cannot create ${m} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new DataDirError(`cannot use the data directory ${dir}: it is not writable`);
  }
}

/** Reads a token file (made 0600 if it was not), creating it with a fresh random token if
 * missing. A symbolic link or anything but a regular file there is refused (PrivateFileError). */
export function tokenFile(file: string): string {
  const text = readPrivateFile(file, 'the token file')?.toString('utf8');
  if (text !== undefined) return text.trim();
  const token = randomBytes(24).toString('base64url');
  writePrivateFile(file, `${token}\n`, { what: 'the token file' });
  return token;
}

export class Controller {
  private servers: Server[] = [];
  private hub: WatchHub | null = null;
  private store: Store | null = null;
  private unsubscribe: (() => void) | null = null;
  /** The TCP port actually bound (useful with port 0). */
  port = 0;
  tokens = { admin: '' };
  /** The TCP listener's TLS (null: plain HTTP, on loopback). */
  tls: ControllerTls | null = null;
  /** The connections each client holds, on every listener (listener.ts). */
  readonly clients = new ClientConnections();

  constructor(private readonly opts: ControllerOptions) {}

  async start(): Promise<void> {
    const { dataDir, log } = this.opts;
    const store = dataDirStep(dataDir, () => {
      prepareDataDir(dataDir);
      this.tokens = { admin: tokenFile(join(dataDir, 'admin.token')) };
      // The shared join token of earlier versions let any agent be any host: gone.
      rmSync(join(dataDir, 'join.token'), { force: true });
      return this.opts.store ?? new SqliteStore(join(dataDir, 'weft.db'));
    });
    this.store = store;
    // Subscribe before loading, and drop what the load already saw, so nothing falls between.
    const early: Change[][] = [];
    let deliver = (c: Change[]): void => {
      early.push(c);
    };
    this.unsubscribe = store.subscribe((c) => deliver(c));
    const model = await ModelCache.load(store);
    const hub = new WatchHub(model, this.tokens, log, undefined, undefined, this.opts.watch);
    this.hub = hub;
    for (const c of early) hub.onChanges(c.filter((x) => x.revision > model.revision));
    deliver = (c) => hub.onChanges(c);

    const { host: listenHost } = this.opts.listen;
    const loopback = /^127\./.test(listenHost) || listenHost === 'localhost' || listenHost === '::1';
    if (this.opts.tls === false && !loopback) throw new DataDirError(`plain HTTP is only for loopback addresses and the unix socket: drop --no-tls, or listen on 127.0.0.1`);
    const tls = this.opts.tls ?? !loopback
      ? (this.opts.tlsCert && this.opts.tlsKey ? tlsFromFiles(this.opts.tlsCert, this.opts.tlsKey) : await loadOrCreateTls(join(dataDir, 'tls')))
      : null;
    this.tls = tls;
    const rules = { loopbackUnderlay: this.opts.loopbackUnderlay ?? false, tlsFingerprint: tls?.fingerprint, qemuSocketDir: this.opts.qemuSocketDir };
    const metrics = new ControllerMetrics({ revision: () => model.revision, watches: () => hub.watching, watch: () => hub.counters, refusedConnections: () => this.clients.refused });
    const timed = metrics.timed(store);
    const app = apiApp({ service: new NetworkService(timed, rules, hub.signatures), applier: new Applier(timed, rules), adminToken: this.tokens.admin, agents: hub, metrics, events: hub.events, traces: new Traces(model, hub), console: loadConsole(), log });
    hub.events.add('controller.started', `the controller started at revision ${model.revision}`);
    const listen = async (bind: (server: Server, ready: () => void) => void, secure: boolean): Promise<Server> => {
      const server = (secure && tls
        ? createAdaptorServer({ fetch: app.fetch, createServer: createHttpsServer, serverOptions: { ...serverOptions, key: tls.key, cert: tls.cert } })
        : createAdaptorServer({ fetch: app.fetch, serverOptions })) as Server;
      // What one client can make the controller hold: a connection that is slow to send its
      // head, or its body, is closed; so are connections beyond a client's share.
      this.clients.limit(server);
      hub.attach(server);
      this.servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        bind(server, resolve);
      });
      return server;
    };
    const tcp = await listen((server, ready) => server.listen(this.opts.listen.port, this.opts.listen.host, ready), true);
    const addr = tcp.address();
    this.port = typeof addr === 'object' && addr ? addr.port : this.opts.listen.port;
    const socket = this.opts.socket;
    if (socket) {
      rmSync(socket, { force: true });
      await listen((server, ready) => server.listen(socket, ready), false);
      chmodSync(socket, 0o600);
    }
    log.info({ listen: `${tls ? 'https' : 'http'}://${this.opts.listen.host}:${this.port}`, ...(tls ? { caFingerprint: tls.fingerprint } : {}), socket: this.opts.socket, revision: model.revision, dataDir }, 'controller ready');
  }

  async stop(): Promise<void> {
    this.hub?.close();
    this.unsubscribe?.();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => {
      s.closeAllConnections?.();
      s.close(() => resolve());
    })));
    if (this.opts.socket) rmSync(this.opts.socket, { force: true });
    await this.store?.close();
  }
}
