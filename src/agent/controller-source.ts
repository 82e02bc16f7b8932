/**
 * The agent's side of the control plane: registers the host with the controller, holds the
 * watch stream (protocol 2, src/controller/watch.ts), keeps its copy of the host's view up
 * to date from full states and deltas, and hands every resulting whole view to `apply`.
 * When the controller is away the agent keeps forwarding with its last state and reconnects
 * with backoff, resuming from the last revision it applied (the controller sends the deltas
 * since, or a full state saying why).
 *
 * A delta that does not apply cleanly (not on the applied revision, malformed, removing what
 * the copy does not have) is refused: the copy stays as it was, the refusal is logged and
 * counted, and the agent asks for a full state (`{"type":"resync"}`), ignoring deltas until
 * it comes. As a safety net the agent also asks for a full state every 10 minutes or so
 * (jittered, so that a fleet does not ask at once).
 */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writePrivateFile } from '../io/private-file.js';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';
import type { HostView, TraceOrder } from '../view/host-view.js';
import type { TraceStep } from '../datapath/trace.js';
import { caFingerprint, signAgentRequest } from '../view/agent-auth.js';
import { applyDelta, DeltaRefused, type ViewCopy } from '../view/view-delta.js';

export interface ControllerSourceOptions {
  url: string;
  /** The host's join token, to enroll with the first time (spent then); afterwards the
   * agent signs with `identity` alone. */
  token?: string;
  /** The host's identity key: what it enrolls and signs with. */
  identity: { key: KeyObject; publicKey: string };
  /** Where the https:// controller's certificate authority is kept once pinned (by the
   * fingerprint the join token carries), for the starts after the token is spent. */
  caFile?: string;
  host: { name: string; address: string; port: number; genevePort: number; tunnelPort: number; tunnelKey?: string; mtu: number; physicalNetworks?: Record<string, string> };
  log: Logger;
  apply(view: HostView, revision: number): void;
  /** What to report back after each apply and periodically. */
  status(): { ports: Record<string, { attached: boolean; error?: string }>; counters: unknown };
  /** Follows a trace (`weft trace`) and resolves with what this host saw of it. */
  trace?(order: TraceOrder): Promise<TraceStep[]>;
  /** How often to ask for a full state as a safety net, on average (RESYNC_MS). */
  resyncMs?: number;
}

/** What the watch has received and refused (in the agent's stats). */
export interface WatchStats {
  /** Full states applied, and the reason the last one gave (absent: the first). */
  states: number;
  lastStateReason: string | null;
  deltas: number;
  /** Deltas that did not apply cleanly (each asked for a full state). */
  refused: number;
  /** Full states asked for: after a refusal, and periodically. */
  resyncs: number;
  /** Why the last delta was refused. */
  lastRefusal: string | null;
}

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5000;
const STATUS_MS = 5000;
const SILENT_MS = 15_000;
/** The safety net: a full state asked for about this often (jittered by a fifth). */
export const RESYNC_MS = 10 * 60_000;

