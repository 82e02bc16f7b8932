/**
 * The tracer in the data path, on two hosts in memory: a marked probe is followed through
 * both hosts' stages; anything else (another id, another flow, no trace armed, a trace
 * disarmed or expired) records nothing; what a trace may record is bounded; and following
 * changes nothing the data path decides.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseIpv4, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { Datapath } from './datapath.js';
import { TableBuilder } from './tables.js';
import { MemoryFabric } from './memory.js';
import { MARKER, MAX_STEPS, Tracer } from './trace.js';

const H1 = parseIpv4('192.0.2.1');
const H2 = parseIpv4('192.0.2.2');
const mac = (n: number) => parseMac(`02:00:00:00:00:0${n}`);
const ip = (n: number) => parseIpv4(`10.0.0.${n}`);
const probe = (id: string, to = 2, size = 0) =>
  compose.ethernet(mac(to), mac(1), EtherType.Ipv4, compose.icmpEchoV4(ip(1), ip(to), 7, 1, new Uint8Array([...new TextEncoder().encode(`${MARKER}${id}`), ...new Uint8Array(size)])));

function lab() {
  const fabric = new MemoryFabric();
  const clock = () => 1000;
  const dps = [H1, H2].map((address) => {
    const dp = new Datapath();
    dp.attachUnderlay(fabric.underlay(address, 4789), address, 4789, 'vxlan');
    dp.startUnderlay(clock);
    dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
    const tables = new TableBuilder().members([{ address: address === H1 ? H2 : H1, port: 4789 }]);
    if (address === H2) tables.pinLocal(mac(2), 'vm2');
    dp.setTables('blue', tables.build());
    return dp;
  });
  const ports = [0, 1].map((h) => {
    const backend = fabric.port(`vm${h + 1}`);
    dps[h].addPort({ name: `vm${h + 1}`, backend, mode: 'access', network: 'blue' });
    dps[h].startPort(`vm${h + 1}`, clock);
    return backend;
  });
  return { fabric, dps, ports };
}

const match = (id: string) => ({ id, src: ip(1), dst: ip(2), protocol: 1 });

test('a probe is followed through both hosts, and delivered as any frame would be', () => {
  const { fabric, dps, ports } = lab();
  for (const dp of dps) dp.armTrace(match('0000beef'), 1000);
  ports[0].send(probe('0000beef'));
  fabric.run();
  const h1 = dps[0].traceSteps('0000beef');
  const h2 = dps[1].traceSteps('0000beef');
  assert.deepEqual(h1.map((s) => s.stage), ['port vm1', 'switch', 'encapsulate']);
  assert.match(h1[1].detail, /02:00:00:00:00:02 unknown here: flooded/);
  assert.match(h1[2].detail, /VXLAN VNI 100, 192\.0\.2\.1:4789 -> 192\.0\.2\.2:4789/);
  assert.deepEqual(h2.map((s) => [s.stage, s.verdict]), [['tunnel from 192.0.2.1', 'pass'], ['decapsulate', 'pass'], ['switch', 'pass'], ['deliver', 'deliver']]);
  assert.equal(ports[1].take().length, 1, 'the probe reached vm2 like any frame');
  assert.deepEqual(dps[1].traceSteps('0000beef'), [], 'taken once');
});

test('only the armed trace\'s probe is followed; a drop says its reason', () => {
  const { fabric, dps, ports } = lab();
  dps[0].armTrace(match('0000beef'), 1000);
  ports[0].send(probe('0000dead')); // another id
  ports[0].send(compose.ethernet(mac(2), mac(1), EtherType.Ipv4, compose.icmpEchoV4(ip(1), ip(2), 7, 1, new Uint8Array(40)))); // no marker
  ports[0].send(probe('0000beef', 3)); // another destination
  fabric.run();
  assert.deepEqual(dps[0].traceSteps('0000beef'), []);
  dps[0].armTrace(match('0000beef'), 1000);
  ports[0].send(probe('0000beef', 2, 1420)); // over the MTU
  fabric.run();
  const steps = dps[0].traceSteps('0000beef');
  assert.equal(steps.at(-1)!.verdict, 'drop');
  assert.match(steps.at(-1)!.detail, /^mtu-exceeded: 1\d+ bytes, network blue's MTU is 1450$/);
  assert.equal(dps[0].portCounters('vm1').drops('mtu-exceeded'), 1, 'counted as ever');
  // Disarmed: nothing more is recorded.
  ports[0].send(probe('0000beef'));
  fabric.run();
  assert.deepEqual(dps[0].traceSteps('0000beef'), []);
});

test('a probe whose IP header says more than arrived stops where it is first parsed', () => {
  const { fabric, dps, ports } = lab();
  dps[0].armTrace(match('0000beef'), 1000);
  const cut = probe('0000beef');
  cut[14 + 3] += 20; // the total length: 20 bytes more than the frame carries
  ports[0].send(cut);
  fabric.run();
  const last = dps[0].traceSteps('0000beef').at(-1)!;
  assert.deepEqual([last.stage, last.verdict, last.detail], ['parse', 'drop', 'malformed: a header is cut, or says more than the frame carries']);
  assert.equal(dps[0].portCounters('vm1').drops('malformed'), 1);
});

test('a trace expires, and records at most MAX_STEPS steps', () => {
  let now = 0;
  const t = new Tracer(() => now);
  const frame = probe('0000beef');
  t.arm(match('0000beef'), 60_000);
  assert.equal(t.enter(frame, 0, frame.length, 'port'), true);
  for (let i = 0; i < 200; i++) t.step('switch', 'pass', 'again');
  t.leave();
  assert.equal(t.disarm('0000beef').length, MAX_STEPS);
  t.arm(match('0000beef'), 60_000); // capped at 5 s
  now = 5001;
  assert.equal(t.enter(frame, 0, frame.length, 'port'), false);
  assert.equal(t.armed, false);
});
