/**
 * The TAP's offloads against a real kernel: a TAP opened with the virtio-net header in a
 * namespace of the test's own, and the VM's side played by a packet socket with
 * PACKET_VNET_HDR there (test/support/vnet.py), which hands the kernel TCP super-frames and
 * unfinished checksums exactly as a VM's stack hands them to a NIC, and shows what the
 * kernel delivers to the VM with the header it carries.
 *
 *   - reading: super-frames (IPv4, IPv6) come out as segments with every header and checksum
 *     finished and the payload whole, also across calls with few slots; a checksum left
 *     to finish is finished; what cannot be honoured is refused and counted by a real data
 *     path, never thrown on;
 *   - writing: a flow's segments in order are joined into one super-frame the VM's kernel
 *     takes whole; what must stay apart does: other flows, gaps, other options, flags,
 *     larger segments, a bad checksum.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Datapath } from '../src/datapath/datapath.js';
import fc from 'fast-check';
import { GRO_COUNT, GRO_MESSAGE, GRO_STAGING, GRO_STATE, native } from '../src/io/native.js';
import { TapPort } from '../src/io/tap.js';
import { UdpUnderlay } from '../src/io/udp-underlay.js';
import { parseIpv4, parseIpv6, readU16, readU32, writeU16 } from '../src/wire/bytes.js';
import { finish, pseudoHeaderV4, pseudoHeaderV6, sumBytes } from '../src/wire/checksum.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { TcpFlag, TcpRepr } from '../src/wire/tcp.js';
import { describe, e2eSkipReason, hasCommand, test } from './support/env.js';
import { packBatch, tcpChecksumsOk, tcpFrame } from './support/tcp-frames.js';

const VNET_PY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'support', 'vnet.py');
const skip = e2eSkipReason() || (hasCommand('python3') ? false : 'needs python3 (a packet socket with PACKET_VNET_HDR)');
const NS = `weft-offload-${process.pid}`;

const VM_MAC = 0x02_00_00_00_0a_01;
const PEER_MAC = 0x02_00_00_00_0a_02;
const SRC = parseIpv4('10.88.0.1');
const DST = parseIpv4('10.88.0.2');
const SRC6 = parseIpv6('fd00:88::1');
const DST6 = parseIpv6('fd00:88::2');
const NEEDS_CSUM = 1;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
/** A timestamp option (NOP, NOP, TS), as Linux sends on every segment. */
const tsOption = (val: number) => Uint8Array.of(1, 1, 8, 10, val >>> 24, (val >>> 16) & 255, (val >>> 8) & 255, val & 255, 0, 0, 0, 1);

const pattern = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 255);

interface Seg { seq: number; payload: Uint8Array; flags?: number; sport?: number; options?: Uint8Array; id?: number; v6?: boolean; badChecksum?: boolean }

/** A TCP segment from VM_MAC/SRC to PEER_MAC/DST (finished checksums unless asked). */
function segment(s: Seg): Uint8Array {
  const tcp = new TcpRepr(s.sport ?? 40000, 5201, s.seq >>> 0, 777, s.flags ?? TcpFlag.Ack, 500, s.options ?? tsOption(1), s.payload);
  const frame = s.v6 ? tcpFrame(PEER_MAC, VM_MAC, SRC6, DST6, tcp) : tcpFrame(PEER_MAC, VM_MAC, SRC, DST, tcp);
  if (!s.v6) {
    writeU16(frame, 18, s.id ?? 0);
    writeU16(frame, 24, 0);
    writeU16(frame, 24, finish(sumBytes(frame, 14, 20)));
  }
  if (s.badChecksum) frame[frame.length - 1] ^= 0xff;
  return frame;
}

/** The same segment as a VM hands it to its NIC: the TCP checksum field holds the
 * pseudo-header's sum (what the NIC starts from), and the header says so. */
