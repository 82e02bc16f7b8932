/**
 * One contract, one suite: every port backend and every underlay backend passes the same
 * cases. The TAP port's peer is a real kernel in a network namespace (it answers the ARP
 * requests we write); the UDP underlay uses real sockets on loopback.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { PortBackend, UnderlayBackend } from '../src/datapath/backend.js';
import { MemoryFabric, type MemoryPort } from '../src/datapath/memory.js';
import { TapPort } from '../src/io/tap.js';
import { QemuStreamPort } from '../src/io/qemu-stream.js';
import { connect } from 'node:net';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UdpUnderlay } from '../src/io/udp-underlay.js';
import { parseIpv4, parseMac } from '../src/wire/bytes.js';
import { ArpOperation, ArpPacket } from '../src/wire/arp.js';
import * as compose from '../src/wire/compose.js';
import { EthernetFrame, EtherType } from '../src/wire/ethernet.js';
import { describe, test, e2eSkipReason } from './support/env.js';

const OURS = parseMac('02:00:00:00:aa:01');
const PEER_IP = parseIpv4('10.77.0.1');
const arpRequest = (senderIp: number) =>
  compose.ethernet(0xffffffffffff, OURS, EtherType.Arp, compose.arpRequest(OURS, senderIp, PEER_IP));

interface PortHarness {
  backend: PortBackend;
  /** Resolves once the peer is there to receive (a guest connected, say). */
  ready?(): Promise<void>;
  /** Resolves once the backend called onReadable (or at once if it has). */
  readable(): Promise<void>;
  close(): void;
}

/** Waits up to `ms` for a callback that sets `flag.fired`. */
function waitFor(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error('timed out waiting for readiness'));
      setTimeout(tick, 5);
    };
    tick();
  });
}

