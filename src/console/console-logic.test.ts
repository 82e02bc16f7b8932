// The web console's logic that needs no browser: search, focus, layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { search, type Searchable } from './search.js';
import { neighbourhood, type GraphElement } from './focus.js';
import { arrange, grid, overlaps, packRows, rects, ring, RING_UP_TO, type Size } from './layout.js';

const items: Searchable[] = [
  { id: 'host:h10', kind: 'host', name: 'h10', also: ['192.0.2.10'], shownAs: 'host:h10' },
  { id: 'host:h1', kind: 'host', name: 'h1', also: ['192.0.2.1'], shownAs: 'host:h1' },
  { id: 'host:h2', kind: 'host', name: 'h2', also: ['192.0.2.2'], shownAs: 'host:h2' },
  { id: 'net:blue', kind: 'network', name: 'blue', also: [], shownAs: 'net:blue' },
  { id: 'port:web-h1', kind: 'port', name: 'web-h1', also: ['10.0.0.7/24', '02:00:00:00:00:07'], shownAs: 'host:h1' },
  { id: 'router:r1', kind: 'router', name: 'r1', also: [], shownAs: 'router:r1' },
];

test('search: the name itself first, then names beginning with it, containing it, then addresses', () => {
  assert.deepEqual(search(items, 'h1').map((i) => i.id), ['host:h1', 'host:h10', 'port:web-h1']);
  assert.deepEqual(search(items, 'H').map((i) => i.id), ['host:h1', 'host:h2', 'host:h10', 'port:web-h1']);
  assert.deepEqual(search(items, 'BLU').map((i) => i.id), ['net:blue']);
  assert.deepEqual(search(items, '10.0.0.7').map((i) => i.id), ['port:web-h1']);
  assert.deepEqual(search(items, '192.0.2.1').map((i) => i.id), ['host:h1', 'host:h10']);
  assert.deepEqual(search(items, '02:00').map((i) => i.id), ['port:web-h1']);
  assert.deepEqual(search(items, '  '), []);
  assert.deepEqual(search(items, 'nothing'), []);
});

// h1 (vm1 on blue), h2 (vm2 on blue), h3 (vm3 on red), r1 on both, tunnels h1-h2, h1-h3.
const lab: GraphElement[] = [
  { id: 'host:h1' }, { id: 'host:h2' }, { id: 'host:h3' },
  { id: 'port:vm1', parent: 'host:h1' }, { id: 'port:vm2', parent: 'host:h2' }, { id: 'port:vm3', parent: 'host:h3' },
  { id: 'net:blue' }, { id: 'net:red' }, { id: 'router:r1' },
  { id: 'att:vm1:blue', source: 'port:vm1', target: 'net:blue' },
  { id: 'att:vm2:blue', source: 'port:vm2', target: 'net:blue' },
  { id: 'att:vm3:red', source: 'port:vm3', target: 'net:red' },
  { id: 'rt:r1:blue', source: 'router:r1', target: 'net:blue' },
  { id: 'rt:r1:red', source: 'router:r1', target: 'net:red' },
  { id: 'tun:h1:h2', source: 'host:h1', target: 'host:h2' },
  { id: 'tun:h1:h3', source: 'host:h1', target: 'host:h3' },
  { id: 'tun:h2:h3', source: 'host:h2', target: 'host:h3' },
];
const kept = (id: string, els = lab) => [...neighbourhood(els, id)].sort();

test('focus on a network: its ports and their hosts, its routers, the tunnels between its hosts', () => {
  assert.deepEqual(kept('net:blue'), ['att:vm1:blue', 'att:vm2:blue', 'host:h1', 'host:h2', 'net:blue', 'port:vm1', 'port:vm2', 'router:r1', 'rt:r1:blue', 'tun:h1:h2']);
});

test('focus on a host: its ports, their networks, the hosts it has tunnels to', () => {
  // Not the tunnel between its peers h1 and h2.
  assert.deepEqual(kept('host:h3'), ['att:vm3:red', 'host:h1', 'host:h2', 'host:h3', 'net:red', 'port:vm3', 'tun:h1:h3', 'tun:h2:h3']);
  assert.deepEqual(kept('host:h2'), ['att:vm2:blue', 'host:h1', 'host:h2', 'host:h3', 'net:blue', 'port:vm2', 'tun:h1:h2', 'tun:h2:h3']);
  assert.deepEqual(kept('port:vm2'), ['att:vm2:blue', 'host:h2', 'net:blue', 'port:vm2']);
  assert.deepEqual(kept('router:r1'), ['net:blue', 'net:red', 'router:r1', 'rt:r1:blue', 'rt:r1:red']);
  assert.deepEqual(kept('host:nope'), []);
});

