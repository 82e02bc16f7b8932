/**
 * A data path under generated input, and the rules every outcome must obey. Shared by the
 * bounded fuzz test in `npm test` (src/datapath/fuzz.test.ts) and `npm run bench:fuzz`,
 * which runs millions of cases.
 *
 * The host under test has two networks, blue (VXLAN, VNI 100) and red (Geneve, VNI 200),
 * an access port on each (blue1, red1), a trunk carrying both (t1: VLAN 10 blue, 20 red,
 * no native network), and one remote host H2 that shares both networks; blue1's MAC is
 * pinned to it, as the controller would. What H2 receives is kept, not run.
 *
 * The rules, for every single input:
 * - no exception;
 * - it is forwarded (at least one frame or datagram leaves) or it is dropped under exactly
 *   one reason, never both and never neither;
 * - nothing leaves where its network, VLAN and MTU exclude it: a port gets only its own
 *   network's frames (a trunk tagged with that network's VLAN ID), no larger than the
 *   network's MTU allows; the underlay gets only frames that came from a port, each in its
 *   network's encapsulation, VNI and UDP port.
 */
import fc from 'fast-check';
import { Datapath } from '../../src/datapath/datapath.js';
import { MemoryFabric, type MemoryPort, type MemoryUnderlay } from '../../src/datapath/memory.js';
import { parseIpv4, parseMac, readU16, readU24 } from '../../src/wire/bytes.js';
import * as compose from '../../src/wire/compose.js';
import type { VlanSpec } from '../../src/wire/compose.js';
import { EtherType } from '../../src/wire/ethernet.js';
import { GENEVE_PORT, VXLAN_PORT } from '../../src/wire/udp.js';

export const H1 = parseIpv4('192.0.2.1');
export const H2 = parseIpv4('192.0.2.2');
export const H3 = parseIpv4('192.0.2.3');
const MTU = 1450;
const mac = (n: number) => parseMac(`02:00:00:00:00:${n.toString(16).padStart(2, '0')}`);

type PortName = 'blue1' | 'red1' | 't1';
type Net = 'blue' | 'red';

export type Input =
  | { kind: 'port'; port: PortName; frame: Uint8Array }
  | { kind: 'datagram'; socket: 'vxlan' | 'geneve'; from: number; data: Uint8Array };

interface Output {
  where: PortName | 'vxlan' | 'geneve';
  bytes: Uint8Array;
}

export class FuzzHost {
  private readonly fabric = new MemoryFabric();
  private readonly dp = new Datapath();
  private readonly ports: Record<PortName, MemoryPort>;
  private readonly own: Record<'vxlan' | 'geneve', MemoryUnderlay>;
  private readonly remote: Record<'vxlan' | 'geneve', MemoryUnderlay>;

  constructor() {
    const { fabric, dp } = this;
    this.own = { vxlan: fabric.underlay(H1, VXLAN_PORT), geneve: fabric.underlay(H1, GENEVE_PORT) };
    // H2's sockets only collect what is sent to them.
    this.remote = { vxlan: fabric.underlay(H2, VXLAN_PORT), geneve: fabric.underlay(H2, GENEVE_PORT) };
    dp.attachUnderlay(this.own.vxlan, H1, VXLAN_PORT, 'vxlan');
    dp.attachUnderlay(this.own.geneve, H1, GENEVE_PORT, 'geneve');
    dp.startUnderlay(() => 0);
    dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
    dp.addNetwork({ name: 'red', vni: 200, encapsulation: 'geneve' });
    dp.addRemote('blue', H2, VXLAN_PORT);
    dp.addRemote('red', H2, GENEVE_PORT);
    this.ports = { blue1: fabric.port('blue1'), red1: fabric.port('red1'), t1: fabric.port('t1') };
    dp.addPort({ name: 'blue1', backend: this.ports.blue1, mode: 'access', network: 'blue' });
    dp.addPort({ name: 'red1', backend: this.ports.red1, mode: 'access', network: 'red' });
    dp.addPort({ name: 't1', backend: this.ports.t1, mode: 'trunk', vlans: { 10: 'blue', 20: 'red' } });
    for (const p of ['blue1', 'red1', 't1']) dp.startPort(p, () => 0);
    dp.setLocalMacs('blue', new Map([[mac(1), 'blue1']]));
  }

  private drops(): number {
    const s = this.dp.stats(String);
    let n = 0;
    for (const c of [...s.ports, ...s.tunnels, ...s.underlays]) for (const v of Object.values(c.drops)) n += v ?? 0;
    return n;
  }

  /** Feeds one input; returns the rules it broke (none, if all is well). */
  check(input: Input): string[] {
    const before = this.drops();
    if (input.kind === 'port') this.ports[input.port].send(input.frame);
    else this.own[input.socket].inject(input.data, input.from, 40000);
    this.fabric.run(100, 1000);
    const dropped = this.drops() - before;
    const outputs: Output[] = [];
    for (const p of ['blue1', 'red1', 't1'] as const) for (const bytes of this.ports[p].take()) outputs.push({ where: p, bytes });
    for (const s of ['vxlan', 'geneve'] as const) {
      for (const d of this.remote[s].inbox.splice(0)) outputs.push({ where: s, bytes: d.data });
    }
    return violations(input, dropped, outputs);
  }
}

