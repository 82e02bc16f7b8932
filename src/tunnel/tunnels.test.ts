import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Tunnels, type TunnelOptions } from './tunnels.js';
import { generateKeyPair, mac1Key, mac16, type KeyPair } from './noise.js';
import { TUNNEL_HANDLED, TunnelRefusal, type TunnelPeer } from '../datapath/model.js';

/** Two (or more) hosts' tunnels on a simulated underlay: datagrams wait in `wire` until
 * delivered, so some are always in flight while sessions rotate. */
class Net {
  clock = 1_000_000;
  readonly wire: Array<{ data: Uint8Array; from: Host; to: number; port: number }> = [];
  readonly hosts: Host[] = [];
  host(address: number, opts: Partial<TunnelOptions> = {}): Host {
    const h = new Host(this, address, generateKeyPair(), opts);
    this.hosts.push(h);
    return h;
  }
  /** Moves what each host's tunnels have to say onto the wire. */
  collect(): void {
    for (const h of this.hosts) h.t.drain((data, to, port) => this.wire.push({ data: Uint8Array.from(data), from: h, to, port }));
  }
  /** Delivers everything on the wire but the last `keep` datagrams, then what that caused. */
  deliver(keep = 0): void {
    for (let rounds = 0; rounds < 10; rounds++) {
      this.collect();
      if (this.wire.length <= keep) return;
      for (const d of this.wire.splice(0, this.wire.length - keep)) {
        const to = this.hosts.find((h) => h.address === d.to && h.port === d.port);
        to?.receive(d.data, d.from.sendingAddress, d.from.port);
      }
    }
  }
}

class Host {
  readonly t: Tunnels;
  readonly port = 4793;
  /** Where this host's datagrams come from (it may roam away from `address`). */
  sendingAddress: number;
  readonly got: string[] = [];
  readonly refused: number[] = [];
  constructor(private readonly net: Net, public address: number, readonly keys: KeyPair, opts: Partial<TunnelOptions>) {
    this.sendingAddress = address;
    this.t = new Tunnels({ privateKey: keys.privateKey, maxPlaintext: 2048, now: () => net.clock, ...opts });
  }
  knows(...others: Host[]): this {
    this.t.setPeers(others.map((o) => ({ publicKey: o.keys.publicKey, address: o.address, port: o.port })));
    return this;
  }
  peer(other: Host): TunnelPeer {
    return this.t.peerOf(other.keys.publicKey)!;
  }
  /** Seals `text` for `other`: onto the wire, or held for a handshake. */
  send(other: Host, text: string): number {
    const plain = Buffer.from(text);
    const out = new Uint8Array(plain.length + 64);
    const peer = this.peer(other);
    const n = this.t.seal(peer, plain, 0, plain.length, out, 0);
    if (n > 0) this.net.wire.push({ data: out.slice(0, n), from: this, to: peer.address, port: peer.port });
    return n;
  }
  receive(data: Uint8Array, from: number, port: number): number {
    const buf = new Uint8Array(data.length + 32);
    buf.set(data, 8);
    const r = this.t.receive(buf, 8, data.length, from, port);
    if (r > 0) this.got.push(Buffer.from(buf.subarray(8 + 16, 8 + 16 + r)).toString());
    else if (r < 0 && r !== TUNNEL_HANDLED) this.refused.push(r);
    return r;
  }
}

const A = 0x0a630001;
const B = 0x0a630002;
const C = 0x0a630003;

function pair(opts: Partial<TunnelOptions> = {}) {
  const net = new Net();
  const a = net.host(A, opts);
  const b = net.host(B, opts);
  a.knows(b);
  b.knows(a);
  return { net, a, b };
}

test('tunnels: peers handshake when they learn of each other; a frame before that is held and arrives; both directions work', () => {
  const { net, a, b } = pair();
  assert.equal(a.send(b, 'first'), 0, 'held');
  net.deliver();
  assert.deepEqual(b.got, ['first']);
  assert.ok(b.send(a, 'back') > 0, 'the responder has a session: the held frame confirmed it');
  net.deliver();
  assert.deepEqual(a.got, ['back']);
  // Both started a handshake when told of the other; one of them won: one session.
  assert.equal(a.t.stats(a.peer(b)).handshakes, 1);
  assert.equal(b.t.stats(b.peer(a)).handshakes, 1);
  assert.notEqual(a.t.stats(a.peer(b)).session?.initiator, b.t.stats(b.peer(a)).session?.initiator);
});

