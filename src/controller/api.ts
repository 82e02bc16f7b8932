/**
 * The controller's REST API. One route table drives both the handlers and the OpenAPI
 * document at /openapi.json. Every request body is validated against its schema; every
 * error leaves as an RFC 9457 problem body that says which field is wrong and why.
 *
 * Who may call what: the admin token, everything; an agent, only /v1/agents/join, as its
 * own host (with the host's single-use join token to enroll, then signed with the host's
 * identity key: src/view/agent-auth.ts), and its own host's watch stream (watch.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { Logger } from 'pino';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import type { Router } from './model.js';
import { securityGroupCreate, securityGroupRule } from './model.js';
import { floatingIpCreate, hostJoin, name as nameSchema, networkCreate, networkUpdate, portCreate, portForwardCreate, portUpdate, routerCreate, routerUpdate, subnetCreate, subnetUpdate } from './model.js';
import { applyRequest, type Applier, type ApplyRequest } from './apply.js';
import { ApiError, type AgentAuth, type NetworkService } from './service.js';
import { looksLikeAgentAuth, parseAgentAuth } from '../view/agent-auth.js';
import type { ControllerMetrics } from './metrics.js';
import type { EventLog } from './events.js';
import { traceRequest, type TraceRequest, type Traces } from './trace.js';
import { serveConsole } from './console.js';
import { StoreFull, StoreSyncFailed } from './store/store.js';
import { LEGACY_NAME_PATTERN, quoted } from '../config/fields.js';
import { issueFields } from '../config/field-path.js';

const joinTokenRequest = z.object({ ttlSeconds: z.number().int().min(60).max(30 * 86_400).default(3600) }).strict();

export interface AgentStatusSource {
  status(host: string): unknown;
  /** The host holding a router's external gateway now (the controller places it). */
  gatewayHost?(router: string): string | undefined;
  /** Sends a host's agent a full state now (weft host resync); false: it is not connected. */
  resync?(host: string): boolean;
}

export interface ApiOptions {
  service: NetworkService;
  /** Carries out `weft apply` files in one transaction. */
  applier: Applier;
  adminToken: string;
  agents: AgentStatusSource;
  /** Times every request, and serves GET /metrics (admin token). */
  metrics?: ControllerMetrics;
  /** Serves GET /v1/events?since=ID (admin token). */
  events?: EventLog;
  /** Serves POST /v1/traces (admin token). */
  traces?: Traces;
  /** The web console's files, served at /ui/ (console.ts). */
  console?: Map<string, { body: Buffer; type: string }> | null;
  /** Where a request the controller failed to handle, and a full store, are told. */
  log?: Logger;
}

type Role = 'admin' | 'agent' | 'public';

/**
 * The largest request body a route takes. A resource is well under 4 KiB (a port with 16
 * addresses and a TAP backend), so 64 KiB leaves room without letting a client make the
 * controller hold much; an apply carries a whole file, and 1 MiB holds thousands of
 * resources. The limit holds while the body streams in, whatever Content-Length says.
 */
export const BODY_LIMIT = 64 * 1024;
export const APPLY_BODY_LIMIT = 1024 * 1024;

interface Route {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  summary: string;
  role: Role;
  body?: z.ZodType;
  /** Bytes; BODY_LIMIT when not given. */
  bodyLimit?: number;
  status?: 200 | 201 | 204;
  /** What it returns changes only with the store's revision (an ETag of it is sent). */
  revisioned?: boolean;
  /** `auth`: who an agent route's caller is (admin routes: always the administrator). */
  handle(params: Record<string, string>, body: unknown, auth: AgentAuth, query: Record<string, string>): Promise<unknown>;
}

function problem(c: Context, err: ApiError): Response {
  return c.json({ type: 'about:blank', title: err.title, status: err.status, detail: err.message, ...(err.errors.length ? { errors: err.errors } : {}) }, err.status, { 'content-type': 'application/problem+json' });
}

export function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function bearer(header: string | undefined): string {
  return header?.startsWith('Bearer ') ? header.slice(7) : '';
}

