/**
 * Each host's feed of view deltas: what the host has (as far as the controller knows it, by
 * revision), the delta that brings it to the model after each batch of changes, and a
 * bounded history of the deltas sent, for an agent that reconnects to resume from the last
 * revision it applied.
 *
 * A feed keeps no copy of the host's view: for each network it holds, the version of the
 * network's header it was given; for its own ports, uplinks, groups and NAT, their JSON
 * (small: they are the host's own); for each address set, the versions of the addresses it
 * was built from. Neighbors are not kept at all: the model records the entry each changed
 * port had before the batch (ModelCache.takeChanges), and the host's neighbor before and
 * after is computed from that entry alone. So a one-port change costs, per host holding its
 * network, one entry, whatever the size of the network.
 *
 * Revisions: a feed's revision is the watch revision of the last batch that changed the
 * host's view (a delta carries `from`, the host's revision before it, and `revision`). The
 * watch revision is the store's revision; a batch with no store change (an external
 * gateway moved because an agent came or went) gets the last one plus a millionth, so that
 * every batch has a revision of its own and whole revisions are store revisions, the same
 * in every lifetime of the controller. A fraction is this lifetime's alone: revisions are
 * looked up in the history only for an agent that names this lifetime's `epoch` (which
 * full states and "current" carry); an agent of another lifetime is current only at the
 * store's revision the controller started at (and not if its view depends on gateway
 * placement, which the restart made afresh).
 */
import { ModelCache, type ViewChanges } from './model-cache.js';
import type { HostView, Neighbor } from '../view/host-view.js';
import type { NetworkChanges, NetworkDelta, ViewDelta } from '../view/view-delta.js';
import { randomBytes } from 'node:crypto';

/** How much of each host's history is kept (an agent away longer gets a full state). */
export interface HistoryLimits {
  messages: number;
  bytes: number;
}

/** A drop of a few seconds needs a few deltas; 64 KiB a host keeps the history of 1,000
 * hosts within 64 MiB. */
export const DEFAULT_HISTORY: HistoryLimits = { messages: 256, bytes: 64 * 1024 };

interface HostFeed {
  revision: number;
  /** Made at the controller's start, for a host whose view depended on where gateways are
   * placed: an agent at the start's revision may have had them elsewhere, so it is not
   * resumed from there (it gets a full state). */
  placedAtStart: boolean;
  /** Network -> the version of its header the host has. */
  networks: Map<string, number>;
  /** Own port -> its state (JSON). */
  ports: Map<string, string>;
  /** Uplink -> its state (JSON). */
  uplinks: Map<string, string>;
  nat: string;
  /** Group -> its rules (JSON). */
  groups: Map<string, string>;
  /** Named group -> the networks its set was made of (a change of them: the whole set again). */
  sets: Map<string, string>;
  /** The deltas sent, oldest first, as sent. */
  history: Array<{ from: number; revision: number; text: string }>;
  historyBytes: number;
}

/** What a reconnecting agent at a revision is to get. */
export type Resumption =
  | { kind: 'current' }
  | { kind: 'deltas'; texts: string[] }
  | { kind: 'full'; reason: 'compacted' };

export class ViewFeeds {
  private readonly feeds = new Map<string, HostFeed>();
  /** The last watch revision given. */
  revision: number;
  /** The store's revision when this controller started. */
  private readonly started: number;
  /** This lifetime of the controller (fractional revisions are its own). */
  readonly epoch = randomBytes(4).toString('hex');

  constructor(private readonly model: ModelCache, private readonly limits: HistoryLimits = DEFAULT_HISTORY) {
    this.revision = model.revision;
    this.started = model.revision;
    // What the load built is every host's starting point, at the store's revision: an agent
    // at that revision has it already (a controller restarted with nothing changed since).
    model.takeChanges();
    for (const host of model.hosts.keys()) this.start(host);
  }

  private start(host: string): HostFeed {
    const f: HostFeed = { revision: this.revision, placedAtStart: this.model.dependsOnPlacement(host), networks: new Map(), ports: new Map(), uplinks: new Map(), nat: '[]', groups: new Map(), sets: new Map(), history: [], historyBytes: 0 };
    this.feeds.set(host, f);
    this.diff(host, f, null);
    return f;
  }

  /** A host's revision (-1: no such host). */
  revisionOf(host: string): number {
    return this.feeds.get(host)?.revision ?? -1;
  }