test('focus with ports not drawn: hosts join networks directly', () => {
  const big: GraphElement[] = [{ id: 'host:h1' }, { id: 'host:h2' }, { id: 'host:h3' }, { id: 'net:n0' }, { id: 'net:n1' },
    { id: 'att:h1:n0', source: 'host:h1', target: 'net:n0' }, { id: 'att:h2:n0', source: 'host:h2', target: 'net:n0' },
    { id: 'att:h2:n1', source: 'host:h2', target: 'net:n1' }, { id: 'att:h3:n1', source: 'host:h3', target: 'net:n1' }];
  assert.deepEqual(kept('net:n0', big), ['att:h1:n0', 'att:h2:n0', 'host:h1', 'host:h2', 'net:n0']);
  assert.deepEqual(kept('host:h2', big), ['att:h2:n0', 'att:h2:n1', 'host:h2', 'net:n0', 'net:n1']);
  // The tunnels between a network's hosts are the network's.
  const tunnels = [...big, { id: 'tun:h1:h2', source: 'host:h1', target: 'host:h2' }, { id: 'tun:h2:h3', source: 'host:h2', target: 'host:h3' }];
  assert.deepEqual(kept('net:n0', tunnels), ['att:h1:n0', 'att:h2:n0', 'host:h1', 'host:h2', 'net:n0', 'tun:h1:h2']);
  assert.deepEqual(kept('host:h1', tunnels), ['att:h1:n0', 'att:h2:n0', 'host:h1', 'host:h2', 'net:n0', 'tun:h1:h2']);
});

/** Boxes of sizes like the console's: hosts wider than tall with labels, some much wider. */
function sizes(n: number, prefix: string, seed: number): Size[] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, w: 40 + rnd() * 300, h: 30 + rnd() * 200 }));
}

function assertApart(at: Map<string, { x: number; y: number }>, boxes: Size[]): void {
  assert.equal(at.size, boxes.length, 'every box placed');
  const found = overlaps(rects(at, new Map(boxes.map((b) => [b.id, b]))));
  assert.deepEqual(found, [], `overlapping: ${found.map((p) => p.join('/')).join(' ')}`);
}

test('layout: no two boxes overlap, on a ring or in a grid, whatever their sizes', () => {
  for (const [h, o] of [[1, 0], [1, 3], [2, 1], [3, 3], [7, 2], [12, 20], [RING_UP_TO, 5]]) {
    for (const seed of [1, 2, 3]) {
      const hosts = sizes(h, 'h', seed);
      const others = sizes(o, 'n', seed + 7);
      const r = ring(hosts, others, 1.6);
      assert.ok(r, `a ring for ${h} hosts`);
      assertApart(r, [...hosts, ...others]);
      assertApart(arrange(hosts, others, 1.6), [...hosts, ...others]);
    }
  }
  for (const [h, o] of [[31, 0], [100, 20], [1000, 50]]) {
    const hosts = sizes(h, 'h', h);
    const others = sizes(o, 'n', o);
    assertApart(grid(hosts, others, 1.6), [...hosts, ...others]);
  }
});

test('layout: a grid is in reading order, a ring clockwise from the top', () => {
  const hosts = sizes(50, 'h', 5).map((b) => ({ ...b, h: 40 }));
  const at = grid(hosts, [], 1.6);
  const order = [...at].sort((a, b) => a[1].y - b[1].y || a[1].x - b[1].x).map(([id]) => id);
  assert.deepEqual(order, hosts.map((b) => b.id));
  const rows = new Set([...at.values()].map((p) => p.y));
  assert.ok(rows.size > 3 && rows.size < 20, `${rows.size} rows for 50 hosts`);
  const r = ring(sizes(4, 'h', 1), [], 1.6)!;
  const angles = [...r.values()].map((p) => Math.round(Math.atan2(p.x, -p.y) / (Math.PI / 2)));
  assert.deepEqual(angles, [0, 1, 2, -1], 'top, right, bottom, left: clockwise from the top');
  const packed = packRows([{ id: 'a', w: 10, h: 10 }, { id: 'b', w: 10, h: 20 }, { id: 'c', w: 10, h: 10 }], 35, 5);
  assert.deepEqual([...packed.at.values()], [{ x: 5, y: 5 }, { x: 20, y: 10 }, { x: 5, y: 30 }]);
  assert.deepEqual([packed.w, packed.h], [25, 35]);
});
