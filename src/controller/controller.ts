/**
 * `weft controller`: holds the intended network in a store (a SQLite file by default),
 * serves the REST API over TCP (and, for local administration, a unix socket), and streams
 * each agent its part of the network.
 *
 * Tokens: at first start an admin token and a join token are generated and written to
 * DATA_DIR/admin.token and DATA_DIR/join.token, readable only by their owner. Neither is
 * ever logged.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import type { Logger } from 'pino';
import { apiApp } from './api.js';
import { Applier } from './apply.js';
import { ModelCache } from './model-cache.js';
import { NetworkService } from './service.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Change, Store } from './store/store.js';
import { WatchHub } from './watch.js';

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
  log: Logger;
}

/** Reads a token file, creating it (0600) with a fresh random token if missing. */
export function tokenFile(file: string): string {
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8').trim();
}

export class Controller {
  private servers: Server[] = [];
  private hub: WatchHub | null = null;
  private store: Store | null = null;
  private unsubscribe: (() => void) | null = null;
  /** The TCP port actually bound (useful with port 0). */
  port = 0;
  tokens = { admin: '', join: '' };

  constructor(private readonly opts: ControllerOptions) {}

  async start(): Promise<void> {
    const { dataDir, log } = this.opts;
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.tokens = { admin: tokenFile(join(dataDir, 'admin.token')), join: tokenFile(join(dataDir, 'join.token')) };
    const store = this.opts.store ?? new SqliteStore(join(dataDir, 'weft.db'));
    this.store = store;
    // Subscribe before loading, and drop what the load already saw, so nothing falls between.
    const early: Change[][] = [];
    let deliver = (c: Change[]): void => {
      early.push(c);
    };
    this.unsubscribe = store.subscribe((c) => deliver(c));
    const model = await ModelCache.load(store);
    const hub = new WatchHub(model, this.tokens, log);
    this.hub = hub;
    for (const c of early) hub.onChanges(c.filter((x) => x.revision > model.revision));
    deliver = (c) => hub.onChanges(c);

    const rules = { loopbackUnderlay: this.opts.loopbackUnderlay ?? false };
    const app = apiApp({ service: new NetworkService(store, rules), applier: new Applier(store, rules), adminToken: this.tokens.admin, joinToken: this.tokens.join, agents: hub });
    const listen = async (bind: (server: Server, ready: () => void) => void): Promise<Server> => {
      const server = createAdaptorServer({ fetch: app.fetch }) as Server;
      hub.attach(server);
      this.servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        bind(server, resolve);
      });
      return server;
    };
    const tcp = await listen((server, ready) => server.listen(this.opts.listen.port, this.opts.listen.host, ready));
    const addr = tcp.address();
    this.port = typeof addr === 'object' && addr ? addr.port : this.opts.listen.port;
    const socket = this.opts.socket;
    if (socket) {
      rmSync(socket, { force: true });
      await listen((server, ready) => server.listen(socket, ready));
      chmodSync(socket, 0o600);
    }
    log.info({ listen: `${this.opts.listen.host}:${this.port}`, socket: this.opts.socket, revision: model.revision, dataDir }, 'controller ready');
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
