/**
 * npm run bench:trace: what the data path's check for a trace's probe costs per frame when
 * no trace runs, measured in one process without the lab's noise: two data paths, one
 * built with tracing (the default) and one without (the check never made), each switching
 * 64-byte frames between two in-memory ports on one host, in turn, five rounds each; and
 * the same with a trace armed for another flow (every frame's header then looked at).
 */
import { parseIpv4, parseMac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { Datapath } from '../src/datapath/datapath.js';
import { TableBuilder } from '../src/datapath/tables.js';
import { MemoryFabric } from '../src/datapath/memory.js';

const FRAMES = 2_000_000;
const BURST = 64;

function setup(tracing: boolean, armed: boolean) {
  const fabric = new MemoryFabric();
  const dp = new Datapath({ tracing });
  dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
  const a = fabric.port('a');
  const b = fabric.port('b');
  dp.addPort({ name: 'a', backend: a, mode: 'access', network: 'blue' });
  dp.addPort({ name: 'b', backend: b, mode: 'access', network: 'blue' });
  dp.setTables('blue', new TableBuilder().pinLocal(parseMac('02:00:00:00:00:01'), 'a').pinLocal(parseMac('02:00:00:00:00:02'), 'b').build());
  dp.startPort('a', () => 0);
  dp.startPort('b', () => 0);
  if (armed) dp.armTrace({ id: '00000001', src: parseIpv4('10.9.9.9'), dst: parseIpv4('10.9.9.8'), protocol: 1 }, 5000);
  const frame = compose.ethernet(parseMac('02:00:00:00:00:02'), parseMac('02:00:00:00:00:01'), EtherType.Ipv4, compose.udpV4(parseIpv4('10.0.0.1'), parseIpv4('10.0.0.2'), 1000, 2000, new Uint8Array(18)));
  return { fabric, a, b, frame };
}

function round(tracing: boolean, armed: boolean): number {
  const { fabric, a, b, frame } = setup(tracing, armed);
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < FRAMES; sent += BURST) {
    for (let i = 0; i < BURST; i++) a.send(frame);
    fabric.run();
    b.received.length = 0;
  }
  return Number(process.hrtime.bigint() - t0) / FRAMES;
}

const results: Record<string, number[]> = { 'tracing compiled in, no trace': [], 'never checked': [], 'a trace armed for another flow': [] };
round(true, false); // warm up
for (let r = 0; r < 5; r++) {
  results['tracing compiled in, no trace'].push(round(true, false));
  results['never checked'].push(round(false, false));
  results['a trace armed for another flow'].push(round(true, true));
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
for (const [what, ns] of Object.entries(results)) console.log(`${what.padEnd(32)} median ${median(ns).toFixed(0)} ns a frame (${ns.map((n) => n.toFixed(0)).join(', ')})`);
const base = median(results['never checked']);
console.log(`cost of the check: ${(median(results['tracing compiled in, no trace']) - base).toFixed(1)} ns a frame with no trace; ${(median(results['a trace armed for another flow']) - base).toFixed(1)} ns while one is armed (of ${base.toFixed(0)} ns through the in-memory data path)`);