export function apiApp(opts: ApiOptions): Hono {
  const { service: s } = opts;
  const routes: Route[] = [];
  const crud = (kind: 'networks' | 'subnets' | 'ports' | 'routers', create: z.ZodType, update: z.ZodType, ops: {
    get(n: string): Promise<unknown>; create(b: never): Promise<unknown>; update(n: string, b: never): Promise<unknown>; remove(n: string): Promise<void>;
  }) => {
    const one = kind.slice(0, -1);
    routes.push(
      { method: 'get', path: `/v1/${kind}`, summary: `list ${kind}`, role: 'admin', revisioned: true, handle: () => s.list(kind) },
      { method: 'post', path: `/v1/${kind}`, summary: `create a ${one}`, role: 'admin', body: create, status: 201, handle: (_p, b) => ops.create(b as never) },
      { method: 'get', path: `/v1/${kind}/:name`, summary: `show a ${one}`, role: 'admin', handle: (p) => ops.get(p.name) },
      { method: 'patch', path: `/v1/${kind}/:name`, summary: `change a ${one}`, role: 'admin', body: update, handle: (p, b) => ops.update(p.name, b as never) },
      { method: 'delete', path: `/v1/${kind}/:name`, summary: `delete a ${one}`, role: 'admin', status: 204, handle: async (p) => { await ops.remove(p.name); return null; } },
    );
  };
  crud('networks', networkCreate, networkUpdate, { get: (n) => s.getNetwork(n), create: (b) => s.createNetwork(b), update: (n, b) => s.updateNetwork(n, b), remove: (n) => s.deleteNetwork(n) });
  crud('subnets', subnetCreate, subnetUpdate, { get: (n) => s.getSubnet(n), create: (b) => s.createSubnet(b), update: (n, b) => s.updateSubnet(n, b), remove: (n) => s.deleteSubnet(n) });
  crud('ports', portCreate, portUpdate, { get: (n) => s.getPort(n), create: (b) => s.createPort(b), update: (n, b) => s.updatePort(n, b), remove: (n) => s.deletePort(n) });
  const withPlacement = (r: Router) => (r.externalGateway ? { ...r, externalGateway: { ...r.externalGateway, activeHost: opts.agents.gatewayHost?.(r.name) ?? null } } : r);
  crud('routers', routerCreate, routerUpdate, { get: async (n) => withPlacement(await s.getRouter(n)), create: (b) => s.createRouter(b), update: (n, b) => s.updateRouter(n, b), remove: (n) => s.deleteRouter(n) });
  routes.push(
    { method: 'get', path: '/v1/security-groups', summary: 'list security groups', role: 'admin', handle: () => s.list('security-groups') },
    { method: 'post', path: '/v1/security-groups', summary: 'create a security group: allow rules, each ingress or egress', role: 'admin', body: securityGroupCreate, status: 201,
      handle: (_p, b) => s.createSecurityGroup(b as z.infer<typeof securityGroupCreate>) },
    { method: 'get', path: '/v1/security-groups/:name', summary: 'show a security group', role: 'admin', handle: (p) => s.getSecurityGroup(p.name) },
    { method: 'delete', path: '/v1/security-groups/:name', summary: 'delete a security group no port uses', role: 'admin', status: 204, handle: async (p) => { await s.deleteSecurityGroup(p.name); return null; } },
    { method: 'post', path: '/v1/security-groups/:name/rules', summary: 'add a rule to a security group (every host applies it at once)', role: 'admin', body: securityGroupRule, status: 201,
      handle: (p, b) => s.addSecurityGroupRule(p.name, b as z.infer<typeof securityGroupRule>) },
    { method: 'delete', path: '/v1/security-groups/:name/rules/:id', summary: 'delete a rule from a security group', role: 'admin', handle: (p) => s.deleteSecurityGroupRule(p.name, p.id) },
    { method: 'get', path: '/v1/floating-ips', summary: 'list floating addresses', role: 'admin', handle: () => s.list('floating-ips') },
    { method: 'post', path: '/v1/floating-ips', summary: 'give a VM\'s port an address of a provider network (1:1 NAT at its router\'s external gateway)', role: 'admin', body: floatingIpCreate, status: 201,
      handle: (_p, b) => s.createFloatingIp(b as z.infer<typeof floatingIpCreate>) },
    { method: 'get', path: '/v1/floating-ips/:name', summary: 'show a floating address', role: 'admin', handle: (p) => s.getFloatingIp(p.name) },
    { method: 'delete', path: '/v1/floating-ips/:name', summary: 'delete a floating address', role: 'admin', status: 204, handle: async (p) => { await s.deleteFloatingIp(p.name); return null; } },
    { method: 'get', path: '/v1/port-forwards', summary: 'list port forwards', role: 'admin', handle: () => s.list('port-forwards') },
    { method: 'post', path: '/v1/port-forwards', summary: 'forward a port of a router\'s external address to a VM\'s port', role: 'admin', body: portForwardCreate, status: 201,
      handle: (_p, b) => s.createPortForward(b as z.infer<typeof portForwardCreate>) },
    { method: 'get', path: '/v1/port-forwards/:name', summary: 'show a port forward', role: 'admin', handle: (p) => s.getPortForward(p.name) },
    { method: 'delete', path: '/v1/port-forwards/:name', summary: 'delete a port forward', role: 'admin', status: 204, handle: async (p) => { await s.deletePortForward(p.name); return null; } },
    { method: 'get', path: '/v1/hosts', summary: 'list hosts, with what their agents report', role: 'admin',
      handle: async () => (await s.list<{ name: string }>('hosts')).map((h) => ({ ...h, status: opts.agents.status(h.name) })) },
    { method: 'post', path: '/v1/hosts', summary: 'register a host: its record, and a join token (single use, one hour) for its agent to enroll with', role: 'admin', body: hostJoin, status: 201,
      handle: (_p, b) => s.registerHost(b as z.infer<typeof hostJoin>) },
    { method: 'post', path: '/v1/hosts/:name/join-token', summary: 'a new join token for a host (replacing any other), good for ttlSeconds (3600 by default)', role: 'admin', body: joinTokenRequest, status: 201,
      handle: (p, b) => s.issueJoinToken(p.name, (b as z.infer<typeof joinTokenRequest>).ttlSeconds) },
    { method: 'post', path: '/v1/hosts/:name/revoke', summary: 'cut a host off: its agent is refused and its watch closed; no host takes its tunnel traffic', role: 'admin',
      handle: (p) => s.revokeHost(p.name) },
    { method: 'post', path: '/v1/hosts/:name/resync', summary: 'send a host\'s agent its full state now, instead of deltas (weft host resync)', role: 'admin',
      handle: async (p) => {
        await s.getHost(p.name);
        if (!opts.agents.resync?.(p.name)) throw new ApiError(409, 'Conflict', `the agent of host ${p.name} is not connected: it gets a full state when it connects`);
        return { host: p.name, sent: 'state' };
      } },
    { method: 'get', path: '/v1/hosts/:name', summary: 'show a host, with what its agent reports', role: 'admin',
      handle: async (p) => ({ ...(await s.getHost(p.name)), status: opts.agents.status(p.name) }) },
    { method: 'delete', path: '/v1/hosts/:name', summary: 'forget a host that has no ports', role: 'admin', status: 204, handle: async (p) => { await s.deleteHost(p.name); return null; } },
    { method: 'post', path: '/v1/agents/join', summary: 'an agent joins as its host: with the host\'s join token (enrolling its identity key), then signed with that key', role: 'agent', body: hostJoin,
      handle: (_p, b, auth) => s.agentJoin(auth, b as z.infer<typeof hostJoin>) },
    ...(opts.events ? [eventsRoute(opts.events)] : []),
    ...(opts.traces ? [{
      method: 'post', path: '/v1/traces', summary: 'follow a probe from a VM\'s port to an address through every stage of every host on its way (weft trace)', role: 'admin', body: traceRequest,
      handle: (_p, b) => opts.traces!.run(b as TraceRequest),
    } satisfies Route] : []),
    { method: 'post', path: '/v1/apply', summary: 'make networks, subnets and ports match a file, entirely or not at all (dryRun: plan only)', role: 'admin', body: applyRequest, bodyLimit: APPLY_BODY_LIMIT,
      handle: (_p, b) => opts.applier.apply(b as ApplyRequest) },
    { method: 'get', path: '/v1/export', summary: 'everything but hosts as an apply file (weft export): applying it changes nothing', role: 'admin',
      handle: () => opts.applier.export() },
    { method: 'get', path: '/healthz', summary: 'liveness, and the store revision', role: 'public', handle: async () => ({ ok: true, revision: await s.revision() }) },
  );

  const app = new Hono();
  // A full store is logged and raised as an event once, until a change is stored again.
  let storeFull = false;
  app.onError((err, c) => {
    if (err instanceof ApiError) return problem(c, err);
    if (err instanceof StoreFull) {
      if (!storeFull) {
        storeFull = true;
        opts.log?.error({ dataDir: err.dir }, 'the store cannot grow: its filesystem is full; changes other than deletes are refused (507) until there is room');
        opts.events?.add('store.full', `the store's filesystem (${err.dir}) is full: changes other than deletes are refused until there is room`);
      }
      return problem(c, new ApiError(507, 'Insufficient Storage', `the controller's store has no room: the filesystem of its data directory (${err.dir}) is full. Deleting resources still works; free space on that filesystem (or give it more), then try again`));
    }
    if (err instanceof StoreSyncFailed) {
      opts.log?.error({ err: err.message, method: c.req.method, path: c.req.path }, 'the store failed to sync');
      return problem(c, new ApiError(503, 'Service Unavailable', err.message));
    }
    opts.log?.error({ err, method: c.req.method, path: c.req.path }, 'request failed');
    return problem(c, new ApiError(500, 'Internal Server Error', 'the controller failed to handle this request; see its log'));
  });
  app.use('*', async (c, next) => {
    await next();
    if (storeFull && c.req.method !== 'GET' && c.req.method !== 'DELETE' && c.res.status < 300) {
      storeFull = false;
      opts.log?.info('the store has room again');
      opts.events?.add('store.writable', 'the store has room again: changes are stored');
    }
  });
  app.notFound((c) => problem(c, new ApiError(404, 'Not Found', `no route ${c.req.method} ${c.req.path}`)));

  app.get('/openapi.json', (c) => c.json(openapi(routes)));
  if (opts.console) serveConsole(app, opts.console);

  const metrics = opts.metrics;
  if (metrics) {
    app.use('*', async (c, next) => {
      const started = performance.now();
      await next();
      // The route's pattern (bounded), never the path a client sent.
      const route = c.req.matchedRoutes.filter((m) => m.method !== 'ALL').at(-1)?.path ?? 'unmatched';
      metrics.requests.observe({ method: c.req.method, route, status: String(c.res.status) }, (performance.now() - started) / 1000);
    });
    app.get('/metrics', async (c) => {
      // Text, not JSON: outside the route table, with the same admin check.
      if (!sameToken(bearer(c.req.header('authorization')), opts.adminToken)) throw new ApiError(401, 'Unauthorized', 'send the admin token: Authorization: Bearer TOKEN');
      return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
    });
  }

  for (const r of routes) {
    const limit = r.bodyLimit ?? BODY_LIMIT;
    const limited = bodyLimit({
      maxSize: limit,
      // Answered at once, and the connection closed after it (the rest of the body is not
      // read as a next request), which the answer says. The close lingers: what the client
      // is still sending is read and dropped (never held) for a while, so that an ordinary
      // client, still writing, reads this answer rather than a reset.
      onError: (c) => {
        const res = problem(c, new ApiError(413, 'Content Too Large', `the request body is larger than ${limit} bytes, the most this route takes`, [{ field: '(body)', message: 'too large' }]));
        res.headers.set('connection', 'close');
        const socket = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
        if (socket) lingerOnClose(socket);
        return res;
      },
    });
    app[r.method](r.path, limited, async (c) => {
      let auth: AgentAuth = { kind: 'admin' };
      if (r.role !== 'public') {
        const header = c.req.header('authorization');
        const token = bearer(header);
        const signed = parseAgentAuth(header);
        if (sameToken(token, opts.adminToken)) auth = { kind: 'admin' };
        else if (r.role === 'agent' && signed) {
          // The signature covers the body's bytes as they came (read once; parsed below).
          const url = new URL(c.req.url);
          auth = { kind: 'signed', signed, request: { method: c.req.method, target: url.pathname + url.search, body: new Uint8Array(await c.req.arrayBuffer()) } };
        } else if (r.role === 'agent' && token) auth = { kind: 'token', token };
        else if (r.role === 'agent' && looksLikeAgentAuth(header)) throw new ApiError(401, 'Unauthorized', 'the WeftHost signature is not HOST:MILLISECONDS:NONCE:SIGNATURE (an agent older than this controller signs without a nonce: upgrade it)');
        else throw new ApiError(401, 'Unauthorized', token || signed ? 'the token is not valid for this request' : 'send a token: Authorization: Bearer TOKEN');
      }
      const params = c.req.param() as Record<string, string>;
      // A path names what exists: also a name stored before names were lower case, so that
      // it can be read and deleted.
      if (params.name !== undefined && !LEGACY_NAME_PATTERN.test(params.name)) {
        const why = nameSchema.safeParse(params.name);
        throw new ApiError(400, 'Bad Request', `${quoted(params.name)} is not a valid name: ${why.success ? 'invalid' : why.error.issues[0].message}`, [{ field: 'name', message: 'invalid' }]);
      }
      let body: unknown;
      if (r.body) {
        const type = c.req.header('content-type') ?? '';
        if (!/^application\/json\s*(;|$)/i.test(type)) {
          throw new ApiError(415, 'Unsupported Media Type', `send the body as JSON, with Content-Type: application/json${type ? ` (not ${JSON.stringify(type.slice(0, 60))})` : ''}`, [{ field: '(body)', message: 'not application/json' }]);
        }
        let raw: unknown;
        try {
          raw = await c.req.json();
        } catch {
          throw new ApiError(400, 'Bad Request', 'the request body is not JSON', [{ field: '(body)', message: 'not JSON' }]);
        }
        const parsed = r.body.safeParse(raw);
        if (!parsed.success) {
          const errors = issueFields(parsed.error, '(body)');
          throw new ApiError(400, 'Bad Request', errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);
        }
        body = parsed.data;
      }
      // A list that comes from the store alone is as the store's revision says: a client
      // that has it (If-None-Match) is told so without the list being read or sent again.
      const tag = r.revisioned ? `"r${await s.revision()}"` : null;
      if (tag !== null && c.req.header('if-none-match') === tag) return c.body(null, 304, { etag: tag });
      const result = await r.handle(params, body, auth, c.req.query());
      if (r.status === 204) return c.body(null, 204);
      return c.json(result as object, r.status ?? 200, tag !== null ? { etag: tag } : {});
    });
  }
  return app;
}

