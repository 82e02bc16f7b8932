/**
 * The controller's metrics in the Prometheus exposition format (prom-client): API request
 * latencies by route (the route's pattern, not the path: bounded), store commits and their
 * latency, the store's revision, the agents' watch connections, and connections refused
 * for their client holding its share (listener.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from './store/store.js';
import type { WatchCounters } from './watch.js';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly requests: Histogram<'method' | 'route' | 'status'>;
  private readonly commits: Histogram<'outcome'>;

  constructor(sources: { revision(): number; watches(): number; refusedConnections?(): number; watch?(): WatchCounters }) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'weft_controller_' });
    this.requests = new Histogram({
      name: 'weft_controller_http_request_duration_seconds', help: 'API requests, by method, route pattern and status, and how long they took.',
      labelNames: ['method', 'route', 'status'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [r],
    });
    this.commits = new Histogram({
      name: 'weft_controller_store_commit_duration_seconds', help: 'Store commits, by outcome (ok, or refused by a condition), and how long they took.',
      labelNames: ['outcome'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5], registers: [r],
    });
    new Gauge({ name: 'weft_controller_store_revision', help: 'The store\'s revision.', registers: [r], collect() { this.set(sources.revision()); } });
    new Gauge({ name: 'weft_controller_watches', help: 'Agents watching (one connection per host).', registers: [r], collect() { this.set(sources.watches()); } });
    let refused = 0;
    new Counter({
      name: 'weft_controller_connections_refused_total', help: 'Connections closed as accepted: their client held as many as one client may.', registers: [r],
      collect() {
        const now = sources.refusedConnections?.() ?? 0;
        this.inc(now - refused);
        refused = now;
      },
    });
    // The watch's counters, read when scraped.
    const watchCounter = (name: string, help: string, value: (c: WatchCounters) => number) => {
      let seen = 0;
      new Counter({
        name, help, registers: [r],
        collect() {
          const now = sources.watch ? value(sources.watch()) : 0;
          this.inc(now - seen);
          seen = now;
        },
      });
    };
    watchCounter('weft_controller_watch_slow_disconnects_total', 'Watch clients disconnected for not reading: more bytes queued for them than the bound.', (c) => c.slowDisconnects);
    watchCounter('weft_controller_watch_full_states_total', 'Full views sent on watches.', (c) => c.fullStates);
    watchCounter('weft_controller_watch_deltas_total', 'View deltas sent on watches.', (c) => c.deltas);
    watchCounter('weft_controller_watch_resync_requests_total', 'Full states agents asked for (a delta that did not apply, or their periodic check).', (c) => c.resyncRequests);
    watchCounter('weft_controller_watch_sent_bytes_total', 'Bytes of views and deltas sent on watches.', (c) => c.bytesSent);
    new Gauge({ name: 'weft_controller_build_info', help: 'Always 1; labels say what runs.', labelNames: ['node'], registers: [r] }).set({ node: process.version }, 1);
  }

  /** `store` with each commit timed. */
  timed(store: Store): Store {
    const commits = this.commits;
    return new Proxy(store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'commit' || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v;
        return async (...args: unknown[]) => {
          const end = commits.startTimer();
          try {
            const result = await (v as (...a: unknown[]) => Promise<{ ok: boolean }>).apply(target, args);
            end({ outcome: result.ok ? 'ok' : 'refused' });
            return result;
          } catch (err) {
            end({ outcome: 'error' });
            throw err;
          }
        };
      },
    });
  }
}