  /**
   * Takes the model's changes since the last call and returns each changed host's delta
   * (as sent: JSON text), at a new watch revision. Hosts whose view did not change are
   * not in the result.
   */
  flush(): Map<string, string> {
    const changes = this.model.takeChanges();
    const out = new Map<string, string>();
    if (changes.hosts.size === 0) return out;
    // A store change: its revision; else a millionth above the last (a gateway moved).
    const revision = this.model.revision > this.revision ? this.model.revision : Math.round(this.revision * 1e6 + 1) / 1e6;
    for (const host of changes.hosts) {
      if (!this.model.hosts.has(host)) {
        this.feeds.delete(host);
        continue;
      }
      const f = this.feeds.get(host);
      if (!f) {
        // A new host: its feed starts empty, here.
        const g: HostFeed = { revision: this.revision, placedAtStart: false, networks: new Map(), ports: new Map(), uplinks: new Map(), nat: '[]', groups: new Map(), sets: new Map(), history: [], historyBytes: 0 };
        this.feeds.set(host, g);
        const d = this.diff(host, g, null);
        if (d) out.set(host, this.record(g, d, revision));
        continue;
      }
      const d = this.diff(host, f, changes);
      if (d) out.set(host, this.record(f, d, revision));
    }
    if (out.size > 0) this.revision = revision;
    return out;
  }

  private record(f: HostFeed, d: ViewDelta, revision: number): string {
    d.revision = revision;
    const text = JSON.stringify(d);
    f.history.push({ from: d.from, revision, text });
    f.historyBytes += text.length;
    f.revision = revision;
    while (f.history.length > this.limits.messages || (f.historyBytes > this.limits.bytes && f.history.length > 0)) f.historyBytes -= f.history.shift()!.text.length;
    return text;
  }

  /** What an agent at `revision` of lifetime `epoch` gets: nothing (it is current), the
   * deltas since, or a full state (the history it needs is gone, or it never had any). */
  since(host: string, revision: number, epoch?: string): Resumption {
    const f = this.feeds.get(host);
    // An agent of another lifetime (or one that names none): its history is gone, but at
    // the store's revision this lifetime started at, it has what this lifetime started with.
    if (epoch !== this.epoch && (!f || f.placedAtStart || revision !== this.started)) return { kind: 'full', reason: 'compacted' };
    if (f && revision === f.revision) return { kind: 'current' };
    const i = f ? f.history.findIndex((e) => e.from === revision) : -1;
    if (i < 0) return { kind: 'full', reason: 'compacted' };
    return { kind: 'deltas', texts: f!.history.slice(i).map((e) => e.text) };
  }

  /** The host's full state now, at its revision (flush first: the feed is then current). */
  full(host: string): { revision: number; view: HostView; keys: Record<string, string[]>; groups: Record<string, ReturnType<ModelCache['groupParts']>> } {
    return { revision: this.revisionOf(host), ...this.model.copyFor(host) };
  }

