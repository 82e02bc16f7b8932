/**
 * Focus in the web console: one node of the graph and its neighbours, everything else
 * hidden. On the graph's own terms (nodes, their compound parents, edges), so it holds for
 * whatever the graph draws:
 *
 * - a network: its ports (or, ports not drawn, the hosts they are on) with their hosts, the
 *   routers on it, and the tunnels between those hosts;
 * - a host: its ports, the networks they are on, the hosts it has tunnels to;
 * - a port: its host and its networks; a router: its networks.
 *
 * That is: the node and its children, whatever an edge joins them to, the parents of all
 * of these, and the edges between what is kept, but for edges of the kind that joined two
 * neighbours to the focus (a tunnel between two of a host's peers is not the host's). An
 * edge's kind is its id's prefix (`tun:`, `att:`, `rt:`).
 */
export interface GraphElement {
  id: string;
  parent?: string;
  source?: string;
  target?: string;
}

/** The ids of the elements kept when focusing on `id` (nothing when there is no such node). */
export function neighbourhood(elements: readonly GraphElement[], id: string): Set<string> {
  const nodes = new Map<string, GraphElement>();
  const children = new Map<string, string[]>();
  const adjacent = new Map<string, string[]>();
  const edges: GraphElement[] = [];
  for (const e of elements) {
    if (e.source !== undefined && e.target !== undefined) {
      edges.push(e);
      push(adjacent, e.source, e.target);
      push(adjacent, e.target, e.source);
    } else {
      nodes.set(e.id, e);
      if (e.parent !== undefined) push(children, e.parent, e.id);
    }
  }
  const keep = new Set<string>();
  if (!nodes.has(id)) return keep;
  const core = new Set([id, ...(children.get(id) ?? [])]);
  for (const n of core) keep.add(n);
  // Each neighbour with the kinds of edge that join it to the focus.
  const joinedBy = new Map<string, Set<string>>();
  for (const e of edges) {
    const [a, b] = [e.source!, e.target!];
    for (const [from, to] of [[a, b], [b, a]]) {
      if (!core.has(from) || core.has(to)) continue;
      keep.add(to);
      if (!joinedBy.has(to)) joinedBy.set(to, new Set());
      joinedBy.get(to)!.add(kind(e.id));
    }
  }
  for (const n of [...keep]) {
    for (let p = nodes.get(n)?.parent; p !== undefined && !keep.has(p); p = nodes.get(p)?.parent) keep.add(p);
  }
  for (const e of edges) {
    const [a, b] = [e.source!, e.target!];
    if (!keep.has(a) || !keep.has(b)) continue;
    const k = kind(e.id);
    if (!core.has(a) && !core.has(b) && joinedBy.get(a)?.has(k) && joinedBy.get(b)?.has(k)) continue;
    keep.add(e.id);
  }
  return keep;
}

const kind = (id: string) => id.slice(0, id.indexOf(':') + 1);

function push(m: Map<string, string[]>, k: string, v: string): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}
