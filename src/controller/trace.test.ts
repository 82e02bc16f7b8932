/**
 * The controller's side of `weft trace`, with the agents played by a carrier in memory:
 * the probe it plans (the VM's addresses, the destination's MAC or the router's, the
 * marker), the hosts' steps put in time order with a verdict, and the bounds (one trace at
 * a time, at most 60 a minute, only from a port whose agent is connected).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMac, readU32 } from '../wire/bytes.js';
import { ROUTER_MAC } from '../datapath/router-mac.js';
import type { TraceStep } from '../datapath/trace.js';
import type { TraceOrder } from '../view/host-view.js';
import type { ModelCache } from './model-cache.js';
import type { Port } from './model.js';
import { ApiError } from './service.js';
import { traceRequest, Traces, type TraceCarrier } from './trace.js';

const port = (name: string, host: string, mac: string, ip: string): Port => ({ name, host, network: 'blue', mac, ips: [ip], backend: { type: 'memory' } });
const model = { ports: new Map([['vm1', port('vm1', 'h1', '02:00:00:00:00:01', '10.0.0.1')], ['vm2', port('vm2', 'h2', '02:00:00:00:00:02', '10.0.0.2')]]) } as unknown as ModelCache;

/** Agents in memory: each answers with `steps(host)`, once `release` is called. */
function carrier(steps: (host: string, order: TraceOrder) => TraceStep[]) {
  const orders: Array<Map<string, TraceOrder>> = [];
  let release = () => {};
  const c: TraceCarrier = {
    connectedHosts: () => ['h1', 'h2'],
    collect: (o) => {
      orders.push(o);
      return new Promise((resolve) => {
        release = () => resolve(new Map([...o].map(([h, order]) => [h, steps(h, order)])));
      });
    },
  };
  return { c, orders, release: () => release() };
}

const req = (body: unknown) => traceRequest.parse(body);

test('the probe is the VM\'s own packet to the destination\'s MAC, and the path is put in time order', async () => {
  const { c, orders, release } = carrier((host) => host === 'h1'
    ? [{ at: 1000, stage: 'port vm1', verdict: 'pass', detail: 'received' }, { at: 1000.2, stage: 'encapsulate', verdict: 'send', detail: 'VXLAN' }]
    : [{ at: 1000.5, stage: 'deliver', verdict: 'deliver', detail: 'to port vm2 on network blue', port: 'vm2' }]);
  const traces = new Traces(model, c);
  const running = traces.run(req({ from: 'vm1', to: '10.0.0.2' }));
  await new Promise((r) => setImmediate(r));
  const [order] = orders;
  assert.deepEqual([...order.keys()], ['h1', 'h2'], 'every connected host follows it');
  assert.equal(order.get('h2')!.inject, undefined, 'only the source port\'s host injects');
  const frame = Buffer.from(order.get('h1')!.inject!.frame, 'base64');
  assert.equal(formatMac(frame.readUIntBE(0, 6)), '02:00:00:00:00:02', 'to vm2\'s MAC');
  assert.equal(formatMac(frame.readUIntBE(6, 6)), '02:00:00:00:00:01', 'from vm1\'s');
  assert.equal(readU32(frame, 26), 0x0a000001);
  assert.ok(frame.includes(Buffer.from(`weft-trace:${order.get('h1')!.id}`)), 'marked');
  release();
  const r = await running;
  assert.deepEqual(r.steps.map((s) => [s.host, s.stage, s.ms]), [['h1', 'port vm1', 0], ['h1', 'encapsulate', 0.2], ['h2', 'deliver', 0.5]]);
  assert.equal(r.verdict, 'delivered to vm2 on h2');
  assert.equal(r.delivered, true);
});

test('beyond the network it goes to the router; a drop is the verdict', async () => {
  const { c, orders, release } = carrier((host) => (host === 'h1' ? [{ at: 1, stage: 'route', verdict: 'drop', detail: 'no-route: nowhere' }] : []));
  const running = new Traces(model, c).run(req({ from: 'vm1', to: '192.0.2.9', protocol: 'udp' }));
  await new Promise((r) => setImmediate(r));
  const frame = Buffer.from(orders[0].get('h1')!.inject!.frame, 'base64');
  assert.equal(frame.readUIntBE(0, 6), ROUTER_MAC);
  release();
  assert.equal((await running).verdict, 'dropped on h1: route, no-route: nowhere');
});

test('one trace at a time, 60 a minute, from a port that exists on a connected host', async () => {
  const { c, release } = carrier(() => []);
  const traces = new Traces(model, c);
  const first = traces.run(req({ from: 'vm1', to: '10.0.0.2' }));
  await assert.rejects(traces.run(req({ from: 'vm1', to: '10.0.0.2' })), (e: ApiError) => e.status === 409 && /one at a time/.test(e.message));
  release();
  await first;
  for (let i = 1; i < 60; i++) {
    const t = traces.run(req({ from: 'vm1', to: '10.0.0.2' }));
    await new Promise((r) => setImmediate(r));
    release();
    await t;
  }
  await assert.rejects(traces.run(req({ from: 'vm1', to: '10.0.0.2' })), (e: ApiError) => e.status === 429);
  await assert.rejects(new Traces(model, c).run(req({ from: 'nosuch', to: '10.0.0.2' })), (e: ApiError) => e.status === 404);
  const h2Down: TraceCarrier = { connectedHosts: () => ['h1'], collect: async () => new Map() };
  await assert.rejects(new Traces(model, h2Down).run(req({ from: 'vm2', to: '10.0.0.1' })), (e: ApiError) => e.status === 409 && /h2/.test(e.message));
});