function unfinished(frame: Uint8Array, v6: boolean): { frame: Uint8Array; l4: number } {
  const out = frame.slice();
  const l4 = v6 ? 54 : 34;
  const tcpLen = out.length - l4;
  const pseudo = v6 ? pseudoHeaderV6(SRC6, DST6, 6, tcpLen) : pseudoHeaderV4(SRC, DST, 6, tcpLen);
  writeU16(out, l4 + 16, ~finish(pseudo) & 0xffff);
  return { frame: out, l4 };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Sends frames from the VM's side, each with its virtio-net header; returns how many the
 * kernel refused to take (a header it checks itself). */
function vmSends(items: Array<{ hdr: number[]; frame: Uint8Array }>, iface = 't0'): number {
  const r = spawnSync('ip', ['netns', 'exec', NS, 'python3', VNET_PY, 'send', iface], {
    input: items.map((i) => JSON.stringify({ hdr: i.hdr, frame: hex(i.frame) })).join('\n') + '\n', encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`vnet.py send: ${r.stderr}`);
  return r.stderr.split('\n').filter((l) => l.startsWith('refused by the kernel')).length;
}

/** Starts capturing on the VM's side; resolves with what arrived once `n` frames did. */
async function vmCaptures(n: number): Promise<() => Promise<Array<{ hdr: number[]; frame: Buffer }>>> {
  const child = spawn('ip', ['netns', 'exec', NS, 'python3', VNET_PY, 'capture', 't0', String(n), '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.startsWith('ready')) {
        clearInterval(t);
        resolve();
      }
    }, 5);
    child.on('exit', () => {
      clearInterval(t);
      reject(new Error('capture ended before it was ready'));
    });
  });
  return () => new Promise((resolve) => child.on('close', () => {
    const list = JSON.parse(out.slice('ready\n'.length)) as Array<{ hdr: number[]; frame: string }>;
    resolve(list.map((f) => ({ hdr: f.hdr, frame: Buffer.from(f.frame, 'hex') })));
  }));
}

const SLOT = 2048;
const mem = new Uint8Array(SLOT * 64);
const lengths = new Int32Array(64);

/** Reads from the TAP until `n` frames came (or two seconds passed), `max` slots a call. */
async function readFrames(tap: TapPort, n: number, max = 64): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  const deadline = Date.now() + 2000;
  while (frames.length < n && Date.now() < deadline) {
    const got = tap.readBatch(mem, 0, SLOT, 1600, max, lengths);
    for (let i = 0; i < got; i++) frames.push(lengths[i] < 0 ? Int32Array.of(lengths[i]) as unknown as Uint8Array : mem.slice(i * SLOT, i * SLOT + lengths[i]));
    if (got === 0) await new Promise((r) => setTimeout(r, 5));
  }
  return frames;
}

/** Writes frames to the VM as one batch. */
function write(tap: TapPort, frames: Uint8Array[]): number {
  const { offsets, lengths: lens } = packBatch(mem, frames, SLOT);
  return tap.writeBatch(mem, offsets, lens, frames.length);
}