export class ControllerSource {
  private ws: WebSocket | null = null;
  /** The pinned certificate authority of an https:// controller (PEM). */
  private ca: string | null = null;
  private revision = -1;
  /** The controller lifetime the revision is of (its fractional revisions are its own). */
  private epoch: string | null = null;
  private stopped = false;
  private backoff = BACKOFF_MIN_MS;
  private timer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  /** The view as the controller last said it, with its neighbors' port names (protocol 2). */
  private copy: ViewCopy | null = null;
  /** A full state has been asked for: deltas until it comes are ignored. */
  private awaitingState = false;
  readonly watchStats: WatchStats = { states: 0, lastStateReason: null, deltas: 0, refused: 0, resyncs: 0, lastRefusal: null };
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
    this.scheduleResync();
  }

  /** The periodic full state, at RESYNC_MS +- a fifth. */
  private scheduleResync(): void {
    const every = this.opts.resyncMs ?? RESYNC_MS;
    this.resyncTimer = setTimeout(() => {
      if (this.ws?.readyState === WebSocket.OPEN && this.revision >= 0) this.resync('periodic');
      this.scheduleResync();
    }, every * (0.8 + 0.4 * Math.random()));
    this.resyncTimer.unref();
  }

  /** Asks the controller for a full state. */
  private resync(reason: string): void {
    this.awaitingState = true;
    this.watchStats.resyncs++;
    this.send({ type: 'resync', reason });
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
    const ca = await this.trust();
    const body = JSON.stringify({ ...host, identityKey: identity.publicKey });
    const post = (authorization: string) => request(new URL('/v1/agents/join', url), 'POST', { authorization, 'content-type': 'application/json' }, body, ca);
    let res = await post(signAgentRequest(host.name, identity.key, { method: 'POST', target: '/v1/agents/join', body }));
    if (res.status === 401 && this.opts.token) {
      res = await post(`Bearer ${this.opts.token}`);
      if (res.ok) this.opts.log.info('enrolled this host\'s identity with its join token');
      // Spent, or not valid (another host's, expired, replaced): not to be tried again. Any
      // other refusal (an address in use, say) left it unspent, for the next try.
      if (res.ok || res.status === 401) this.opts.token = undefined;
    }
    if (!res.ok) {
      let detail = res.body;
      try {
        detail = (JSON.parse(res.body) as { detail?: string }).detail ?? res.body;
      } catch { /* not a problem body: its text */ }
      throw new Error(`join refused (${res.status}): ${detail}`);
    }
  }

  /**
   * The https:// controller's certificate authority: pinned before anything is sent. The
   * first time, the join token names its fingerprint; the authority the controller shows
   * must have it, and is kept (caFile) for later starts. null: plain http.
   */
  private async trust(): Promise<string | null> {
    const { url, caFile } = this.opts;
    if (new URL(url).protocol !== 'https:') return null;
    if (this.ca !== null) return this.ca;
    if (caFile && existsSync(caFile)) return (this.ca = readFileSync(caFile, 'utf8'));
    const pinned = this.opts.token?.split('.')[1];
    if (!pinned) throw new Error(`cannot trust ${url}: no join token naming its certificate authority, and none pinned${caFile ? ` in ${caFile}` : ''}`);
    const shown = await authorityOf(new URL(url));
    const fingerprint = caFingerprint(shown);
    if (fingerprint !== pinned) {
      throw new Error(`${url} is not the controller this host's join token is for: its certificate authority's fingerprint is ${fingerprint}, the token names ${pinned}; nothing was sent to it`);
    }
    const pem = new X509Certificate(shown).toString();
    // What this host trusts from now on: in the agent's own directory, no symlink followed.
    if (caFile) writePrivateFile(caFile, pem, { what: 'the controller\'s pinned certificate authority' });
    this.opts.log.info({ caFingerprint: fingerprint }, 'pinned the controller\'s certificate authority');
    return (this.ca = pem);
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
    const wsUrl = new URL(`/v1/agents/${host.name}/watch?revision=${this.revision}&protocol=2${this.epoch ? `&epoch=${encodeURIComponent(this.epoch)}` : ''}`, url);
    // A full state asked for on the last connection is not coming on this one.
    this.awaitingState = false;
    wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(wsUrl, {
      headers: { authorization: signAgentRequest(host.name, identity.key, { method: 'GET', target: wsUrl.pathname + wsUrl.search }) }, handshakeTimeout: 5000,
      // The pinned authority is the trust: the controller's name need not be in its certificate.
      ...(this.ca ? { ca: this.ca, checkServerIdentity: () => undefined } : {}),
    });
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
    ws.on('open', () => {
      this.backoff = BACKOFF_MIN_MS;
      heard = Date.now();
      log.info({ controller: url, revision: this.revision }, 'watching the controller');
    });
    ws.on('message', (data) => {
      heard = Date.now();
      this.message(String(data));
    });
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
    let msg: { type: string; revision: number; epoch?: unknown; view?: HostView; keys?: unknown; groups?: unknown; reason?: unknown; order?: TraceOrder };
    try {
      msg = JSON.parse(text);
    } catch {
      this.opts.log.warn('the controller sent a message that is not JSON; ignored');
      return;
    }
    if (msg?.type === 'state' && msg.view) {
      if (!this.install(msg.view, msg.revision)) {
        // Not waiting for a state any more (this one came): the next delta, with no copy to
        // apply on, is refused and asks for a full state again, so a view that could not be
        // applied is retried at the next change rather than at the periodic resync.
        this.awaitingState = false;
        this.copy = null;
        return;
      }
      const { keys, groups } = msg;
      const record = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
      const valid = record(keys) && Object.values(keys).every((k) => Array.isArray(k) && k.every((x) => typeof x === 'string'))
        && record(groups) && Object.values(groups).every((g) => record(g) && Object.values(g).every(Array.isArray));
      // Without keys (a controller without deltas), there is nothing a delta could apply on.
      this.copy = valid ? { view: msg.view, keys: keys as ViewCopy['keys'], groups: groups as ViewCopy['groups'] } : null;
      this.epoch = typeof msg.epoch === 'string' ? msg.epoch.slice(0, 64) : null;
      this.awaitingState = false;
      this.watchStats.states++;
      this.watchStats.lastStateReason = typeof msg.reason === 'string' ? msg.reason.slice(0, 64) : null;
      if (msg.reason !== undefined) this.opts.log.info({ revision: msg.revision, reason: this.watchStats.lastStateReason }, 'a full state from the controller');
    } else if (msg?.type === 'delta') {
      if (this.awaitingState) return;
      let next: ViewCopy;
      try {
        if (!this.copy) throw new DeltaRefused('a delta before any full state with keys');
        next = applyDelta(this.copy, this.revision, msg);
      } catch (err) {
        // A delta that does not apply, whether it says so (DeltaRefused) or is malformed in a
        // way the checks did not foresee (a TypeError deep in it): refused, counted, and a
        // full state asked for; never the end of the agent.
        const why = err instanceof DeltaRefused ? err.message : `a malformed delta (${String((err as Error)?.message ?? err).slice(0, 120)})`;
        this.watchStats.refused++;
        this.watchStats.lastRefusal = why;
        this.opts.log.warn({ revision: this.revision, why }, 'refused a delta from the controller; asking for a full state');
        this.resync(`refused a delta: ${why}`.slice(0, 200));
        return;
      }
      if (!this.install(next.view, msg.revision)) return;
      this.copy = next;
      this.watchStats.deltas++;
    } else if (msg?.type === 'current') {
      this.revision = msg.revision;
      if (typeof msg.epoch === 'string') this.epoch = msg.epoch.slice(0, 64);
    } else if (msg?.type === 'trace' && msg.order && this.opts.trace) {
      const id = msg.order.id;
      this.opts.trace(msg.order).then(
        (steps) => this.send({ type: 'trace-report', id, steps }),
        (err) => this.send({ type: 'trace-report', id, steps: [{ at: Date.now(), stage: 'inject', verdict: 'drop', detail: String((err as Error).message).slice(0, 500) }] }),
      );
      return;
    } else {
      return;
    }
    this.markReady();
    this.report();
  }

  /** Hands a whole view to `apply`; false (and the controller told) if it cannot be applied. */
  private install(view: HostView, revision: number): boolean {
    try {
      this.opts.apply(view, revision);
    } catch (err) {
      // A view this agent cannot apply (from a newer or broken controller) must not stop
      // forwarding: keep the state we have and say why, once per revision.
      this.opts.log.error({ revision, err: (err as Error).message }, 'cannot apply the controller\'s view; keeping the last state');
      this.send({ type: 'apply-failed', revision, error: (err as Error).message.slice(0, 1000) });
      return false;
    }
    this.revision = revision;
    return true;
  }

  private report(): void {
    this.send({ type: 'status', revision: this.revision, ...this.opts.status() });
  }

  private send(message: object): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify(message));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.ws?.close(1000, 'agent stopping');
    this.ws = null;
  }
}

