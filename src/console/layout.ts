/**
 * Where the web console puts the boxes of its graph, computed from their sizes with their
 * labels (as the browser measured them), so that no box or label ever covers another:
 *
 * - up to RING_UP_TO hosts, the hosts on a ring in natural order (clockwise from the top),
 *   networks and routers packed in its middle; tunnels are then chords of the ring and do
 *   not cross the hosts, and every port reaches its networks inward. The ring grows until
 *   nothing overlaps, checked box against box.
 * - more hosts, a grid: networks and routers in rows on top, the hosts below in rows, in
 *   reading order.
 *
 * Pure geometry on plain sizes: no browser, no cytoscape. Positions are the centres of the
 * boxes (label included); the console moves each node so that its box lands there.
 */
export interface Size { id: string; w: number; h: number }
export interface Point { x: number; y: number }
export interface Rect { x1: number; y1: number; x2: number; y2: number }

/** Hosts drawn on a ring up to this many; more go in a grid. */
export const RING_UP_TO = 30;
/** The space left between any two boxes. */
export const GAP = 24;

/** Boxes left to right in the order given, wrapping at `maxWidth`, each row's boxes aligned
 * at their top; the block's top left corner at (0, 0). */
export function packRows(boxes: readonly Size[], maxWidth: number, gap = GAP): { at: Map<string, Point>; w: number; h: number } {
  const at = new Map<string, Point>();
  let x = 0;
  let y = 0;
  let rowH = 0;
  let w = 0;
  for (const b of boxes) {
    if (x > 0 && x + b.w > maxWidth) {
      y += rowH + gap;
      x = 0;
      rowH = 0;
    }
    at.set(b.id, { x: x + b.w / 2, y: y + b.h / 2 });
    w = Math.max(w, x + b.w);
    x += b.w + gap;
    rowH = Math.max(rowH, b.h);
  }
  return { at, w, h: boxes.length === 0 ? 0 : y + rowH };
}

/** The width to wrap boxes at for their block to be about `aspect` (width / height). */
export function rowWidthFor(boxes: readonly Size[], aspect: number, gap = GAP): number {
  const area = boxes.reduce((a, b) => a + (b.w + gap) * (b.h + gap), 0);
  const widest = boxes.reduce((a, b) => Math.max(a, b.w), 0);
  return Math.max(widest, Math.sqrt(area * Math.max(aspect, 0.2)));
}

/** Centres for `hosts` and `others` (networks, routers): a ring or a grid, as above. */
export function arrange(hosts: readonly Size[], others: readonly Size[], aspect: number, gap = GAP): Map<string, Point> {
  return hosts.length <= RING_UP_TO ? ring(hosts, others, aspect, gap) ?? grid(hosts, others, aspect, gap) : grid(hosts, others, aspect, gap);
}

/** Networks and routers on top, hosts below, each block in rows, centred on each other. */
export function grid(hosts: readonly Size[], others: readonly Size[], aspect: number, gap = GAP): Map<string, Point> {
  const width = Math.max(rowWidthFor(hosts, aspect, gap), rowWidthFor(others, aspect * 3, gap));
  const top = packRows(others, width, gap);
  const bottom = packRows(hosts, width, gap);
  const at = new Map<string, Point>();
  const dxTop = (Math.max(top.w, bottom.w) - top.w) / 2;
  const dxBottom = (Math.max(top.w, bottom.w) - bottom.w) / 2;
  const dyBottom = top.h > 0 ? top.h + 3 * gap : 0;
  for (const [id, p] of top.at) at.set(id, { x: p.x + dxTop, y: p.y });
  for (const [id, p] of bottom.at) at.set(id, { x: p.x + dxBottom, y: p.y + dyBottom });
  return at;
}

/** Hosts on a ring around the others' block, the ring grown until nothing overlaps; null
 * if it never stops overlapping (it does; the grid is the fallback). */
export function ring(hosts: readonly Size[], others: readonly Size[], aspect: number, gap = GAP): Map<string, Point> | null {
  const middle = packRows(others, rowWidthFor(others, aspect, gap), gap);
  const at = new Map<string, Point>();
  for (const [id, p] of middle.at) at.set(id, { x: p.x - middle.w / 2, y: p.y - middle.h / 2 });
  if (hosts.length === 0) return at;
  const half = (b: { w: number; h: number }) => Math.hypot(b.w, b.h) / 2;
  const around = hosts.reduce((a, b) => a + Math.max(b.w, b.h) + gap, 0) / (2 * Math.PI);
  let r = Math.max(around, (others.length > 0 ? half(middle) + gap : 0) + Math.max(...hosts.map((b) => Math.min(b.w, b.h) / 2)));
  const sizes = new Map([...hosts, ...others].map((b) => [b.id, b]));
  for (let tries = 0; tries < 80; tries++) {
    hosts.forEach((b, i) => {
      const angle = -Math.PI / 2 + (2 * Math.PI * i) / hosts.length;
      at.set(b.id, { x: r * Math.cos(angle), y: r * Math.sin(angle) });
    });
    if (overlaps(rects(at, sizes), gap / 2).length === 0) return at;
    r *= 1.1;
  }
  return null;
}

/** The box of each id, from its centre and size. */
export function rects(at: ReadonlyMap<string, Point>, sizes: ReadonlyMap<string, { w: number; h: number }>): Map<string, Rect> {
  const out = new Map<string, Rect>();
  for (const [id, p] of at) {
    const s = sizes.get(id)!;
    out.set(id, { x1: p.x - s.w / 2, y1: p.y - s.h / 2, x2: p.x + s.w / 2, y2: p.y + s.h / 2 });
  }
  return out;
}

/** Every pair of boxes closer than `margin` (0: that intersect), by id. */
export function overlaps(boxes: ReadonlyMap<string, Rect>, margin = 0): Array<[string, string]> {
  const list = [...boxes].sort((a, b) => a[1].x1 - b[1].x1);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < list.length; i++) {
    const [a, p] = list[i];
    for (let k = i + 1; k < list.length && list[k][1].x1 < p.x2 + margin; k++) {
      const [b, q] = list[k];
      if (q.y1 < p.y2 + margin && p.y1 < q.y2 + margin) out.push([a, b]);
    }
  }
  return out;
}