/** The network an input belongs to, if it is to be forwarded at all. */
function networkOf(input: Input): Net | null {
  if (input.kind === 'port') {
    if (input.port === 'blue1') return 'blue';
    if (input.port === 'red1') return 'red';
    const f = input.frame;
    if (f.length < 18 || readU16(f, 12) !== EtherType.Vlan) return null;
    const vid = readU16(f, 14) & 0x0fff;
    return vid === 10 ? 'blue' : vid === 20 ? 'red' : null;
  }
  if (input.data.length < 8) return null;
  const vni = readU24(input.data, 4);
  if (input.socket === 'vxlan' && vni === 100) return 'blue';
  if (input.socket === 'geneve' && vni === 200) return 'red';
  return null;
}

function violations(input: Input, dropped: number, outputs: Output[]): string[] {
  const problems: string[] = [];
  if (dropped > 1) problems.push(`counted under ${dropped} reasons`);
  if (dropped === 1 && outputs.length > 0) problems.push(`counted as dropped, yet ${outputs.length} copies left`);
  if (dropped === 0 && outputs.length === 0) problems.push('neither forwarded nor counted');
  const net = networkOf(input);
  for (const o of outputs) {
    if (net === null) {
      problems.push(`an input of no network left on ${o.where}`);
      continue;
    }
    if (o.where === 'blue1' || o.where === 'red1') {
      if (o.where !== `${net}1`) problems.push(`a ${net} frame left on ${o.where}`);
      if (o.bytes.length - 14 > MTU) problems.push(`a ${o.bytes.length}-byte frame left on ${o.where}`);
      if (o.bytes.length >= 14 && (readU16(o.bytes, 12) === EtherType.Vlan || readU16(o.bytes, 12) === EtherType.QinQ)) problems.push(`a tagged frame left on access port ${o.where}`);
    } else if (o.where === 't1') {
      const vid = o.bytes.length >= 18 && readU16(o.bytes, 12) === EtherType.Vlan ? readU16(o.bytes, 14) & 0x0fff : -1;
      if (vid !== (net === 'blue' ? 10 : 20)) problems.push(`a ${net} frame left on the trunk with VLAN ${vid}`);
      if (o.bytes.length - 18 > MTU) problems.push(`a ${o.bytes.length}-byte frame left on the trunk`);
    } else {
      if (input.kind === 'datagram') problems.push('a datagram from the underlay went back to the underlay');
      const want = net === 'blue' ? 'vxlan' : 'geneve';
      if (o.where !== want) problems.push(`a ${net} frame left on the ${o.where} socket`);
      if (o.bytes.length < 8 || readU24(o.bytes, 4) !== (net === 'blue' ? 100 : 200)) problems.push(`a ${net} frame left with the wrong VNI`);
      if (o.bytes.length - 8 - 14 > MTU) problems.push(`a ${o.bytes.length}-byte datagram left`);
    }
  }
  return problems;
}

// ---- generated inputs ------------------------------------------------------------------

const dst = fc.oneof(
  fc.constantFrom(0xffffffffffff, mac(1), mac(2), mac(3), mac(4), 0x01005e000001, 0),
  fc.integer({ min: 0, max: 2 ** 48 - 1 }),
);
const src = fc.oneof(
  fc.constantFrom(mac(1), mac(2), mac(3), mac(4), mac(5), 0, 0x010000000001, 0xffffffffffff),
  fc.integer({ min: 0, max: 2 ** 48 - 1 }),
);
const payloadLength = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 120 }) }, { weight: 2, arbitrary: fc.integer({ min: 1400, max: 1540 }) });
const tags = fc.oneof(
  { weight: 4, arbitrary: fc.constant([]) },
  { weight: 3, arbitrary: fc.constantFrom(10, 20, 30, 0, 4095).map((vid) => [{ vid }]) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(10, 20), fc.constantFrom(10, 20)).map(([a, b]) => [{ vid: a, tpid: EtherType.QinQ }, { vid: b }]) },
);

/** An Ethernet frame: well-formed headers with hostile values, or raw bytes. */
export const frame: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ dst, src, tags, type: fc.constantFrom(EtherType.Ipv4, EtherType.Arp, EtherType.Ipv6, 0x88b5, EtherType.Vlan), len: payloadLength }).map(({ dst: d, src: s, tags: t, type, len }) => compose.ethernet(d, s, type, new Uint8Array(len), t as VlanSpec[])) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 64 }) },
);

const header = fc.record({
  encap: fc.constantFrom('vxlan', 'geneve'),
  vni: fc.constantFrom(100, 200, 999, 0),
  flips: fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
  cut: fc.option(fc.integer({ min: 0, max: 40 }), { freq: 8 }),
});

export const input: fc.Arbitrary<Input> = fc.oneof(
  fc.record({ port: fc.constantFrom<PortName>('blue1', 'red1', 't1'), frame }).map(({ port, frame: f }): Input => ({ kind: 'port', port, frame: f })),
  fc.record({ socket: fc.constantFrom<'vxlan' | 'geneve'>('vxlan', 'geneve'), from: fc.constantFrom(H2, H2, H2, H3), header, inner: frame }).map(({ socket, from, header: h, inner }): Input => {
    let data = h.encap === 'vxlan' ? compose.vxlan(h.vni, inner) : compose.geneve(h.vni, inner);
    for (const [at, value] of h.flips) data[at] = value;
    if (h.cut !== null) data = data.subarray(0, h.cut);
    return { kind: 'datagram', socket, from, data };
  }),
);
