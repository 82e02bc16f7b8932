/**
 * The watch stream: each agent holds a WebSocket to
 * /v1/agents/HOST/watch?revision=R[&protocol=2&epoch=E].
 *
 * Controller -> agent:  {"type":"state","revision":N,"epoch":E,"view":HostView[,"keys":{..},"groups":{..}][,"reason":WHY]}
 *                                                    the host's full view
 *                       {"type":"delta","from":M,"revision":N,...}  what changed (protocol 2)
 *                       {"type":"current","revision":N,"epoch":E}   nothing to change
 *                       {"type":"trace","order":TraceOrder}          follow a probe (weft trace)
 * Agent -> controller:  {"type":"status","revision":N,"ports":{...},"counters":{...}}
 *                       {"type":"trace-report","id":ID,"steps":[...]}   what it saw of one
 *                       {"type":"apply-failed","revision":N,"error":E}  a view it cannot apply
 *                       {"type":"resync","reason":WHY}           send me a full state (protocol 2)
 *
 * Protocol 2 (the agent says `protocol=2`): after the first full state, the agent gets only
 * deltas (src/view/view-delta.ts), each on the revision before it (`from`), in order: a
 * network's header when it changed, its neighbors added, changed and removed by port name
 * (a one-port change in a network of 64,000 ports is one entry), the host's own ports by
 * name, its NAT, groups, and its address sets by network and port. A full state carries,
 * beside the view, each network's neighbors' port names (`keys`, what deltas name them
 * by) and each address set's parts by network and port (`groups`), and says why it was
 * sent when it is not the first: `compacted` (the agent resumed from a revision whose
 * deltas are no longer kept, or a controller that restarted since), `requested` (the
 * agent asked: a delta that did not apply, or its periodic safety net), `admin` (weft host
 * resync). An agent without protocol 2 gets a full state whenever its view changes, as
 * before.
 *
 * Revisions and resumption: a host's revision is the watch revision of the last change to
 * its view (view-feed.ts: the store's revision, or a millionth above the last when a
 * gateway moved without a store change); `epoch` names the controller's lifetime, whose
 * fractional revisions are its own, and the agent gives it back. The controller keeps each host's last deltas, as sent, in a
 * bounded history (view-feed.ts DEFAULT_HISTORY: 256 messages or 64 KiB a host). An
 * agent reconnecting at revision R gets "current" if R is its revision, the deltas since R
 * if the history holds the one from R, else a full state (`compacted`): never a gap. A
 * restarted controller's history is empty, its every host at the store's revision: an
 * agent at that revision resumes as current (unless its view depends on where the
 * controller placed an external gateway, which a restart may place elsewhere), any other
 * gets a full state.
 *
 * Changes committed in one event-loop turn are sent once. A client that stops reading is
 * disconnected once the bytes queued for it pass a bound (8 MiB by default; counted in
 * `weft_controller_watch_slow_disconnects_total`), so that it never holds the controller's
 * memory.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { bearer, sameToken, type AgentStatusSource } from './api.js';
import { looksLikeAgentAuth, parseAgentAuth, verifyAgentAuth } from '../view/agent-auth.js';
import { SeenSignatures } from './seen-signatures.js';
import type { ModelCache } from './model-cache.js';
import type { Change } from './store/store.js';
import { EventLog } from './events.js';
import { CONTROL_CHARACTERS, name as nameSchema, nameRecord, printable, quoted } from '../config/fields.js';
import type { TraceStep } from '../datapath/trace.js';
import type { TraceOrder } from '../view/host-view.js';
import type { TraceCarrier } from './trace.js';
import { ViewFeeds, type HistoryLimits } from './view-feed.js';

/** What an agent reports in its own words (an error's text): kept, with its control and
 * bidi characters escaped, so that it cannot drive the terminal of whoever reads it. */
const agentText = (max: number) => z.string().max(max).transform(printable);
/** A port's name as an agent reports it (its ports and `uplink:PHYSNET`): a status naming
 * one with control or bidi characters is refused. */
const reportedPort = z.string().max(80).refine((t) => !CONTROL_CHARACTERS.test(t), 'a port name without control or bidirectional-formatting characters');

/** An agent's report, as far as the controller reads it (counters are passed on as they are). */
const statusMessage = z.object({
  type: z.literal('status'),
  revision: z.number().finite().optional(),
  ports: nameRecord(reportedPort, z.object({ attached: z.boolean(), error: agentText(1000).optional() })).optional(),
  counters: z.unknown().optional(),
});

