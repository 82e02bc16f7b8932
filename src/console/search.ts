/**
 * The web console's search box: what a typed text finds among the hosts, ports, networks
 * and routers, best first. A name that is the text comes first, then names that begin with
 * it, then names that contain it, then things whose addresses (a host's underlay address,
 * a port's IPs and MAC) are or contain it; within each, hosts, networks, routers, ports, in
 * natural order. Case does not matter.
 */
import { naturalCompare } from './natural.js';

export type Kind = 'host' | 'network' | 'router' | 'port';

export interface Searchable {
  /** What it is, as the console names it: `host:h1`, `port:vm1`, `net:blue`, `router:r1`. */
  id: string;
  kind: Kind;
  name: string;
  /** Addresses it is also found by. */
  also: string[];
  /** The node of the graph that shows it: itself, or (a port not drawn) its host. */
  shownAs: string;
}

const KIND_ORDER: Record<Kind, number> = { host: 0, network: 1, router: 2, port: 3 };

/** Everything `query` finds, best first; nothing for an empty query. */
export function search(items: readonly Searchable[], query: string): Searchable[] {
  const q = query.trim().toLowerCase();
  if (q === '') return [];
  const found: Array<{ item: Searchable; rank: number }> = [];
  for (const item of items) {
    const rank = rankOf(item, q);
    if (rank !== null) found.push({ item, rank });
  }
  found.sort((x, y) => x.rank - y.rank || KIND_ORDER[x.item.kind] - KIND_ORDER[y.item.kind] || naturalCompare(x.item.name, y.item.name));
  return found.map((f) => f.item);
}

function rankOf(item: Searchable, q: string): number | null {
  const name = item.name.toLowerCase();
  if (name === q) return 0;
  if (name.startsWith(q)) return 1;
  if (name.includes(q)) return 2;
  const also = item.also.map((a) => a.toLowerCase());
  if (also.some((a) => a === q || a.split('/')[0] === q)) return 3;
  if (also.some((a) => a.includes(q))) return 4;
  return null;
}
