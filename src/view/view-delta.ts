/**
 * A delta of a host view: what changed in it from one revision of the watch to the next,
 * keyed so that a one-port change in a network of 64,000 ports is one entry (see
 * src/controller/watch.ts for the protocol). Both sides import this module: the controller
 * builds deltas (src/controller/view-feed.ts), the agent applies them to its copy of the
 * view (`applyDelta`) and hands the resulting whole view to its reconciler.
 *
 * A copy is a view and, per network, the port names of its neighbors (parallel to
 * `neighbors`; a neighbor of another host carries no port name, so the full state sends
 * them beside the view). Everything keyed is kept in the order the controller's views have
 * it, so that a copy with every delta applied equals the full view at the same revision:
 * networks and neighbors sorted by name, a host's own ports sorted by name and then its
 * uplinks, groups and address sets sorted by name.
 */
import type { FirewallRuleState, HostView, NatState, Neighbor, NetworkState, PortState } from './host-view.js';

/** A network's change: whole (new in the view, or its record changed), or its header (all
 * but the neighbors) and its neighbors by port name. */
export type NetworkDelta = { whole: NetworkState; keys: string[] } | NetworkChanges;
/** What changed of a network the host has: its header, and its neighbors by port name. */
export type NetworkChanges = { header?: Omit<NetworkState, 'neighbors'>; neighbors?: { set?: Array<[string, Neighbor]>; remove?: string[] } };

export interface ViewDelta {
  type: 'delta';
  /** The revision this delta applies on: the last one the agent applied. */
  from: number;
  revision: number;
  networks?: Record<string, NetworkDelta>;
  removeNetworks?: string[];
  /** Own ports and uplinks, added or changed (whole), and removed by name. */
  ports?: { set?: PortState[]; remove?: string[] };
  /** The external gateways this host holds, whole ([]: none any more). */
  nat?: NatState[];
  securityGroups?: { set?: Record<string, FirewallRuleState[]>; remove?: string[] };
  /** Address sets by their parts (GroupParts): a group's whole (`set`), or, by network, its
   * ports' addresses set and removed by port name (`parts`); the agent makes each set again
   * from its parts. */
  addressSets?: {
    set?: Record<string, GroupParts>;
    remove?: string[];
    parts?: Record<string, Record<string, { set?: Array<[string, string[]]>; remove?: string[] }>>;
  };
}

/** A group's address set by network and port, in view order (networks sorted, ports sorted):
 * the set is the addresses in that order, each once. */
export type GroupParts = Record<string, Array<[string, string[]]>>;

/** A view, its neighbors' port names per network, and its address sets' parts by group. */
export interface ViewCopy {
  view: HostView;
  keys: Record<string, string[]>;
  groups: Record<string, GroupParts>;
}

/** A group's address set from its parts. */
export function addressSetOf(parts: GroupParts): string[] {
  const out = new Set<string>();
  for (const n of Object.keys(parts).sort(byName)) for (const [, addresses] of parts[n]) for (const a of addresses) out.add(a);
  return [...out];
}