/** What an agent recorded of a trace (trace.ts), bounded as the agent bounds it. */
const traceReport = z.object({
  type: z.literal('trace-report'),
  id: z.string().regex(/^[0-9a-f]{8}$/),
  steps: z.array(z.object({
    at: z.number(), stage: agentText(64), verdict: z.enum(['pass', 'drop', 'deliver', 'send']), detail: agentText(512), port: agentText(64).optional(),
  })).max(64),
});

/** An agent asks for a full state (a delta that did not apply, or its periodic check). */
const resyncRequest = z.object({ type: z.literal('resync'), reason: agentText(200).optional() });

/** An agent could not apply a view (it keeps forwarding with the last one). */
const applyFailed = z.object({ type: z.literal('apply-failed'), revision: z.number().finite(), error: agentText(1000) });

/** The watch of host NAME; NAME is checked as every host name is (lower case: an agent's
 * own config takes no other), and refused with the rule it breaks. */
const PATH = /^\/v1\/agents\/([^/]*)\/watch$/;
const PING_MS = 5000;
/** Bytes queued for a watch client past which it is disconnected (it stopped reading). */
export const WATCH_BUFFER_LIMIT = 8 * 1024 * 1024;
/** The watch protocol that has deltas. */
const DELTAS = 2;

export interface WatchOptions {
  /** Bytes queued for one client before it is disconnected (WATCH_BUFFER_LIMIT). */
  bufferLimit?: number;
  /** Each host's history of deltas (view-feed.ts DEFAULT_HISTORY). */
  history?: HistoryLimits;
}

/** What the watch has done, for /metrics. */
export interface WatchCounters {
  slowDisconnects: number;
  fullStates: number;
  deltas: number;
  resyncRequests: number;
  bytesSent: number;
}

export interface AgentStatus {
  connected: boolean;
  lastSeen: string | null;
  appliedRevision: number | null;
  ports: Record<string, { attached: boolean; error?: string }>;
  counters: unknown;
}

interface Session {
  ws: WebSocket;
  alive: boolean;
  /** It speaks protocol 2: deltas after the first full state. */
  deltas: boolean;
  /** It has been given its resumption (before that, changes are for its history only). */
  resumed: boolean;
}

export class WatchHub implements AgentStatusSource, TraceCarrier {
  private readonly sessions = new Map<string, Session>();
  private readonly statuses = new Map<string, AgentStatus>();
  private scheduled = false;
  private readonly feeds: ViewFeeds;
  private readonly bufferLimit: number;
  readonly counters: WatchCounters = { slowDisconnects: 0, fullStates: 0, deltas: 0, resyncRequests: 0, bytesSent: 0 };
  /** An agent's status report is its ports' counters: about 300 bytes a port, so 1 MiB
   * holds a host at the agent's port limit; a larger message closes the connection. */
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  private readonly pinger: NodeJS.Timeout;

  constructor(
    private readonly model: ModelCache,
    private readonly tokens: { admin: string },
    private readonly log: Logger,
    readonly events = new EventLog(),
    /** The agents' signatures taken already (shared with the join: one per controller). */
    readonly signatures = new SeenSignatures(),
    options: WatchOptions = {},
  ) {
    this.feeds = new ViewFeeds(model, options.history);
    this.bufferLimit = options.bufferLimit ?? WATCH_BUFFER_LIMIT;
    this.pinger = setInterval(() => {
      for (const [host, s] of this.sessions) {
        if (!s.alive) {
          this.log.warn({ host }, 'agent stopped answering pings; closing its watch');
          s.ws.terminate();
          continue;
        }
        s.alive = false;
        s.ws.ping();
      }
    }, PING_MS);
    this.pinger.unref();
  }