describe('TAP offloads (a real TAP in a namespace; the VM side through a packet socket)', { skip }, () => {
  let tap: TapPort;

  before(() => {
    execFileSync('ip', ['netns', 'add', NS]);
    // Nothing in the namespace speaks (no addresses, no IPv6): what the VM's side sends is
    // only what a test sends.
    execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    tap = TapPort.open('t0', NS);
    execFileSync('ip', ['-n', NS, 'link', 'set', 't0', 'up']);
  });

  after(() => {
    tap?.close();
    execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  });

  test('the kernel agrees to hand over super-frames: the VM side of the TAP has TSO and checksum offload', () => {
    assert.equal(tap.offload, true);
    const features = execFileSync('ip', ['netns', 'exec', NS, 'ethtool', '-k', 't0'], { encoding: 'utf8' });
    assert.match(features, /tcp-segmentation-offload: on/);
    assert.match(features, /tx-checksumming: on/);
  });

  async function superFrameIsCut(v6: boolean, max: number): Promise<void> {
    const payload = pattern(10_000, v6 ? 3 : 1);
    const whole = segment({ seq: 0xffff_f000, payload, flags: TcpFlag.Ack | TcpFlag.Psh | TcpFlag.Cwr, id: 100, v6 });
    const { frame, l4 } = unfinished(whole, v6);
    vmSends([{ hdr: [NEEDS_CSUM, v6 ? GSO_TCPV6 : GSO_TCPV4, l4 + 32, 1400, l4, 16], frame }]);
    const segments = await readFrames(tap, 8, max);
    assert.equal(segments.length, 8, 'ceil(10000 / 1400) segments');
    const joined: number[] = [];
    segments.forEach((s, i) => {
      const size = i < 7 ? 1400 : 10_000 - 7 * 1400;
      assert.equal(s.length, l4 + 32 + size, `segment ${i}'s length`);
      assert.ok(tcpChecksumsOk(s), `segment ${i}'s TCP checksum`);
      if (v6) {
        assert.equal(readU16(s, 18), 32 + size, 'IPv6 payload length');
      } else {
        assert.equal(readU16(s, 16), 20 + 32 + size, 'IPv4 total length');
        assert.equal(readU16(s, 18), 100 + i, 'IPv4 IDs go up by one');
        assert.equal(finish(sumBytes(s, 14, 20)), 0, 'IPv4 header checksum');
      }
      assert.equal(readU32(s, l4 + 4), (0xffff_f000 + i * 1400) >>> 0, 'sequence numbers follow on (and wrap)');
      const flags = s[l4 + 13];
      assert.equal((flags & TcpFlag.Psh) !== 0, i === 7, 'PSH only on the last');
      assert.equal((flags & TcpFlag.Cwr) !== 0, i === 0, 'CWR only on the first');
      assert.deepEqual(s.subarray(l4 + 20, l4 + 32), tsOption(1), 'options kept');
      joined.push(...s.subarray(l4 + 32));
    });
    assert.deepEqual(Uint8Array.from(joined), payload, 'the payload whole, in order');
  }

  test('an IPv4 super-frame is cut into finished segments', () => superFrameIsCut(false, 64));
  test('an IPv6 super-frame is cut into finished segments', () => superFrameIsCut(true, 64));
  test('with three slots a call, the rest of a super-frame waits for the next calls', () => superFrameIsCut(false, 3));

  test('an unfinished UDP checksum is finished', async () => {
    const frame = compose.ethernet(PEER_MAC, VM_MAC, EtherType.Ipv4, compose.udpV4(SRC, DST, 5000, 53, pattern(301)));
    const good = readU16(frame, 40);
    const sent = frame.slice();
    writeU16(sent, 40, ~finish(pseudoHeaderV4(SRC, DST, 17, 8 + 301)) & 0xffff);
    vmSends([{ hdr: [NEEDS_CSUM, 0, 0, 0, 34, 6], frame: sent }]);
    const [got] = await readFrames(tap, 1);
    assert.equal(got.length, frame.length);
    assert.equal(readU16(got, 40), good);
  });

  test('what cannot be honoured is refused and counted by the data path, never thrown on', async () => {
    // A second TAP, read by a real data path.
    const dp = new Datapath();
    dp.addNetwork({ name: 'blue', vni: 100, encapsulation: 'vxlan' });
    dp.addPort({ name: 'vm', backend: TapPort.open('t1', NS), mode: 'access', network: 'blue' });
    execFileSync('ip', ['-n', NS, 'link', 'set', 't1', 'up']);
    dp.startPort('vm', Date.now);
    try {
      const udp = compose.ethernet(PEER_MAC, VM_MAC, EtherType.Ipv4, compose.udpV4(SRC, DST, 5000, 53, pattern(3000)));
      const tcp = unfinished(segment({ seq: 1, payload: pattern(3000) }), false).frame;
      const refused = vmSends([
        // Segments of 40 bytes: 75 frames from one read (under the 88-byte floor).
        { hdr: [NEEDS_CSUM, GSO_TCPV4, 66, 40, 34, 16], frame: tcp },
        // Segments larger than a frame may be.
        { hdr: [NEEDS_CSUM, GSO_TCPV4, 66, 1600, 34, 16], frame: tcp },
        // TCP segmentation asked of a UDP datagram.
        { hdr: [NEEDS_CSUM, GSO_TCPV4, 42, 1000, 34, 6], frame: udp },
        // A checksum to finish beyond the frame's end.
        { hdr: [NEEDS_CSUM, 0, 0, 0, 34, 4000], frame: udp.subarray(0, 1000) },
      ], 't1');
      // The kernel refuses some headers itself; every one that reached the TAP is ours to refuse.
      const c = dp.portCounters('vm');
      const deadline = Date.now() + 2000;
      while (c.drops('offload-refused') < 4 - refused && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(refused < 4, 'at least one reached the TAP');
      assert.equal(c.drops('offload-refused'), 4 - refused);
      assert.equal(c.snapshot().rx.frames, 4 - refused, 'nothing else came of them');
      // And the port still works.
      vmSends([{ hdr: [0, 0, 0, 0, 0, 0], frame: segment({ seq: 1, payload: pattern(100) }) }], 't1');
      while (c.snapshot().rx.frames < 5 - refused && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 10));
      assert.equal(c.snapshot().rx.frames, 5 - refused);
      assert.equal(c.drops('offload-refused'), 4 - refused);
    } finally {
      dp.close();
    }
  });

  test('a flow\'s segments in order reach the VM as one super-frame, IPv4 and IPv6', async () => {
    for (const v6 of [false, true]) {
      const sizes = [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 500];
      let seq = 5000;
      const segs = sizes.map((n, i) => {
        const s = segment({ seq, payload: pattern(n, i), flags: TcpFlag.Ack | (i === 9 ? TcpFlag.Psh : 0), id: i, v6 });
        seq += n;
        return s;
      });
      const done = await vmCaptures(1);
      assert.equal(write(tap, segs), segs.length);
      const [got] = await done();
      const l4 = v6 ? 54 : 34;
      assert.equal(got.hdr[1], v6 ? GSO_TCPV6 : GSO_TCPV4, 'a TCP super-frame');
      assert.equal(got.hdr[3], 1000, 'its segment size');
      assert.equal(got.frame.length, l4 + 32 + 9500);
      assert.deepEqual(Uint8Array.from(got.frame.subarray(l4 + 32)), Uint8Array.from(sizes.flatMap((n, i) => [...pattern(n, i)])));
      assert.equal(got.frame[l4 + 13], TcpFlag.Ack | TcpFlag.Psh, 'the last segment\'s PSH');
      assert.equal(readU32(got.frame, l4 + 4), 5000);
      if (!v6) assert.equal(finish(sumBytes(got.frame, 14, 20)), 0, 'IPv4 header checksum for the joined length');
    }
  });

  test('what must stay apart stays apart', async () => {
    const p = (n: number) => pattern(n);
    const cases: Array<{ what: string; segs: Seg[]; frames: number[] }> = [
      { what: 'two flows, interleaved', segs: [{ seq: 0, payload: p(1000) }, { seq: 0, payload: p(1000), sport: 40001 }, { seq: 1000, payload: p(1000) }, { seq: 1000, payload: p(1000), sport: 40001 }], frames: [1, 1, 1, 1] },
      { what: 'a gap, then what was missing', segs: [{ seq: 0, payload: p(1000) }, { seq: 2000, payload: p(1000) }, { seq: 1000, payload: p(1000) }], frames: [1, 1, 1] },
      { what: 'other options (a newer timestamp)', segs: [{ seq: 0, payload: p(1000) }, { seq: 1000, payload: p(1000), options: tsOption(2) }], frames: [1, 1] },
      { what: 'PSH ends a run', segs: [{ seq: 0, payload: p(1000) }, { seq: 1000, payload: p(1000), flags: TcpFlag.Ack | TcpFlag.Psh }, { seq: 2000, payload: p(1000) }, { seq: 3000, payload: p(1000) }], frames: [2, 2] },
      { what: 'FIN, SYN, URG and RST are never joined', segs: [{ seq: 0, payload: p(1000) }, { seq: 1000, payload: p(1000), flags: TcpFlag.Ack | TcpFlag.Fin }, { seq: 2001, payload: p(1000), flags: TcpFlag.Ack | TcpFlag.Urg }, { seq: 3001, payload: p(1000), flags: TcpFlag.Rst | TcpFlag.Ack }], frames: [1, 1, 1, 1] },
      { what: 'a larger segment after smaller ones', segs: [{ seq: 0, payload: p(1000) }, { seq: 1000, payload: p(1000) }, { seq: 2000, payload: p(1200) }], frames: [2, 1] },
      { what: 'a smaller segment ends a run', segs: [{ seq: 0, payload: p(1000) }, { seq: 1000, payload: p(600) }, { seq: 1600, payload: p(600) }], frames: [2, 1] },
      { what: 'a bad checksum, written alone as it came', segs: [{ seq: 0, payload: p(1000) }, { seq: 1000, payload: p(1000) }, { seq: 2000, payload: p(1000), badChecksum: true }, { seq: 3000, payload: p(1000) }], frames: [2, 1, 1] },
      { what: 'pure acknowledgements', segs: [{ seq: 0, payload: p(0) }, { seq: 0, payload: p(0) }], frames: [1, 1] },
    ];
    for (const c of cases) {
      const frames = c.segs.map(segment);
      const done = await vmCaptures(c.frames.length);
      assert.equal(write(tap, frames), frames.length, c.what);
      const got = await done();
      assert.equal(got.length, c.frames.length, `${c.what}: frames that reached the VM`);
      let k = 0;
      got.forEach((g, i) => {
        const joined = c.frames[i];
        assert.equal(g.hdr[1], joined > 1 ? GSO_TCPV4 : 0, `${c.what}: frame ${i} ${joined > 1 ? 'joined' : 'alone'}`);
        const expected = c.segs.slice(k, k + joined).reduce((n, s) => n + s.payload.length, 66);
        assert.equal(g.frame.length, Math.max(60, expected), `${c.what}: frame ${i}'s length`);
        if (joined === 1) assert.deepEqual(Uint8Array.from(g.frame.subarray(0, frames[k].length)), frames[k], `${c.what}: frame ${i} as it was written`);
        k += joined;
      });
    }
  });
});