const portBackends: Array<{ name: string; skip: string | false; make(): PortHarness }> = [
  {
    name: 'TapPort (kernel peer in a namespace)',
    skip: e2eSkipReason(),
    make() {
      const ns = `weft-conf-${process.pid}`;
      execFileSync('ip', ['netns', 'add', ns]);
      try {
        // The peer speaks only when spoken to: no IPv6, whose autoconfiguration and MLD
        // reports would otherwise arrive at any moment after the link comes up.
        execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
        execFileSync('ip', ['-n', ns, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap']);
        execFileSync('ip', ['-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', 'eth0']);
        execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
        const backend = TapPort.open('eth0', ns);
        // Attaching turns the carrier on, but the kernel activates the device's queue a little
        // later (linkwatch); what it sends before then is dropped. Wait for operstate UP.
        const deadline = Date.now() + 5000;
        while (!execFileSync('ip', ['-n', ns, '-o', 'link', 'show', 'eth0'], { encoding: 'utf8' }).includes('state UP')) {
          if (Date.now() > deadline) throw new Error('the TAP did not come up');
          execFileSync('sleep', ['0.01']);
        }
        let fired = false;
        backend.start(() => (fired = true));
        return {
          backend,
          readable: () => waitFor(() => fired).then(() => { fired = false; }),
          close: () => { backend.close(); execFileSync('ip', ['netns', 'del', ns]); },
        };
      } catch (err) {
        execFileSync('ip', ['netns', 'del', ns]);
        throw err;
      }
    },
  },
  {
    name: 'QemuStreamPort (a client speaking QEMU\'s -netdev stream framing as peer)',
    skip: false,
    make() {
      const dir = join(tmpdir(), `weft-conf-qemu-${process.pid}`);
      const path = join(dir, 'vm.sock');
      const backend = QemuStreamPort.open(path, dir);
      let fired = false;
      backend.start(() => (fired = true));
      // The guest: reads length-prefixed frames and answers each ARP request, in its own
      // chunks (a reply split across writes, two replies in one), as a stream may carry them.
      const guest = connect(path);
      let pending = Buffer.alloc(0);
      guest.on('data', (chunk) => {
        pending = Buffer.concat([pending, chunk]);
        const replies: Buffer[] = [];
        while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
          const frame = pending.subarray(4, 4 + pending.readUInt32BE(0));
          pending = pending.subarray(4 + frame.length);
          const arp = ArpPacket.checked(frame, 14) as ArpPacket;
          const reply = compose.ethernet(arp.senderMac, parseMac('02:00:00:00:bb:01'), EtherType.Arp,
            compose.arp(ArpOperation.Reply, parseMac('02:00:00:00:bb:01'), PEER_IP, arp.senderMac, arp.senderIp));
          const framed = Buffer.alloc(4 + reply.length);
          framed.writeUInt32BE(reply.length, 0);
          framed.set(reply, 4);
          replies.push(framed);
        }
        const all = Buffer.concat(replies);
        if (all.length > 0) {
          guest.write(all.subarray(0, 7));
          setImmediate(() => guest.write(all.subarray(7)));
        }
      });
      return {
        backend,
        ready: () => waitFor(() => backend.description.includes('guest connected')),
        readable: () => waitFor(() => fired).then(() => { fired = false; }),
        close: () => { guest.destroy(); backend.close(); rmSync(dir, { recursive: true, force: true }); },
      };
    },
  },
  {
    name: 'MemoryPort (a test responder as peer)',
    skip: false,
    make() {
      const fabric = new MemoryFabric();
      const port = fabric.port('conformance') as MemoryPort;
      let fired = false;
      port.start(() => (fired = true));
      // The peer: answers each ARP request the backend wrote, like a kernel would.
      const answer = () => {
        for (const f of port.take()) {
          const arp = ArpPacket.checked(f, 14) as ArpPacket;
          port.send(compose.ethernet(arp.senderMac, parseMac('02:00:00:00:bb:01'), EtherType.Arp,
            compose.arp(ArpOperation.Reply, parseMac('02:00:00:00:bb:01'), PEER_IP, arp.senderMac, arp.senderIp)));
        }
      };
      return {
        backend: port,
        readable: () => { answer(); fabric.step(); return waitFor(() => fired).then(() => { fired = false; }); },
        close: () => port.close(),
      };
    },
  },
];

for (const impl of portBackends) {
  describe(`port backend contract: ${impl.name}`, { skip: impl.skip }, () => {
    test('reads nothing, without blocking, when nothing waits', () => {
      const h = impl.make();
      try {
        const mem = new Uint8Array(4096);
        assert.equal(h.backend.readBatch(mem, 0, 2048, 2048, 2, new Int32Array(2)), 0);
      } finally {
        h.close();
      }
    });

    test('a batch written reaches the peer, and its answers are read in order, one per slot', async () => {
      const h = impl.make();
      try {
        await h.ready?.();
        const mem = new Uint8Array(8 * 2048);
        const senders = [11, 12, 13].map((n) => parseIpv4(`10.77.0.${n}`));
        const offsets = new Int32Array(3);
        const lengths = new Int32Array(3);
        senders.forEach((ip, i) => {
          const f = arpRequest(ip);
          mem.set(f, i * 2048 + 64);
          offsets[i] = i * 2048 + 64;
          lengths[i] = f.length;
        });
        assert.equal(h.backend.writeBatch(mem, offsets, lengths, 3), 3);
        assert.ok([...lengths].every((l) => l > 0), 'no frame refused');
        const got: number[] = [];
        const lens = new Int32Array(8);
        const out = new Uint8Array(8 * 2048);
        while (got.length < 3) {
          await h.readable();
          const n = h.backend.readBatch(out, 64, 2048, 1984, 8, lens);
          for (let i = 0; i < n; i++) {
            const eth = EthernetFrame.checked(out, 64 + i * 2048, lens[i]) as EthernetFrame;
            if (eth.ethertype !== EtherType.Arp) continue; // the kernel may also send IPv6 chatter
            const arp = ArpPacket.checked(out, eth.payloadOffset) as ArpPacket;
            assert.equal(arp.operation, ArpOperation.Reply);
            assert.equal(eth.dst, OURS);
            got.push(arp.targetIp);
          }
        }
        assert.deepEqual(got, senders, 'answers in the order of the requests');
      } finally {
        h.close();
      }
    });
  });
}

interface UnderlayHarness {
  a: UnderlayBackend;
  b: UnderlayBackend;
  aAddr: number;
  aPort: number;
  bAddr: number;
  bPort: number;
  readable(): Promise<void>;
  close(): void;
}

let nextPort = 40000 + (process.pid % 10000);
const underlays: Array<{ name: string; make(): UnderlayHarness }> = [
  {
    name: 'UdpUnderlay (sockets on loopback)',
    make() {
      const [aPort, bPort] = [nextPort++, nextPort++];
      const lo = parseIpv4('127.0.0.1');
      const a = UdpUnderlay.open(lo, aPort);
      const b = UdpUnderlay.open(lo, bPort);
      let fired = false;
      b.start(() => (fired = true));
      return { a, b, aAddr: lo, aPort, bAddr: lo, bPort, readable: () => waitFor(() => fired).then(() => { fired = false; }), close: () => { a.close(); b.close(); } };
    },
  },
  {
    name: 'MemoryUnderlay (one fabric)',
    make() {
      const fabric = new MemoryFabric();
      const [aAddr, bAddr] = [parseIpv4('192.0.2.1'), parseIpv4('192.0.2.2')];
      const a = fabric.underlay(aAddr, 4789);
      const b = fabric.underlay(bAddr, 4789);
      let fired = false;
      b.start(() => (fired = true));
      return { a, b, aAddr, aPort: 4789, bAddr, bPort: 4789, readable: () => { fabric.step(); return waitFor(() => fired).then(() => { fired = false; }); }, close: () => { a.close(); b.close(); } };
    },
  },
];

for (const impl of underlays) {
  describe(`underlay backend contract: ${impl.name}`, () => {
    test('a batch sent arrives in order, with the sender address and port; nothing more', async () => {
      const h = impl.make();
      try {
        const mem = new Uint8Array(4 * 2048);
        const offsets = Int32Array.of(0, 2048, 4096);
        const lengths = Int32Array.of(10, 700, 1400);
        for (let i = 0; i < 3; i++) mem.fill(i + 1, offsets[i], offsets[i] + lengths[i]);
        const n = h.a.sendBatch(mem, offsets, lengths, new Uint32Array(3).fill(h.bAddr), new Uint16Array(3).fill(h.bPort), 3);
        assert.equal(n, 3);
        await h.readable();
        const out = new Uint8Array(8 * 2048);
        const lens = new Int32Array(8);
        const addrs = new Uint32Array(8);
        const ports = new Uint16Array(8);
        const got = h.b.recvBatch(out, 0, 2048, 2048, 8, lens, addrs, ports);
        assert.equal(got, 3);
        assert.deepEqual([...lens.subarray(0, 3)], [10, 700, 1400]);
        for (let i = 0; i < 3; i++) {
          assert.equal(addrs[i], h.aAddr);
          assert.equal(ports[i], h.aPort);
          assert.ok(out.subarray(i * 2048, i * 2048 + lens[i]).every((v) => v === i + 1));
        }
        assert.equal(h.b.recvBatch(out, 0, 2048, 2048, 8, lens, addrs, ports), 0);
      } finally {
        h.close();
      }
    });

    test('a run of equal datagrams to one destination arrives as separate datagrams, in order', async () => {
      // The UDP underlay sends such a run as one message with UDP segmentation offload.
      const h = impl.make();
      try {
        const n = 40;
        const mem = new Uint8Array(n * 128);
        const offsets = Int32Array.from({ length: n }, (_, i) => i * 128);
        for (let i = 0; i < n; i++) mem.fill(i, i * 128, i * 128 + 68);
        const sent = h.a.sendBatch(mem, offsets, new Int32Array(n).fill(68), new Uint32Array(n).fill(h.bAddr), new Uint16Array(n).fill(h.bPort), n);
        assert.equal(sent, n);
        const out = new Uint8Array(n * 2048);
        const lens = new Int32Array(n);
        const got: number[] = [];
        while (got.length < n) {
          await h.readable();
          const k = h.b.recvBatch(out, 0, 2048, 2048, n, lens, new Uint32Array(n), new Uint16Array(n));
          for (let i = 0; i < k; i++) {
            assert.equal(lens[i], 68);
            const d = out.subarray(i * 2048, i * 2048 + 68);
            assert.ok(d.every((v) => v === d[0]), 'each datagram is one piece');
            got.push(d[0]);
          }
        }
        assert.deepEqual(got, [...Array(n).keys()]);
      } finally {
        h.close();
      }
    });

    test('a datagram longer than the receive slot is reported as cut (-1), not delivered short', async () => {
      const h = impl.make();
      try {
        const mem = new Uint8Array(3000);
        h.a.sendBatch(mem, Int32Array.of(0), Int32Array.of(3000), Uint32Array.of(h.bAddr), Uint16Array.of(h.bPort), 1);
        await h.readable();
        const lens = new Int32Array(1);
        assert.equal(h.b.recvBatch(new Uint8Array(2048), 0, 2048, 2048, 1, lens, new Uint32Array(1), new Uint16Array(1)), 1);
        assert.equal(lens[0], -1);
      } finally {
        h.close();
      }
    });
  });
}