test('tunnels: sessions rotate on time under traffic both ways with nothing lost', () => {
  const { net, a, b } = pair({ rekeyAfterMs: 2000 });
  a.send(b, 'hello');
  net.deliver();
  let sent = 0;
  // 100 datagrams a second each way for 20 s; three are always in flight.
  for (let i = 0; i < 2000; i++) {
    net.clock += 10;
    assert.ok(a.send(b, `a${i}`) > 0, `a${i} sealed`);
    assert.ok(b.send(a, `b${i}`) > 0, `b${i} sealed`);
    sent++;
    if (i % 100 === 0) {
      a.t.tick();
      b.t.tick();
    }
    net.deliver(3);
  }
  net.deliver();
  assert.equal(b.got.length, sent + 1);
  assert.equal(a.got.length, sent);
  assert.deepEqual(b.got.slice(1, 4), ['a0', 'a1', 'a2']);
  const rotations = a.t.stats(a.peer(b)).rotations + b.t.stats(b.peer(a)).rotations;
  assert.ok(rotations >= 8, `rotated ${rotations} times in 20 s at 2 s`);
  assert.equal(a.refused.length + b.refused.length, 0, `refusals: ${[...a.refused, ...b.refused]}`);
});

test('tunnels: sessions rotate on message count', () => {
  const { net, a, b } = pair({ rekeyAfterMessages: 100 });
  a.send(b, 'x');
  net.deliver();
  for (let i = 0; i < 1000; i++) {
    net.clock += 1;
    a.send(b, `m${i}`);
    net.deliver(2);
  }
  net.deliver();
  assert.equal(b.got.length, 1001);
  assert.ok(a.t.stats(a.peer(b)).rotations >= 8);
});

test('tunnels: a replayed datagram is refused, a late one within the window accepted, a forged one refused', () => {
  const { net, a, b } = pair();
  a.send(b, 'x');
  net.deliver();
  a.send(b, 'one');
  const captured = net.wire[0].data;
  net.deliver();
  assert.equal(b.receive(captured, A, 4793), TunnelRefusal.replay);
  // Out of order: 3000 datagrams sent, delivered newest first: all accepted (window 8160).
  for (let i = 0; i < 3000; i++) a.send(b, `o${i}`);
  const late = net.wire.splice(0).reverse();
  for (const d of late) b.receive(d.data, A, 4793);
  assert.equal(b.got.length, 3002);
  assert.equal(b.refused.length, 1);
  // Far older than the window.
  for (let i = 0; i < 9000; i++) a.send(b, 'n');
  const old = net.wire.shift()!;
  net.deliver();
  assert.equal(b.receive(old.data, A, 4793), TunnelRefusal.replay);
  // A flipped bit, a session index nobody has, a datagram too short to hold a tag.
  a.send(b, 'forged');
  const forged = net.wire.splice(0)[0].data;
  forged[forged.length - 1] ^= 1;
  assert.equal(b.receive(forged, A, 4793), TunnelRefusal.authFailed);
  forged[4] ^= 0xff;
  assert.equal(b.receive(forged, A, 4793), TunnelRefusal.unknownSession);
  assert.equal(b.receive(forged.subarray(0, 20), A, 4793), TunnelRefusal.malformed);
  assert.equal(b.receive(new Uint8Array([9, 0, 0, 0, 1, 2]), A, 4793), TunnelRefusal.malformed);
  const s = b.t.stats(b.peer(a));
  assert.equal(s.replays, 2);
  assert.equal(s.authFailures, 1);
});

test('tunnels: an unknown host, or one not told this host\'s key, gets no answer', () => {
  const net = new Net();
  const a = net.host(A);
  const b = net.host(B);
  const stranger = net.host(C);
  b.knows(a);
  a.knows(b);
  stranger.knows(b); // it knows b's key (mac1 passes); b does not know it
  stranger.send(b, 'let me in');
  net.deliver();
  assert.deepEqual(b.got, []);
  assert.deepEqual(b.refused, [TunnelRefusal.handshakeRefused]);
  assert.equal(net.wire.length, 0, 'nothing sent back');
  // Without b's key, an initiation's mac1 is wrong: refused before any Diffie-Hellman.
  const junk = randomBytes(148);
  junk[0] = 1;
  junk[1] = junk[2] = junk[3] = 0;
  assert.equal(b.receive(junk, C, 4793), TunnelRefusal.handshakeRefused);
  net.deliver();
  assert.equal(net.wire.length, 0);
});