describe('UDP segmentation and receive offloads (real sockets on loopback)', () => {
  test('a run sent as one (GSO) is received as one message (UDP GRO), then cut into its datagrams', async () => {
    const LO = parseIpv4('127.0.0.1');
    const sender = UdpUnderlay.open(LO, 47894);
    // The receiving socket as the underlay opens it (udpOpen asks for UDP GRO), read with
    // the addon's own receive so that its state shows how many messages the kernel handed over.
    const fd = native.udpOpen('127.0.0.1', 47895, 1 << 20);
    const staging = new Uint8Array(GRO_STAGING);
    const state = new Int32Array(GRO_STATE);
    const rLengths = new Int32Array(64);
    const rAddrs = new Uint32Array(64);
    const rPorts = new Uint16Array(64);
    try {
      const frames = [...Array<number>(20).fill(1000), 300].map((n, i) => pattern(n, i + 40));
      const offsets = Int32Array.from(frames, (_, i) => i * SLOT);
      frames.forEach((f, i) => mem.set(f, i * SLOT));
      const lens = Int32Array.from(frames, (f) => f.length);
      assert.equal(sender.sendBatch(mem, offsets, lens, new Uint32Array(frames.length).fill(LO), new Uint16Array(frames.length).fill(47895), frames.length), frames.length);
      assert.match(sender.description, /segmentation offload/, 'the kernel took the run with UDP GSO');
      // One datagram a call: the first call's recvmmsg takes whatever is queued.
      const got: Uint8Array[] = [];
      const deadline = Date.now() + 2000;
      while (got.length === 0 && Date.now() < deadline) {
        if (native.udpRecv(fd, mem, 0, SLOT, 1600, 1, rLengths, rAddrs, rPorts, staging, state) === 1) got.push(mem.slice(0, rLengths[0]));
        else await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(got.length, 1, 'the run arrived');
      // Without UDP GRO the kernel would have cut the run at the socket: 21 messages.
      assert.equal(state[GRO_COUNT], 1, 'the 21 datagrams came as one message');
      assert.equal(state[GRO_MESSAGE], 0, 'which the receive is cutting');
      for (;;) {
        const n = native.udpRecv(fd, mem, 0, SLOT, 1600, 64, rLengths, rAddrs, rPorts, staging, state);
        if (n <= 0) break;
        for (let i = 0; i < n; i++) got.push(mem.slice(i * SLOT, i * SLOT + rLengths[i]));
      }
      assert.equal(got.length, frames.length);
      frames.forEach((f, i) => assert.deepEqual(got[i], f, `datagram ${i}, in order`));
    } finally {
      sender.close();
      native.close(fd);
    }
  });

  test('a run sent as one (GSO, its last datagram shorter) arrives whole and is cut back into its datagrams, across calls with few slots', async () => {
    const LO = parseIpv4('127.0.0.1');
    const a = UdpUnderlay.open(LO, 47891);
    const b = UdpUnderlay.open(LO, 47892);
    const c = UdpUnderlay.open(LO, 47893);
    try {
      const sizes = [...Array<number>(20).fill(1000), 300];
      const frames = sizes.map((n, i) => pattern(n, i));
      const offsets = new Int32Array(frames.length + 2);
      const lens = new Int32Array(frames.length + 2);
      const addrs = new Uint32Array(frames.length + 2).fill(LO);
      const ports = new Uint16Array(frames.length + 2).fill(47892);
      frames.forEach((f, i) => {
        mem.set(f, i * SLOT);
        offsets[i] = i * SLOT;
        lens[i] = f.length;
      });
      assert.equal(a.sendBatch(mem, offsets, lens, addrs, ports, frames.length), frames.length);
      assert.match(a.description, /segmentation offload/, 'the kernel took the run with UDP GSO');
      // And small ones from another sender, after.
      mem.set(pattern(10, 99), 0);
      mem.set(pattern(0), SLOT);
      offsets[0] = 0;
      offsets[1] = SLOT;
      lens[0] = 10;
      lens[1] = 0;
      assert.equal(c.sendBatch(mem, offsets, lens, addrs, ports, 2), 2);
      const got: Array<{ data: Uint8Array; port: number }> = [];
      const rAddrs = new Uint32Array(64);
      const rPorts = new Uint16Array(64);
      const deadline = Date.now() + 2000;
      while (got.length < 23 && Date.now() < deadline) {
        const n = b.recvBatch(mem, 0, SLOT, 1600, 8, lengths, rAddrs, rPorts);
        for (let i = 0; i < n; i++) {
          assert.equal(rAddrs[i], LO);
          got.push({ data: mem.slice(i * SLOT, i * SLOT + lengths[i]), port: rPorts[i] });
        }
        if (n === 0) await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(got.length, 23);
      frames.forEach((f, i) => {
        assert.deepEqual(got[i].data, f, `datagram ${i}, in order`);
        assert.equal(got[i].port, 47891);
      });
      assert.deepEqual(got[21], { data: pattern(10, 99), port: 47893 });
      assert.deepEqual(got[22], { data: new Uint8Array(0), port: 47893 }, 'an empty datagram is a datagram too');
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });
});

test('the addon\'s checksum (alone, and while copying) is the Internet checksum, at any length and offset', () => {
  const src = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 131 + (i >> 8)) & 255);
  fc.assert(fc.property(fc.integer({ min: 0, max: 65_536 }), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 7 }), (len, off, doff) => {
    const expected = finish(sumBytes(src, off, len));
    const dst = new Uint8Array(len + 8);
    assert.equal(native.checksum(src, off, len, null, 0), expected);
    assert.equal(native.checksum(src, off, len, dst, doff), expected);
    assert.deepEqual(dst.subarray(doff, doff + len), src.subarray(off, off + len));
  }), { numRuns: 300 });
  assert.throws(() => native.checksum(src, 69_999, 2, null, 0), RangeError);
});