/** A delta that does not apply to the copy: the agent asks for a full state. */
export class DeltaRefused extends Error {
  readonly code = 'delta-refused';
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const isUplink = (p: PortState) => p.backend.type === 'uplink';
/** A host's ports in view order: its own by name, then its uplinks by name. */
const portOrder = (a: PortState, b: PortState) => (isUplink(a) !== isUplink(b) ? (isUplink(a) ? 1 : -1) : byName(a.name, b.name));

/** Index of `key` in the sorted `keys`, or where it would go (as -(index) - 1). */
function search(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < key) lo = mid + 1;
    else if (keys[mid] > key) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const names = (v: unknown, what: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new DeltaRefused(`${what} is not a list of names`);
  return v;
};

/** Applies a keyed record change (`set`, then `remove` naming existing entries), in name order. */
function applyRecord<T>(now: Record<string, T> | undefined, change: { set?: Record<string, T>; remove?: string[] } | undefined, what: string): Record<string, T> | undefined {
  if (change === undefined) return now;
  if (!isObject(change)) throw new DeltaRefused(`${what} is not an object`);
  const out = new Map(Object.entries(now ?? {}));
  for (const k of names(change.remove, `${what}.remove`)) {
    if (!out.delete(k)) throw new DeltaRefused(`${what}.remove names ${k}, which this host does not have`);
  }
  if (change.set !== undefined && !isObject(change.set)) throw new DeltaRefused(`${what}.set is not an object`);
  for (const [k, v] of Object.entries(change.set ?? {})) out.set(k, v as T);
  if (out.size === 0) return undefined;
  return Object.fromEntries([...out].sort(([a], [b]) => byName(a, b)));
}

/**
 * Applies `delta` to `copy` and returns the new copy; `copy` is left as it was (what did not
 * change is shared). Throws DeltaRefused when the delta does not apply cleanly: it is not
 * on the copy's revision (`from`), it is malformed, or it removes or changes what the copy
 * does not have.
 */
export function applyDelta(copy: ViewCopy, revision: number, delta: unknown): ViewCopy {
  if (!isObject(delta) || delta.type !== 'delta') throw new DeltaRefused('not a delta');
  const d = delta as unknown as ViewDelta;
  if (!Number.isFinite(d.from) || !Number.isFinite(d.revision)) throw new DeltaRefused('a delta without its revisions (from, revision)');
  if (d.from !== revision) throw new DeltaRefused(`a delta from revision ${d.from}, but this host is at revision ${revision}`);
  if (d.revision <= d.from) throw new DeltaRefused(`a delta to revision ${d.revision}, not after ${d.from}`);
  const networks = new Map(copy.view.networks.map((n) => [n.name, n]));
  const keys = new Map(Object.entries(copy.keys));
  for (const n of names(d.removeNetworks, 'removeNetworks')) {
    if (!networks.delete(n)) throw new DeltaRefused(`removeNetworks names network ${n}, which this host does not have`);
    keys.delete(n);
  }
  if (d.networks !== undefined && !isObject(d.networks)) throw new DeltaRefused('networks is not an object');
  for (const [name, change] of Object.entries(d.networks ?? {})) {
    if (!isObject(change)) throw new DeltaRefused(`networks.${name} is not an object`);
    if ('whole' in change) {
      const c = change as { whole: NetworkState; keys: string[] };
      if (!isObject(c.whole) || c.whole.name !== name) throw new DeltaRefused(`networks.${name}.whole is not network ${name}`);
      const k = names(c.keys, `networks.${name}.keys`);
      if (k.length !== (c.whole.neighbors ?? []).length) throw new DeltaRefused(`networks.${name}: ${k.length} keys for ${(c.whole.neighbors ?? []).length} neighbors`);
      networks.set(name, c.whole);
      keys.set(name, k);
      continue;
    }
    const had = networks.get(name);
    if (!had) throw new DeltaRefused(`networks.${name} changes network ${name}, which this host does not have`);
    const c = change as { header?: Omit<NetworkState, 'neighbors'>; neighbors?: { set?: Array<[string, Neighbor]>; remove?: string[] } };
    let neighbors = had.neighbors ?? [];
    let k = keys.get(name) ?? [];
    if (c.neighbors !== undefined) {
      if (!isObject(c.neighbors)) throw new DeltaRefused(`networks.${name}.neighbors is not an object`);
      neighbors = [...neighbors];
      k = [...k];
      for (const key of names(c.neighbors.remove, `networks.${name}.neighbors.remove`)) {
        const i = search(k, key);
        if (i < 0) throw new DeltaRefused(`networks.${name}.neighbors.remove names port ${key}, which this host does not have there`);
        neighbors.splice(i, 1);
        k.splice(i, 1);
      }
      const set = c.neighbors.set ?? [];
      if (!Array.isArray(set)) throw new DeltaRefused(`networks.${name}.neighbors.set is not a list`);
      for (const entry of set) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string' || !isObject(entry[1])) throw new DeltaRefused(`networks.${name}.neighbors.set has an entry that is not [port, neighbor]`);
        const i = search(k, entry[0]);
        if (i >= 0) neighbors[i] = entry[1] as unknown as Neighbor;
        else {
          neighbors.splice(-i - 1, 0, entry[1] as unknown as Neighbor);
          k.splice(-i - 1, 0, entry[0]);
        }
      }
    }
    if (c.header !== undefined && (!isObject(c.header) || c.header.name !== name)) throw new DeltaRefused(`networks.${name}.header is not network ${name}'s`);
    const header = c.header ?? (({ neighbors: _n, ...rest }) => rest)(had);
    networks.set(name, { ...header, neighbors } as NetworkState);
    keys.set(name, k);
  }
  let ports = copy.view.ports;
  if (d.ports !== undefined) {
    if (!isObject(d.ports)) throw new DeltaRefused('ports is not an object');
    const byPort = new Map(ports.map((p) => [p.name, p]));
    for (const p of names(d.ports.remove, 'ports.remove')) {
      if (!byPort.delete(p)) throw new DeltaRefused(`ports.remove names port ${p}, which this host does not have`);
    }
    const set = d.ports.set ?? [];
    if (!Array.isArray(set) || !set.every((p) => isObject(p) && typeof p.name === 'string' && isObject(p.backend))) throw new DeltaRefused('ports.set is not a list of ports');
    for (const p of set) byPort.set(p.name, p);
    ports = [...byPort.values()].sort(portOrder);
  }
  let nat = copy.view.nat;
  if (d.nat !== undefined) {
    if (!Array.isArray(d.nat)) throw new DeltaRefused('nat is not a list');
    nat = d.nat.length ? d.nat : undefined;
  }
  const securityGroups = applyRecord(copy.view.securityGroups, d.securityGroups, 'securityGroups');
  let groups = copy.groups;
  let addressSets = copy.view.addressSets;
  if (d.addressSets !== undefined) {
    const a = d.addressSets;
    if (!isObject(a)) throw new DeltaRefused('addressSets is not an object');
    const next = new Map(Object.entries(groups));
    const touched = new Set<string>();
    for (const g of names(a.remove, 'addressSets.remove')) {
      if (!next.delete(g)) throw new DeltaRefused(`addressSets.remove names group ${g}, which this host has no address set of`);
    }
    if (a.set !== undefined && !isObject(a.set)) throw new DeltaRefused('addressSets.set is not an object');
    for (const [g, parts] of Object.entries(a.set ?? {})) {
      if (!isObject(parts) || !Object.values(parts).every(Array.isArray)) throw new DeltaRefused(`addressSets.set.${g} is not a group's parts`);
      next.set(g, parts as GroupParts);
      touched.add(g);
    }
    if (a.parts !== undefined && !isObject(a.parts)) throw new DeltaRefused('addressSets.parts is not an object');
    for (const [g, byNetwork] of Object.entries(a.parts ?? {})) {
      const had = next.get(g);
      if (!had || !isObject(byNetwork)) throw new DeltaRefused(`addressSets.parts.${g} changes group ${g}, which this host has no address set of`);
      const parts: GroupParts = { ...had };
      for (const [n, change] of Object.entries(byNetwork)) {
        if (!isObject(change)) throw new DeltaRefused(`addressSets.parts.${g}.${n} is not an object`);
        const part = [...(parts[n] ?? [])];
        const ports = part.map(([p]) => p);
        for (const p of names(change.remove, `addressSets.parts.${g}.${n}.remove`)) {
          const i = search(ports, p);
          if (i < 0) throw new DeltaRefused(`addressSets.parts.${g}.${n}.remove names port ${p}, which is not in that set here`);
          part.splice(i, 1);
          ports.splice(i, 1);
        }
        const set = change.set ?? [];
        if (!Array.isArray(set)) throw new DeltaRefused(`addressSets.parts.${g}.${n}.set is not a list`);
        for (const e of set) {
          if (!Array.isArray(e) || typeof e[0] !== 'string' || !Array.isArray(e[1])) throw new DeltaRefused(`addressSets.parts.${g}.${n}.set has an entry that is not [port, addresses]`);
          const i = search(ports, e[0]);
          if (i >= 0) part[i] = e as [string, string[]];
          else {
            part.splice(-i - 1, 0, e as [string, string[]]);
            ports.splice(-i - 1, 0, e[0]);
          }
        }
        if (part.length) parts[n] = part;
        else delete parts[n];
      }
      next.set(g, parts);
      touched.add(g);
    }
    groups = Object.fromEntries([...next].sort(([x], [y]) => byName(x, y)));
    const sets = Object.fromEntries(Object.keys(groups).map((g) => [g, touched.has(g) || !copy.view.addressSets?.[g] ? addressSetOf(groups[g]) : copy.view.addressSets[g]]));
    addressSets = Object.keys(sets).length ? sets : undefined;
  }
  const sorted = [...networks.keys()].sort(byName);
  return {
    view: {
      host: copy.view.host,
      networks: sorted.map((n) => networks.get(n)!),
      ports,
      ...(nat ? { nat } : {}),
      ...(securityGroups ? { securityGroups } : {}),
      ...(addressSets ? { addressSets } : {}),
    },
    keys: Object.fromEntries(sorted.map((n) => [n, keys.get(n) ?? []])),
    groups,
  };
}