/** How long a closed connection's client may go on sending before it is cut off. */
const LINGER_MS = 2000;

/**
 * Makes the server's close of `socket` a lingering one (as Apache's and nginx's): the answer
 * and a FIN go out, and what still arrives is read and dropped until the client stops, or
 * for LINGER_MS at most; closing at once would make the kernel answer that data with a
 * reset, which takes the unread answer away from the client.
 */
function lingerOnClose(socket: Socket): void {
  let lingering = false;
  socket.destroySoon = function destroySoon(this: Socket) {
    if (lingering) return;
    lingering = true;
    if (this.writable) this.end();
    const close = () => {
      clearTimeout(timer);
      this.destroy();
    };
    const timer = setTimeout(close, LINGER_MS);
    timer.unref();
    this.once('end', close);
    this.resume();
  };
}

/** GET /v1/events?since=ID: what happened after event ID (all that is kept, for 0). */
function eventsRoute(events: EventLog): Route {
  return {
    method: 'get', path: '/v1/events', summary: 'what happened lately (since=ID: after that event)', role: 'admin',
    handle: async (_p, _b, _a, query) => {
      const since = Number(query.since ?? '0');
      if (!Number.isInteger(since) || since < 0) throw new ApiError(400, 'Bad Request', 'since: the id of the last event seen, a whole number', [{ field: 'since', message: 'not a whole number' }]);
      return events.since(since);
    },
  };
}

function openapi(routes: Route[]): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][r.method] = {
      summary: r.summary,
      ...(r.role === 'public' ? { security: [] } : {}),
      ...(path.includes('{name}') ? { parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }] } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(r.body, { io: 'input', unrepresentable: 'any' }) } } } } : {}),
      responses: {
        [String(r.status ?? 200)]: { description: r.status === 204 ? 'done' : 'the resource(s)' },
        default: { description: 'a problem (RFC 9457)', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Weft controller API', version: '1' },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Problem: {
          type: 'object',
          properties: {
            type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, detail: { type: 'string' },
            errors: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
      },
    },
    paths,
  };
}