  /** Takes WebSocket upgrades for the watch path on `server`. */
  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://controller');
    const m = PATH.exec(url.pathname);
    const refuse = (code: number, why: string) => {
      socket.end(`HTTP/1.1 ${code} ${why}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
    };
    if (!m) return refuse(404, 'Not Found');
    const host = m[1];
    const checked = nameSchema.safeParse(host);
    if (!checked.success) return refuse(400, `Bad Request: ${quoted(host)} is not a valid host name: ${checked.error.issues[0].message}`);
    // The administrator, or the host's own agent, signing with the identity it enrolled.
    if (!sameToken(bearer(req.headers.authorization), this.tokens.admin)) {
      const signed = parseAgentAuth(req.headers.authorization);
      if (!signed) return refuse(401, looksLikeAgentAuth(req.headers.authorization) ? 'Unauthorized: the WeftHost signature is not HOST:MILLISECONDS:NONCE:SIGNATURE (an older agent\'s?)' : 'Unauthorized');
      if (signed.host !== host) return refuse(403, `Forbidden: signed as host ${signed.host}, not ${host}`);
      const key = this.model.hosts.get(host)?.identityKey;
      if (!key) return refuse(401, `Unauthorized: host ${host} is not enrolled (or was revoked)`);
      const now = Date.now();
      // A watch has no body: the signature covers the empty one.
      if (!verifyAgentAuth(signed, key, { method: 'GET', target: url.pathname + url.search }, now)) return refuse(401, 'Unauthorized');
      const seen = this.signatures.admit(signed, now);
      if (seen === 'replayed') return refuse(401, `Unauthorized: this signature of host ${host} was used before (each is taken once)`);
      if (seen === 'full') return refuse(429, `Too Many Requests: host ${host} signed more requests in the last minutes than the controller keeps track of`);
    }
    if (!this.model.hosts.has(host)) return refuse(409, `host ${host} has not joined: POST /v1/agents/join first`);
    const revision = Number(url.searchParams.get('revision') ?? '-1');
    const protocol = Number(url.searchParams.get('protocol') ?? '1');
    const epoch = url.searchParams.get('epoch') ?? undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(host, ws, Number.isFinite(revision) ? revision : -1, protocol >= DELTAS, epoch));
  }

  private connected(host: string, ws: WebSocket, revision: number, deltas: boolean, epoch?: string): void {
    const old = this.sessions.get(host);
    if (old) old.ws.close(4000, 'replaced by a newer connection of the same host');
    const session: Session = { ws, alive: true, deltas, resumed: false };
    this.sessions.set(host, session);
    this.statusOf(host).connected = true;
    this.log.info({ host, revision, protocol: deltas ? DELTAS : 1 }, 'agent connected');
    this.events.add('agent.connected', `the agent of ${host} connected`, host);
    // An external gateway may move to it (one had no connected host to be on).
    this.touch(this.connectedChanged(host, true));
    ws.on('pong', () => (session.alive = true));
    ws.on('message', (data) => this.message(host, String(data)));
    ws.on('close', () => {
      if (this.sessions.get(host) !== session) return;
      this.sessions.delete(host);
      this.statusOf(host).connected = false;
      this.log.info({ host }, 'agent disconnected');
      this.events.add('agent.disconnected', `the agent of ${host} went away`, host);
      // External gateways it held move to another host.
      this.touch(this.connectedChanged(host, false));
    });
    ws.on('error', (err) => this.log.warn({ host, err: err.message }, 'agent connection failed'));
    this.resume(host, session, revision, epoch);
  }

  /** What an agent connecting at `revision` gets: nothing, the deltas since, or a full state. */
  private resume(host: string, s: Session, revision: number, epoch?: string): void {
    // Everything changed so far is in the feeds (and sent to the others) first: a full
    // state is then exactly what the host's feed says it has.
    this.flush();
    s.resumed = true;
    const r = revision < 0 ? { kind: 'full' as const, reason: undefined } : this.feeds.since(host, revision, epoch);
    if (r.kind === 'current') {
      this.transmit(s, JSON.stringify({ type: 'current', revision, epoch: this.feeds.epoch }));
    } else if (r.kind === 'deltas' && s.deltas) {
      this.log.info({ host, from: revision, deltas: r.texts.length }, 'agent resumes from its revision');
      for (const t of r.texts) this.transmit(s, t, 'delta');
    } else {
      this.full(host, s, r.kind === 'full' ? r.reason : undefined);
    }
  }

  /** Sends the host its full state, saying why (absent: the first). */
  private full(host: string, s: Session, reason?: string): void {
    const f = this.feeds.full(host);
    this.transmit(s, JSON.stringify({
      type: 'state', revision: f.revision, epoch: this.feeds.epoch, view: f.view, ...(s.deltas ? { keys: f.keys, groups: f.groups } : {}), ...(reason ? { reason } : {}),
    }), 'state');
  }

  /** `weft host resync NAME`: sends the host a full state now; false if its agent is away. */
  resync(host: string, reason = 'admin'): boolean {
    const s = this.sessions.get(host);
    if (!s) return false;
    this.flush();
    this.log.info({ host, reason }, 'sending the agent a full state');
    this.full(host, s, reason);
    return true;
  }

  /** Sends one message, unless the client has stopped reading: then it is cut off. */
  private transmit(s: Session, text: string, kind?: 'state' | 'delta'): void {
    if (s.ws.readyState !== s.ws.OPEN) return;
    if (s.ws.bufferedAmount > this.bufferLimit) {
      const host = [...this.sessions].find(([, x]) => x === s)?.[0];
      this.counters.slowDisconnects++;
      this.log.warn({ host, queuedBytes: s.ws.bufferedAmount, limit: this.bufferLimit }, 'agent stopped reading its watch; disconnecting it');
      if (host) this.events.add('agent.slow', `the agent of ${host} stopped reading its watch (${s.ws.bufferedAmount} bytes queued); disconnected`, host);
      s.ws.terminate();
      return;
    }
    if (kind === 'state') this.counters.fullStates++;
    if (kind === 'delta') this.counters.deltas++;
    this.counters.bytesSent += text.length;
    s.ws.send(text);
  }

  /** Tells the model a host's agent came or went, and says where external gateways moved. */
  private connectedChanged(host: string, connected: boolean): Set<string> {
    const holders = () => new Map([...this.model.routers.values()].map((r) => [r.name, this.model.gatewayHost(r)]));
    const before = holders();
    const affected = this.model.setConnected(host, connected);
    for (const [router, now] of holders()) {
      const was = before.get(router);
      if (now !== was) this.events.add('gateway.moved', `router ${router}'s external gateway moved ${was ? `from ${was} ` : ''}to ${now ?? 'no host'}`, now);
    }
    return affected;
  }

