/**
 * The agent's side of the control plane: registers the host with the controller, holds the
 * watch stream, and hands every view it receives to `apply`. When the controller is away the
 * agent keeps forwarding with its last state and reconnects with backoff, resuming from the
 * last revision it applied.
 */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { KeyObject } from 'node:crypto';
import type { HostView } from '../view/host-view.js';
import { signAgentRequest } from '../view/agent-auth.js';

export interface ControllerSourceOptions {
  url: string;
  /** The host's join token, to enroll with the first time (spent then); afterwards the
   * agent signs with `identity` alone. */
  token?: string;
  /** The host's identity key: what it enrolls and signs with. */
  identity: { key: KeyObject; publicKey: string };
  host: { name: string; address: string; port: number; genevePort: number; tunnelPort: number; tunnelKey?: string; mtu: number; physicalNetworks?: Record<string, string> };
  log: Logger;
  apply(view: HostView, revision: number): void;
  /** What to report back after each apply and periodically. */
  status(): { ports: Record<string, { attached: boolean; error?: string }>; counters: unknown };
}

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5000;
const STATUS_MS = 5000;
const SILENT_MS = 15_000;

export class ControllerSource {
  private ws: WebSocket | null = null;
  private revision = -1;
  private stopped = false;
  private backoff = BACKOFF_MIN_MS;
  private timer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  /** Resolves when the first view (or "current") arrived. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(private readonly opts: ControllerSourceOptions) {
    this.ready = new Promise((r) => (this.markReady = r));
  }

  get appliedRevision(): number {
    return this.revision;
  }

  start(): void {
    void this.connect();
    this.statusTimer = setInterval(() => this.report(), STATUS_MS);
    this.statusTimer.unref();
  }

  /** This host's underlay address changed: joins again with the new one (the watch stays). */
  moved(address: string): void {
    this.opts.host = { ...this.opts.host, address };
    this.join().then(
      () => {
        this.opts.log.info({ underlay: address }, 'told the controller this host\'s new underlay address');
        // The watch's connection left from the old address: it is dead, though nothing says
        // so yet. Connect again from the new one.
        this.ws?.terminate();
      },
      (err: Error) => this.opts.log.warn({ err: err.message }, 'cannot tell the controller the new underlay address; the next join will'),
    );
  }

  /** Joins signed with the host's identity; the first time (the controller does not know
   * the identity yet), with the join token, which enrolls it. */
  private async join(): Promise<void> {
    const { url, host, identity } = this.opts;
    const post = (authorization: string) => fetch(new URL('/v1/agents/join', url), {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ ...host, identityKey: identity.publicKey }),
      signal: AbortSignal.timeout(5000),
    });
    let res = await post(signAgentRequest(host.name, identity.key, 'POST', '/v1/agents/join'));
    if (res.status === 401 && this.opts.token) {
      res = await post(`Bearer ${this.opts.token}`);
      // Spent, or refused: either way it is not to be tried again.
      if (res.ok) this.opts.log.info('enrolled this host\'s identity with its join token');
      this.opts.token = undefined;
    }
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { detail?: string };
      throw new Error(`join refused (${res.status}): ${body.detail ?? res.statusText}`);
    }
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const { url, host, log, identity } = this.opts;
    try {
      await this.join();
    } catch (err) {
      log.warn({ err: (err as Error).message, retryMs: this.backoff }, 'cannot join the controller; forwarding with the last known state');
      return this.retry();
    }
    const wsUrl = new URL(`/v1/agents/${host.name}/watch?revision=${this.revision}`, url);
    wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(wsUrl, { headers: { authorization: signAgentRequest(host.name, identity.key, 'GET', wsUrl.pathname) }, handshakeTimeout: 5000 });
    this.ws = ws;
    // The controller pings every 5 s: a watch silent for three times that is dead (a
    // connection whose far end vanished says nothing by itself), and is made anew.
    let heard = Date.now();
    const deadman = setInterval(() => {
      if (Date.now() - heard > SILENT_MS) {
        log.warn({ silentMs: Date.now() - heard }, 'the controller has been silent; reconnecting');
        ws.terminate();
      }
    }, SILENT_MS / 3);
    deadman.unref();
    ws.on('ping', () => (heard = Date.now()));
    ws.on('message', () => (heard = Date.now()));
    ws.on('open', () => {
      this.backoff = BACKOFF_MIN_MS;
      heard = Date.now();
      log.info({ controller: url, revision: this.revision }, 'watching the controller');
    });
    ws.on('message', (data) => this.message(String(data)));
    ws.on('close', (code, reason) => {
      clearInterval(deadman);
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.stopped) {
        log.warn({ code, reason: String(reason), retryMs: this.backoff }, 'lost the controller; forwarding with the last known state');
        this.retry();
      }
    });
    ws.on('error', (err) => log.debug({ err: err.message }, 'watch connection error'));
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
  }

  private message(text: string): void {
    let msg: { type: string; revision: number; view?: HostView };
    try {
      msg = JSON.parse(text);
    } catch {
      this.opts.log.warn('the controller sent a message that is not JSON; ignored');
      return;
    }
    if (msg.type === 'state' && msg.view) {
      try {
        this.opts.apply(msg.view, msg.revision);
      } catch (err) {
        // A view this agent cannot apply (from a newer or broken controller) must not stop
        // forwarding: keep the state we have and say why, once per revision.
        this.opts.log.error({ revision: msg.revision, err: (err as Error).message }, 'cannot apply the controller\'s view; keeping the last state');
        return;
      }
      this.revision = msg.revision;
    } else if (msg.type === 'current') {
      this.revision = msg.revision;
    } else {
      return;
    }
    this.markReady();
    this.report();
  }

  private report(): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: 'status', revision: this.revision, ...this.opts.status() }));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.ws?.close(1000, 'agent stopping');
    this.ws = null;
  }
}
