/**
 * The watch stream: each agent holds a WebSocket to /v1/agents/HOST/watch?revision=R.
 *
 * Controller -> agent:  {"type":"state","revision":N,"view":HostView}   the host's full view
 *                       {"type":"current","revision":N}                 nothing to change
 *                       {"type":"trace","order":TraceOrder}              follow a probe (weft trace)
 * Agent -> controller:  {"type":"status","revision":N,"ports":{...},"counters":{...}}
 *                       {"type":"trace-report","id":ID,"steps":[...]}   what it saw of one
 *                       {"type":"apply-failed","revision":N,"error":E}  a view it cannot apply
 *
 * A view is sent when the agent connects (unless it says it has the current revision) and
 * whenever a committed change touches the host; changes committed in one event-loop turn
 * are sent once. A view identical to the last one sent is not sent again. Full views rather
 * than deltas: an agent can never drift by a lost delta, and views are small (a host's
 * networks and their ports).
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
import { CONTROL_CHARACTERS, nameRecord, printable } from '../config/fields.js';
import type { TraceStep } from '../datapath/trace.js';
import type { TraceOrder } from '../view/host-view.js';
import type { TraceCarrier } from './trace.js';

/** What an agent reports in its own words (an error's text): kept, with its control and
 * bidi characters escaped, so that it cannot drive the terminal of whoever reads it. */
const agentText = (max: number) => z.string().max(max).transform(printable);
/** A port's name as an agent reports it (its ports and `uplink:PHYSNET`): a status naming
 * one with control or bidi characters is refused. */
const reportedPort = z.string().max(80).refine((t) => !CONTROL_CHARACTERS.test(t), 'a port name without control or bidirectional-formatting characters');

/** An agent's report, as far as the controller reads it (counters are passed on as they are). */
const statusMessage = z.object({
  type: z.literal('status'),
  revision: z.number().int().optional(),
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

/** An agent could not apply a view (it keeps forwarding with the last one). */
const applyFailed = z.object({ type: z.literal('apply-failed'), revision: z.number().int(), error: agentText(1000) });

const PATH = /^\/v1\/agents\/([a-z0-9][a-z0-9_.-]{0,62})\/watch$/i;
const PING_MS = 5000;

export interface AgentStatus {
  connected: boolean;
  lastSeen: string | null;
  appliedRevision: number | null;
  ports: Record<string, { attached: boolean; error?: string }>;
  counters: unknown;
}

interface Session {
  ws: WebSocket;
  sent: string | null;
  alive: boolean;
}

export class WatchHub implements AgentStatusSource, TraceCarrier {
  private readonly sessions = new Map<string, Session>();
  private readonly statuses = new Map<string, AgentStatus>();
  private readonly pending = new Set<string>();
  private scheduled = false;
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
  ) {
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
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(host, ws, Number.isFinite(revision) ? revision : -1));
  }

  private connected(host: string, ws: WebSocket, revision: number): void {
    const old = this.sessions.get(host);
    if (old) old.ws.close(4000, 'replaced by a newer connection of the same host');
    const session: Session = { ws, sent: null, alive: true };
    this.sessions.set(host, session);
    this.statusOf(host).connected = true;
    this.log.info({ host, revision }, 'agent connected');
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
    if (revision === this.model.revision) {
      // The agent has everything up to now: it resumes without a resend.
      session.sent = JSON.stringify(this.model.viewFor(host));
      ws.send(JSON.stringify({ type: 'current', revision }));
    } else {
      this.send(host);
    }
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

  /** Sends the views of `hosts` (those connected), once per event-loop turn. */
  private touch(hosts: Iterable<string>): void {
    for (const host of hosts) if (this.sessions.has(host)) this.pending.add(host);
    if (this.pending.size > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        for (const host of this.pending) this.send(host);
        this.pending.clear();
      });
    }
  }

  private send(host: string): void {
    const s = this.sessions.get(host);
    if (!s) return;
    const view = JSON.stringify(this.model.viewFor(host));
    if (view === s.sent) return;
    s.sent = view;
    s.ws.send(`{"type":"state","revision":${this.model.revision},"view":${view}}`);
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