test('tunnels: a handshake flood gets cookie replies, not Diffie-Hellmans; sessions in use carry on and a real peer still gets through', () => {
  const { net, a, b } = pair({ loadThreshold: 10 });
  a.send(b, 'before');
  net.deliver();
  // 1,000 initiations a second from one address, with a valid mac1 (the flooder knows b's
  // public key) and garbage for the rest.
  const key = mac1Key(b.keys.publicKey);
  const forged = () => {
    const m = randomBytes(148);
    m[0] = 1;
    m[1] = m[2] = m[3] = 0;
    mac16(key, m.subarray(0, 116)).copy(m, 116);
    return m;
  };
  let cookies = 0;
  for (let i = 0; i < 1000; i++) {
    net.clock += 1;
    b.receive(forged(), C, 5000);
    b.t.drain((data, to) => {
      assert.equal(to, C, 'only ever answered at the source address');
      assert.equal(data.length, 52);
      cookies++;
    });
    if (i % 10 === 0) {
      a.send(b, `during${i}`);
      net.deliver();
    }
  }
  assert.equal(b.got.length, 101, 'the session in use carried everything');
  assert.ok(cookies < 30, `cookie replies rate limited per source: ${cookies}`);
  assert.ok(b.refused.filter((r) => r === TunnelRefusal.rateLimited).length > 900);
  // A new handshake from a real peer while under load: a cookie first, then through.
  const c = net.host(C + 1, { loadThreshold: 10 });
  c.knows(b);
  b.knows(a, c);
  c.send(b, 'new');
  net.deliver(); // handshake messages each way: b, still under load, answers with cookies
  // The flood goes on for 15 s (100 a second); the hosts' timers run each second.
  for (let i = 0; i < 1500; i++) {
    net.clock += 10;
    b.receive(forged(), C, 5000);
    b.t.drain(() => {});
    if (i % 100 === 0) {
      b.t.tick();
      c.t.tick();
      net.deliver();
    }
  }
  assert.ok(b.got.includes('new'), 'through with the cookie');
});

test('tunnels: a peer removed is cut off at once; authenticated datagrams from a new address move the peer', () => {
  const { net, a, b } = pair();
  a.send(b, 'x');
  net.deliver();
  a.sendingAddress = 0x0a630063; // a's underlay address changed
  a.send(b, 'roamed');
  net.deliver();
  assert.equal(b.peer(a).address, 0x0a630063);
  assert.equal(b.t.stats(b.peer(a)).roams, 1);
  // Moving again, a announces itself: b follows before a has anything to send.
  a.sendingAddress = 0x0a630064;
  a.t.announce();
  net.deliver();
  assert.equal(b.peer(a).address, 0x0a630064);
  a.sendingAddress = 0x0a630063;
  a.t.announce();
  net.deliver();
  // A forged datagram from elsewhere does not move it.
  a.send(b, 'y');
  const d = net.wire.splice(0)[0].data;
  d[d.length - 1] ^= 1;
  b.receive(d, 0x0a6300ee, 4793);
  assert.equal(b.peer(a).address, 0x0a630063);
  b.knows();
  a.send(b, 'after');
  net.deliver();
  assert.deepEqual(b.got, ['x', 'roamed']);
  assert.ok(b.refused.includes(TunnelRefusal.unknownSession));
});

test('tunnels: a session past its time is not used; the next frame starts a handshake', () => {
  const { net, a, b } = pair({ rekeyAfterMs: 1000 });
  a.send(b, 'x');
  net.deliver();
  net.clock += 1600;
  a.t.tick();
  b.t.tick();
  assert.equal(a.t.stats(a.peer(b)).session, null, 'forgotten after 1.5 times the rekey time');
  assert.equal(a.send(b, 'later'), 0, 'held');
  net.deliver();
  assert.deepEqual(b.got, ['x', 'later']);
});

test('tunnels: a host told of its peer before the peer is told of it still gets a session at once, whichever key wins', () => {
  for (let run = 0; run < 8; run++) {
    const net = new Net();
    const a = net.host(A);
    const b = net.host(B);
    a.knows(b);
    net.deliver(); // a's initiation: b does not know a yet, and refuses it
    assert.deepEqual(b.refused, [TunnelRefusal.handshakeRefused]);
    b.knows(a);
    net.deliver();
    assert.ok(a.send(b, 'now') > 0, `run ${run}: a has a session`);
    assert.ok(b.send(a, 'back') > 0, `run ${run}: b has one`);
    net.deliver();
    assert.deepEqual([b.got, a.got], [['now'], ['back']]);
  }
});