  private message(host: string, text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.log.warn({ host }, 'agent sent a message that is not JSON; ignored');
      return;
    }
    const type = (parsed as { type?: unknown } | null)?.type;
    if (type === 'trace-report') {
      const t = traceReport.safeParse(parsed);
      if (!t.success) return this.log.warn({ host, problem: t.error.issues[0]?.message }, 'agent sent a trace report the controller does not understand; ignored');
      this.traceWaits.get(t.data.id)?.(host, t.data.steps);
      return;
    }
    if (type === 'resync') {
      const q = resyncRequest.safeParse(parsed);
      const s = this.sessions.get(host);
      if (!q.success || !s?.resumed) return;
      this.counters.resyncRequests++;
      this.log.info({ host, why: q.data.reason }, 'agent asks for a full state');
      this.flush();
      this.full(host, s, 'requested');
      return;
    }
    if (type === 'apply-failed') {
      const f = applyFailed.safeParse(parsed);
      if (f.success) this.events.add('view.failed', `${host} cannot apply revision ${f.data.revision} (it keeps forwarding with the last view it applied): ${f.data.error}`, host);
      return;
    }
    const r = statusMessage.safeParse(parsed);
    if (!r.success) {
      this.log.warn({ host, problem: r.error.issues[0]?.message }, 'agent sent a status the controller does not understand; ignored');
      return;
    }
    const msg = r.data;
    const s = this.statusOf(host);
    s.lastSeen = new Date().toISOString();
    s.appliedRevision = typeof msg.revision === 'number' ? msg.revision : s.appliedRevision;
    for (const [port, now] of Object.entries(msg.ports ?? {})) {
      const was = Object.hasOwn(s.ports, port) ? s.ports[port] : undefined;
      if (was?.attached === now.attached && was?.error === now.error) continue;
      if (now.attached) this.events.add('port.attached', `port ${port} is up on ${host}`, host);
      else this.events.add('port.failed', `port ${port} is not attached on ${host}: ${now.error ?? 'no reason given'}`, host);
    }
    s.ports = msg.ports ?? s.ports;
    s.counters = msg.counters ?? s.counters;
  }

  /** Trace reports awaited, by trace id. */
  private readonly traceWaits = new Map<string, (host: string, steps: TraceStep[]) => void>();

  connectedHosts(): string[] {
    return [...this.sessions.keys()];
  }

  /** Sends each connected host its trace order; resolves with what each reported within
   * `ms` (trace.ts). */
  collect(orders: Map<string, TraceOrder>, ms: number): Promise<Map<string, TraceStep[]>> {
    const got = new Map<string, TraceStep[]>();
    const asked = [...orders].filter(([host]) => this.sessions.has(host));
    const id = asked[0]?.[1].id;
    if (id === undefined) return Promise.resolve(got);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.traceWaits.delete(id);
        resolve(got);
      };
      const timer = setTimeout(done, ms);
      this.traceWaits.set(id, (host, steps) => {
        if (!orders.has(host) || got.has(host)) return;
        got.set(host, steps);
        if (got.size === asked.length) done();
      });
      for (const [host, order] of asked) this.sessions.get(host)!.ws.send(JSON.stringify({ type: 'trace', order }));
    });
  }

  /** Feeds committed changes (from the store's subscription). */
  onChanges(changes: Change[]): void {
    this.record(changes);
    this.touch(this.model.apply(changes));
    // A revoked host's agent is cut off at once.
    for (const [host, s] of this.sessions) {
      if (this.model.hosts.get(host)?.revokedAt !== undefined) {
        this.log.warn({ host }, 'host revoked; closing its watch');
        s.ws.close(4003, 'host revoked');
      }
    }
  }

  /** Events for what the store committed, told apart from the model as it was before. */
  private record(changes: Change[]): void {
    const m = this.model;
    const known: Record<string, Map<string, unknown>> = {
      hosts: m.hosts, networks: m.networks, subnets: m.subnets, ports: m.ports, routers: m.routers, 'security-groups': m.securityGroups,
    };
    const events: Array<[string, string, string?]> = [];
    for (const c of changes) {
      if (c.key.startsWith('/index/')) continue;
      const [, kind, name] = c.key.split('/');
      const have = known[kind];
      if (!have || name === undefined) continue;
      const one = kind === 'security-groups' ? 'security-group' : kind.slice(0, -1);
      const before = have.get(name) as Record<string, unknown> | undefined;
      const after = c.value as Record<string, unknown> | null;
      const on = kind === 'ports' ? ((after ?? before)?.host as string | undefined) : kind === 'hosts' ? name : undefined;
      if (after === null) events.push([`${one}.deleted`, `${one} ${name} deleted`, on]);
      else if (!before) events.push([`${one}.created`, `${one} ${name} created${on && kind === 'ports' ? ` on ${on}` : ''}`, on]);
      else if (kind === 'hosts' && after.revokedAt && !before.revokedAt) events.push(['host.revoked', `host ${name} revoked`, name]);
      else if (kind === 'hosts' && after.identityKey && after.identityKey !== before.identityKey) events.push(['host.enrolled', `host ${name} enrolled its identity`, name]);
      else if (kind === 'hosts' && after.address !== before.address) events.push(['host.moved', `host ${name}'s underlay address moved from ${String(before.address)} to ${String(after.address)}`, name]);
      else if (kind !== 'hosts') events.push([`${one}.updated`, `${one} ${name} updated`, on]);
    }
    this.events.addAll(events);
  }

  /** Sends what changed, once per event-loop turn (the model gathers the changes: the
   * hosts its callers name are in them). */
  private touch(_hosts: Iterable<string>): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Turns the model's changes into each host's delta and sends them: a delta to an agent
   * that speaks protocol 2, its full view to one that does not. */
  private flush(): void {
    for (const [host, text] of this.feeds.flush()) {
      const s = this.sessions.get(host);
      if (!s?.resumed) continue;
      if (s.deltas) this.transmit(s, text, 'delta');
      else this.full(host, s);
    }
  }

  private statusOf(host: string): AgentStatus {
    let s = this.statuses.get(host);
    if (!s) this.statuses.set(host, (s = { connected: false, lastSeen: null, appliedRevision: null, ports: {}, counters: null }));
    return s;
  }

  status(host: string): AgentStatus {
    return this.statusOf(host);
  }

  /** How many agents are watching now. */
  get watching(): number {
    return this.sessions.size;
  }

  gatewayHost(router: string): string | undefined {
    const r = this.model.routers.get(router);
    return r && this.model.gatewayHost(r);
  }

  close(): void {
    clearInterval(this.pinger);
    for (const s of this.sessions.values()) s.ws.terminate();
    this.wss.close();
  }
}