  /**
   * The delta from what feed `f` says the host has to its view now, and `f` brought up to
   * date; null when nothing changed. `changes` null: everything is new to the feed.
   */
  private diff(host: string, f: HostFeed, changes: ViewChanges | null): ViewDelta | null {
    const m = this.model;
    const d: ViewDelta = { type: 'delta', from: f.revision, revision: f.revision };
    const mine = m.ownPorts(host);
    const nets = m.networksOf(host, mine);
    const held = new Set(nets);
    const removeNetworks = [...f.networks.keys()].filter((n) => !held.has(n));
    for (const n of removeNetworks) f.networks.delete(n);
    const networks: Record<string, NetworkDelta> = {};
    let netsChanged = removeNetworks.length > 0;
    for (const n of nets) {
      const version = m.headerVersion(n);
      if (changes === null || !f.networks.has(n) || changes.replaced.has(n)) {
        const { state, keys } = m.networkFor(n, host);
        networks[n] = { whole: state, keys };
        netsChanged ||= !f.networks.has(n);
        f.networks.set(n, version);
        continue;
      }
      const nd: NetworkChanges = {};
      if (f.networks.get(n) !== version) {
        nd.header = m.networkHeaderFor(n, host);
        f.networks.set(n, version);
      }
      const entries = changes.entries.get(n);
      if (entries) {
        const provider = m.isProvider(n);
        const set: Array<[string, Neighbor]> = [];
        const remove: string[] = [];
        for (const [port, old] of entries) {
          const before = ModelCache.neighborFor(old, port, host, provider);
          const after = ModelCache.neighborFor(m.entry(n, port), port, host, provider);
          if (after) {
            if (!before || JSON.stringify(before) !== JSON.stringify(after)) set.push([port, after]);
          } else if (before) remove.push(port);
        }
        if (set.length || remove.length) nd.neighbors = { ...(set.length ? { set } : {}), ...(remove.length ? { remove } : {}) };
      }
      if (nd.header || nd.neighbors) networks[n] = nd;
    }
    if (Object.keys(networks).length) d.networks = networks;
    if (removeNetworks.length) d.removeNetworks = removeNetworks;

    // Own ports: those the changes name (all of them for a new feed), and the uplinks.
    const set: HostView['ports'] = [];
    const remove: string[] = [];
    const dirty = changes === null ? new Set([...f.ports.keys(), ...mine.map((p) => p.name)]) : changes.ports.get(host) ?? new Set<string>();
    for (const name of dirty) {
      const p = m.ports.get(name);
      const state = p && p.host === host && m.ready(p) ? m.portState(p) : undefined;
      if (state) {
        const json = JSON.stringify(state);
        if (f.ports.get(name) === json) continue;
        f.ports.set(name, json);
        set.push(state);
      } else if (f.ports.delete(name)) remove.push(name);
    }
    const uplinks = m.uplinksFor(host, nets);
    const upNames = new Set(uplinks.map((u) => u.name));
    for (const u of uplinks) {
      const json = JSON.stringify(u);
      if (f.uplinks.get(u.name) === json) continue;
      f.uplinks.set(u.name, json);
      set.push(u);
    }
    for (const name of [...f.uplinks.keys()]) if (!upNames.has(name)) {
      f.uplinks.delete(name);
      remove.push(name);
    }
    if (set.length || remove.length) d.ports = { ...(set.length ? { set } : {}), ...(remove.length ? { remove } : {}) };

    const nat = m.natFor(host);
    const natJson = JSON.stringify(nat);
    if (natJson !== f.nat) {
      f.nat = natJson;
      d.nat = nat;
    }

    // Groups: computed again when the host's ports or networks or any group's rules changed;
    // else only their address sets are checked, by version.
    let named = [...f.sets.keys()];
    if (changes === null || dirty.size > 0 || netsChanged || changes.groups.size > 0) {
      const used = [...new Set(mine.flatMap((p) => m.portGroups(p)))].sort();
      const rules = Object.fromEntries(used.map((g) => [g, m.rulesOf(g)]));
      const gSet: Record<string, ReturnType<ModelCache['rulesOf']>> = {};
      for (const g of used) {
        const json = JSON.stringify(rules[g]);
        if (f.groups.get(g) === json) continue;
        f.groups.set(g, json);
        gSet[g] = rules[g];
      }
      const gRemove = [...f.groups.keys()].filter((g) => !Object.hasOwn(rules, g));
      for (const g of gRemove) f.groups.delete(g);
      if (Object.keys(gSet).length || gRemove.length) d.securityGroups = { ...(Object.keys(gSet).length ? { set: gSet } : {}), ...(gRemove.length ? { remove: gRemove } : {}) };
      named = ModelCache.namedGroups(rules);
    }
    // Address sets: a group newly named, or on other networks, whole; else, by port, the
    // entries the changes touched on the host's networks.
    const sSet: Record<string, ReturnType<ModelCache['groupParts']>> = {};
    const sParts: NonNullable<NonNullable<ViewDelta['addressSets']>['parts']> = {};
    const namedSet = new Set(named);
    const netsKey = nets.join(',');
    for (const g of named) {
      if (changes === null || f.sets.get(g) !== netsKey) {
        f.sets.set(g, netsKey);
        sSet[g] = m.groupParts(g, nets);
        continue;
      }
      for (const [n, entries] of changes.entries) {
        if (!held.has(n)) continue;
        const set: Array<[string, string[]]> = [];
        const remove: string[] = [];
        for (const [port, old] of entries) {
          const before = ModelCache.groupEntry(old, g);
          const after = ModelCache.groupEntry(m.entry(n, port), g);
          if (after) {
            if (!before || JSON.stringify(before) !== JSON.stringify(after)) set.push([port, after]);
          } else if (before) remove.push(port);
        }
        if (set.length || remove.length) (sParts[g] ??= {})[n] = { ...(set.length ? { set } : {}), ...(remove.length ? { remove } : {}) };
      }
    }
    const sRemove = [...f.sets.keys()].filter((g) => !namedSet.has(g));
    for (const g of sRemove) f.sets.delete(g);
    if (Object.keys(sSet).length || sRemove.length || Object.keys(sParts).length) {
      d.addressSets = { ...(Object.keys(sSet).length ? { set: sSet } : {}), ...(sRemove.length ? { remove: sRemove } : {}), ...(Object.keys(sParts).length ? { parts: sParts } : {}) };
    }

    const changed = d.networks || d.removeNetworks || d.ports || d.nat || d.securityGroups || d.addressSets;
    return changed ? d : null;
  }
}
