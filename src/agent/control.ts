/**
 * The agent's local control API, served on a unix socket (only root can reach it):
 *
 *   GET /v1/stats                                  counters of every port, tunnel, network
 *   GET /metrics                                   the same, for Prometheus (also on
 *                                                  --metrics-listen HOST:PORT, metrics only)
 *   GET /v1/capture?port=NAME[&count=N][&filter=EXPR]   a pcapng stream of a port's frames
 *   GET /v1/capture?tunnel=ADDR|all&layer=inner|outer[&count=N][&filter=EXPR]
 *                                                  (EXPR: capture-filter.ts)
 *
 * `weft stats` and `weft capture` are its clients.
 */
import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Datapath } from '../datapath/datapath.js';
import { formatIpv4, parseIpv4 } from '../wire/bytes.js';
import { PcapTap, type CaptureLayer } from './capture.js';
import { compileFilter, FilterError, type FramePredicate } from './capture-filter.js';
import type { AgentMetrics } from './metrics.js';

export interface ControlContext {
  host: string;
  datapath: Datapath;
  pendingPorts(): Record<string, string>;
  startedAt: number;
  metrics: AgentMetrics;
  /** The controller watch's counters (full states, deltas, refusals, resyncs), if it follows one. */
  watch?(): unknown;
}

/** Records a slow reader may leave unread before new ones are dropped. */
const CAPTURE_QUEUE = 4096;

export function controlApp(ctx: ControlContext): Hono {
  const app = new Hono();
  const busy = new Set<string>();

  app.onError((err, c) => {
    if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
    return c.json({ error: err.message }, 500);
  });

  app.get('/v1/stats', (c) =>
    c.json({
      host: ctx.host,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      pendingPorts: ctx.pendingPorts(),
      ...(ctx.watch?.() ? { watch: ctx.watch() } : {}),
      ...ctx.datapath.stats(formatIpv4),
    }),
  );

  app.get('/metrics', async (c) => c.body(await ctx.metrics.text(), 200, { 'content-type': ctx.metrics.contentType }));

  app.get('/v1/capture', (c) => {
    const port = c.req.query('port');
    const tunnel = c.req.query('tunnel');
    const layer = (c.req.query('layer') ?? 'inner') as CaptureLayer;
    const count = Number(c.req.query('count') ?? '0');
    let filter: FramePredicate | null = null;
    try {
      filter = c.req.query('filter') ? compileFilter(c.req.query('filter')!) : null;
    } catch (err) {
      if (err instanceof FilterError) throw new HTTPException(400, { message: err.message });
      throw err;
    }
    if ((port === undefined) === (tunnel === undefined)) throw new HTTPException(400, { message: 'give either port=NAME or tunnel=ADDRESS|all' });
    if (layer !== 'inner' && layer !== 'outer') throw new HTTPException(400, { message: 'layer must be inner or outer' });
    if (!Number.isInteger(count) || count < 0) throw new HTTPException(400, { message: 'count must be a whole number' });
    const key = port !== undefined ? `port ${port}` : 'tunnels';
    if (busy.has(key)) throw new HTTPException(409, { message: `a capture of ${key} is running already` });
    let address: number | null = null;
    if (tunnel !== undefined && tunnel !== 'all') {
      try {
        address = parseIpv4(tunnel);
      } catch {
        throw new HTTPException(400, { message: `tunnel: ${tunnel} is not an IPv4 address or "all"` });
      }
    }
    if (port !== undefined && !ctx.datapath.hasPort(port)) throw new HTTPException(404, { message: `no port ${port} on host ${ctx.host}` });

    const networks = new Map(ctx.datapath.stats(formatIpv4).networks.map((n) => [n.vni, n.name]));
    let tap: PcapTap;
    const detach = () => {
      busy.delete(key);
      if (port !== undefined) {
        if (ctx.datapath.hasPort(port)) ctx.datapath.setPortTap(port, null);
      } else {
        ctx.datapath.setTunnelTap(address, null);
      }
    };
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        tap = new PcapTap({
          write: (rec, always) => {
            if (!always && (controller.desiredSize ?? 0) <= 0) return false;
            controller.enqueue(rec);
            return true;
          },
          end: () => controller.close(),
        }, { what: port !== undefined ? { port } : { tunnels: tunnel! }, layer, limit: count, filter, networkOf: (vni) => networks.get(vni) }, detach);
      },
      cancel() {
        tap.stop();
      },
    }, { highWaterMark: CAPTURE_QUEUE });
    busy.add(key);
    if (port !== undefined) ctx.datapath.setPortTap(port, tap!);
    else if (ctx.datapath.setTunnelTap(address, tap!) === 0) {
      tap!.stop();
      throw new HTTPException(404, { message: `no tunnel to ${tunnel} on host ${ctx.host}` });
    }
    return new Response(stream, { headers: { 'content-type': 'application/x-pcapng' } });
  });

  return app;
}

/** Serves the control API on `socketPath` (mode 0600). Resolves once listening. */
export async function serveControl(ctx: ControlContext, socketPath: string): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true });
  rmSync(socketPath, { force: true });
  const server = createAdaptorServer({ fetch: controlApp(ctx).fetch }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}

/** Serves only /metrics on a TCP address, for a Prometheus server to scrape. */
export async function serveMetrics(metrics: AgentMetrics, host: string, port: number): Promise<Server> {
  const app = new Hono();
  app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'content-type': metrics.contentType }));
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