test('tunnels: 20,000 hostile datagrams (random, truncated, with real headers and indexes) are refused with a reason each, never thrown on, and the session carries on', () => {
  const { net, a, b } = pair({ loadThreshold: 1_000_000 });
  a.send(b, 'x');
  net.deliver();
  a.send(b, 'template');
  const template = net.wire.splice(0)[0].data;
  // A fixed seed: the same datagrams every run.
  let seed = 0x5eed;
  const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
  const allowed = new Set<number>([TUNNEL_HANDLED, ...Object.values(TunnelRefusal)]);
  for (let i = 0; i < 20_000; i++) {
    const kind = i % 4;
    let d: Uint8Array;
    if (kind === 0) {
      d = new Uint8Array(Math.floor(rand() * 200)).map(() => Math.floor(rand() * 256));
    } else if (kind === 1) {
      d = Uint8Array.from(template.subarray(0, Math.floor(rand() * template.length))); // cut short
    } else if (kind === 2) {
      d = Uint8Array.from(template); // a real session's header, a byte of it changed
      d[16 + Math.floor(rand() * (d.length - 16))] ^= 1 + Math.floor(rand() * 255);
    } else {
      d = new Uint8Array([148, 92, 52, 32][Math.floor(rand() * 4)]).map(() => Math.floor(rand() * 256));
      d[0] = 1 + Math.floor(rand() * 4);
      d[1] = d[2] = d[3] = 0;
    }
    const r = b.receive(d, C, 1 + Math.floor(rand() * 65535));
    assert.ok(allowed.has(r) || r === 0, `datagram ${i} (kind ${kind}): ${r}`);
    b.t.drain(() => {});
  }
  assert.deepEqual(b.got, ['x'], 'nothing forged was delivered (the template itself never was)');
  a.send(b, 'after');
  net.deliver();
  assert.deepEqual(b.got.at(-1), 'after');
});

test('tunnels: a replayed handshake initiation makes no session and disturbs none, the latest one or an older one', () => {
  const { net, a, b } = pair({ rekeyAfterMs: 1000 });
  a.send(b, 'x');
  net.deliver();
  // The session's initiator replaces it after 1 s (the responder would wait 1.25 s): the
  // initiation it sends is captured on the way.
  const initiations: Array<{ data: Uint8Array; from: Host; to: Host }> = [];
  const rekey = (ms: number) => {
    net.clock += ms;
    a.send(b, 'a');
    b.send(a, 'b');
    net.collect();
    const d = net.wire.find((w) => w.data[0] === 1)!;
    initiations.push({ data: Uint8Array.from(d.data), from: d.from, to: d.from === a ? b : a });
    net.deliver();
  };
  rekey(1100);
  const { from, to } = initiations[0];
  const before = to.t.stats(to.peer(from));
  const replay = (i: number) => {
    const r = to.receive(initiations[i].data, from.sendingAddress, from.port);
    let answered = 0;
    to.t.drain(() => answered++);
    assert.equal(answered, 0, 'nothing sent in answer: no response, no second session');
    return r;
  };

  // The same bytes again, at once and later.
  assert.equal(replay(0), TUNNEL_HANDLED);
  net.clock += 500;
  assert.equal(replay(0), TUNNEL_HANDLED);
  assert.deepEqual(to.t.stats(to.peer(from)), { ...before, session: { ...before.session!, ageMs: before.session!.ageMs + 500 } }, 'its session is the one it had');
  assert.ok(from.send(to, 'still') > 0 && to.send(from, 'both ways') > 0);
  net.deliver();
  assert.deepEqual([to.got.at(-1), from.got.at(-1)], ['still', 'both ways']);

  // After the next rotation (its session 1.1 s old), the first initiation is an old one:
  // refused, counted.
  rekey(600);
  assert.equal(initiations[1].from, from);
  const rotations = to.t.stats(to.peer(from)).rotations;
  assert.equal(replay(0), TunnelRefusal.replay);
  assert.equal(replay(1), TUNNEL_HANDLED);
  const after = to.t.stats(to.peer(from));
  assert.equal(after.replays, 1);
  assert.equal(after.rotations, rotations);
  assert.ok(from.send(to, 'and still') > 0);
  net.deliver();
  assert.equal(to.got.at(-1), 'and still');
  assert.deepEqual([to.refused, from.refused], [[TunnelRefusal.replay], []], 'the old initiation the only refusal');
});