/** One HTTP(S) request: https verified against `ca` alone (names unchecked: the pin is the
 * trust). */
function request(url: URL, method: string, headers: Record<string, string>, body: string, ca: string | null): Promise<{ status: number; ok: boolean; body: string }> {
  return new Promise((resolve, reject) => {
    const options = { method, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, timeout: 5000 };
    const done = (res: import('node:http').IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ok: (res.statusCode ?? 0) < 300, body: text }));
      res.on('error', reject);
    };
    const req = url.protocol === 'https:'
      ? httpsRequest(url, { ...options, ca: ca ?? undefined, checkServerIdentity: () => undefined }, done)
      : httpRequest(url, options, done);
    req.on('timeout', () => req.destroy(new Error(`${url.origin} did not answer in 5 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The certificate authority (DER) at the end of the chain a TLS server shows. Nothing is
 * sent on the connection but the handshake. */
function authorityOf(url: URL): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: url.hostname, port: Number(url.port) || 443, rejectUnauthorized: false, timeout: 5000 }, () => {
      let cert: DetailedPeerCertificate = socket.getPeerCertificate(true);
      for (let i = 0; i < 8 && cert.issuerCertificate && cert.issuerCertificate !== cert && cert.issuerCertificate.raw; i++) cert = cert.issuerCertificate;
      socket.end();
      if (!cert?.raw) return reject(new Error(`${url.origin} showed no certificate`));
      resolve(cert.raw);
    });
    socket.on('timeout', () => socket.destroy(new Error(`${url.origin} did not complete a TLS handshake in 5 s`)));
    socket.on('error', reject);
  });
}
