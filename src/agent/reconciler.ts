/**
 * Makes a data path match a desired state, touching only what differs: a port or network
 * that did not change keeps its counters, its learned MACs and its traffic.
 *
 * Each network's tables (its members, pins, ARP and ND answers, routes, way out: see
 * src/datapath/tables.ts) are compiled here by the network's own TableBuilder and swapped
 * into the data path whole. The work follows the change: a network whose state is the same
 * object as last time (a delta from the controller keeps what it did not touch) costs one
 * comparison; in one that changed, its header (all but its neighbours) is compared as JSON,
 * and its neighbours by identity, so that one port's change in a network of 64,000 compiles
 * that port and copies the table shards it falls in.
 *
 * A port whose backend cannot be opened yet (its VM's namespace is not there, say) is
 * remembered with the reason and retried on the next `apply`; the rest goes ahead. So is a
 * remote MAC that cannot be installed: the rest of its network is applied, the failure is
 * in `failed` (the agent reports the view as failed), and the network is tried again on
 * every `apply` until it installs whole.
 */
import type { PortBackend } from '../datapath/backend.js';
import type { Datapath } from '../datapath/datapath.js';
import type { DhcpLease } from '../datapath/dhcp-server.js';
import { ROUTER_MAC } from '../datapath/router-mac.js';
import { ROUTER_LINK_LOCAL } from '../datapath/ipv6.js';
import { formatIpv6, parseIpv4, parseIpv6, parseMac } from '../wire/bytes.js';
import type { NatSpec } from '../datapath/nat.js';
import { PortSecurity } from '../datapath/port-security.js';
import { AddressSet, type FirewallRule, type Prefix } from '../datapath/firewall.js';
import { TableBuilder } from '../datapath/tables.js';
import type { BackendState, HostState, NatState, Neighbor, NetworkState, PortState } from './desired-state.js';
import type { FirewallRuleState } from '../view/host-view.js';

/** `mac`: an access port's own MAC, when the controller gave one (a TAP is given it). */
export type BackendOpener = (port: PortState, backend: BackendState, mac?: string) => PortBackend;

export interface ReconcileResult {
  added: string[];
  removed: string[];
  changed: string[];
  /** Ports that could not be attached, with why. */
  pending: Record<string, string>;
  /** What of the desired state could not be installed (the state is not applied whole). */
  failed: string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const dhcpOf = (p: PortState) => (p.mode === 'access' ? p.dhcp : undefined);
/** A port without what is swapped in place (its lease and port security). */
const withoutDhcp = (p: PortState) => ({ ...p, dhcp: undefined, security: undefined, securityGroups: undefined, connectionLimit: undefined });

/** An address as the firewall's four words (IPv4 in the last). */
function words(addr: string): Uint32Array {
  if (!addr.includes(':')) return new Uint32Array([0, 0, 0, parseIpv4(addr)]);
  const b = parseIpv6(addr);
  return new Uint32Array([0, 1, 2, 3].map((i) => ((b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3]) >>> 0));
}

/** An address or prefix ("10.0.0.0/24", "fd00::1") in the firewall's form. */
function prefix(cidr: string): Prefix {
  const [addr, len] = cidr.split('/');
  const v6 = addr.includes(':');
  return { words: words(addr), length: (v6 ? 0 : 96) + (len === undefined ? (v6 ? 128 : 32) : Number(len)) };
}

/** A security group's rules in the data path's form; a rule naming a group as remote
 * shares that group's address set. */
function compileRules(group: string, rules: FirewallRuleState[], sets: Map<string, AddressSet>): FirewallRule[] {
  return rules.map((r, i) => ({
    ...r,
    source: `group ${group}, rule ${i + 1}`,
    remote: r.remote === null ? null : r.remote.map(prefix),
    remoteSet: r.remoteGroup === undefined ? null : sets.get(r.remoteGroup) ?? new AddressSet([]),
  }));
}

/** What a port with no security groups gets: nothing in, everything out. */
const NO_GROUPS: FirewallRule[] = [false, true].map((ipv6) => ({ direction: 'egress', ipv6, protocol: -1, portMin: -1, portMax: -1, icmpType: -1, icmpCode: -1, remote: null, remoteSet: null, source: 'the port having no groups (all out, nothing in)' }));

/** The data path's form of a port's security. */
function security(p: PortState): PortSecurity | null {
  return p.security ? new PortSecurity(p.security.macs.map(parseMac), p.security.ips, p.security.etherTypes) : null;
}

/** The data path's form of a port's DHCP lease. */
function lease(p: PortState): DhcpLease | null {
  const d = dhcpOf(p);
  if (!d) return null;
  return {
    mac: parseMac(d.mac),
    ip: parseIpv4(d.ip), prefixLength: d.prefixLength, gateway: parseIpv4(d.gateway), dns: d.dns.map(parseIpv4),
    leaseSeconds: d.leaseSeconds, ...(d.hostName ? { hostName: d.hostName } : {}), ...(d.domain ? { domainName: d.domain, search: [d.domain] } : {}),
  };
}

/** Connections a router's NAT holds at most, unless the view says. */
const NAT_LIMIT = 65_536;

/** The data path's form of a router's external gateway. */
function natSpec(n: NatState): NatSpec {
  const [address, len] = n.address.split('/');
  return {
    router: n.router, network: n.network, address: parseIpv4(address), prefixLength: Number(len), mac: parseMac(n.mac),
    nextHop: n.nextHop ? parseIpv4(n.nextHop) : 0,
    floating: n.floating.map((f) => ({ outside: parseIpv4(f.outside), inside: parseIpv4(f.inside) })),
    forwards: n.forwards.map((f) => ({ protocol: f.protocol, port: f.port, inside: parseIpv4(f.inside), insidePort: f.insidePort })),
    limit: n.limit || NAT_LIMIT,
  };
}

/** What one neighbour put in its network's tables. */
interface Compiled {
  mac: number;
  pinned: boolean;
  ipv4: number[];
  ipv6: string[];
}

/** A network as last applied. */
interface Applied {
  /** The state applied (by reference), or null when some of it could not be installed: the
   * next apply looks at it again. */
  state: NetworkState | null;
  readonly builder: TableBuilder;
  /** What it was added to the data path as (identityOf): a change of it rebuilds it. */
  readonly identity: string;
  /** Its header (all but the neighbours) as JSON, as applied. */
  header: string;
  /** Each neighbour compiled into the tables, by identity. */
  neighbors: Map<Neighbor, Compiled>;
  /** The addresses the router answers for on it (its gateways', with ROUTER_MAC). */
  gatewayIps: number[];
}

/** What makes a network what it is in the data path: a change of it rebuilds the network. */
const identityOf = (n: NetworkState) => `${n.vni}:${n.encapsulation}:${Boolean(n.provider)}:${n.encryption}`;

export class Reconciler {
  private readonly networks = new Map<string, Applied>();
  private ports = new Map<string, PortState>();
  private readonly pending = new Map<string, string>();
  /** Each applied NAT (router -> JSON). */
  private readonly natJson = new Map<string, string>();
  /** Security groups' member addresses, as applied (group -> the list given, its JSON, and
   * the set itself). */
  private readonly setGiven = new Map<string, string[]>();
  private readonly setJson = new Map<string, string>();
  private readonly sets = new Map<string, AddressSet>();
  /** Security groups' rules, as applied (group -> the list given, its JSON, and compiled). */
  private readonly groupGiven = new Map<string, FirewallRuleState[]>();
  private readonly groupJson = new Map<string, string>();
  private readonly groupRules = new Map<string, FirewallRule[]>();
  /** The rules of each set of groups ports have (their names joined by NUL), as given to
   * the data path. */
  private readonly ruleSets = new Map<string, FirewallRule[]>();

  /** Addresses in the firewall's form, as parsed for address sets: a set that changed is
   * made again from its addresses, most of them parsed before. Forgotten when it holds far
   * more than the sets do. */
  private readonly prefixes = new Map<string, Prefix>();
  private prefixOf(address: string): Prefix {
    let p = this.prefixes.get(address);
    if (p === undefined) {
      if (this.prefixes.size > 4 * [...this.setGiven.values()].reduce((n, s) => n + s.length, 1024)) this.prefixes.clear();
      this.prefixes.set(address, (p = prefix(address)));
    }
    return p;
  }

  constructor(
    private readonly datapath: Datapath,
    private readonly open: BackendOpener,
    private readonly clock: () => number,
  ) {}

  /** Ports the data path does not have yet, with the reason. */
  pendingPorts(): Record<string, string> {
    return Object.fromEntries(this.pending);
  }

  apply(desired: HostState): ReconcileResult {
    const result: ReconcileResult = { added: [], removed: [], changed: [], pending: {}, failed: [] };
    const dp = this.datapath;
    const wantNets = new Map(desired.networks.map((n) => [n.name, n]));
    const wantPorts = new Map(desired.ports.map((p) => [p.name, p]));
    const rebuilt = new Set<string>();
    for (const [name, a] of this.networks) {
      const want = wantNets.get(name);
      if (!want || identityOf(want) !== a.identity) rebuilt.add(name);
    }
    // Address sets first: a changed one is given again to every port whose rules name it.
    const changedSets = new Set<string>();
    for (const [group, addresses] of Object.entries(desired.addressSets)) {
      if (this.setGiven.get(group) === addresses) continue;
      this.setGiven.set(group, addresses);
      const json = JSON.stringify(addresses);
      if (this.setJson.get(group) === json) continue;
      this.setJson.set(group, json);
      this.sets.set(group, new AddressSet(addresses.map((a) => this.prefixOf(a))));
      changedSets.add(group);
    }
    for (const group of [...this.setJson.keys()]) {
      if (Object.hasOwn(desired.addressSets, group)) continue;
      this.setGiven.delete(group);
      this.setJson.delete(group);
      this.sets.delete(group);
    }
    // Then the groups' rules: compiled again when they or a set they name changed.
    const changedGroups = new Set<string>();
    for (const [group, rules] of Object.entries(desired.securityGroups)) {
      const setChanged = rules.some((r) => r.remoteGroup !== undefined && changedSets.has(r.remoteGroup));
      if (this.groupGiven.get(group) === rules && !setChanged) continue;
      this.groupGiven.set(group, rules);
      const json = JSON.stringify(rules);
      if (this.groupJson.get(group) === json && !setChanged) continue;
      this.groupJson.set(group, json);
      this.groupRules.set(group, compileRules(group, rules, this.sets));
      changedGroups.add(group);
    }
    for (const group of [...this.groupJson.keys()]) {
      if (Object.hasOwn(desired.securityGroups, group)) continue;
      this.groupGiven.delete(group);
      this.groupJson.delete(group);
      this.groupRules.delete(group);
      changedGroups.add(group);
    }
    const groupsChanged = (p: PortState) => changedGroups.size > 0 && (p.securityGroups ?? []).some((g) => changedGroups.has(g));
    // A set of groups' rules is one array, shared by every port with those groups, so that
    // the data path compiles its rule table once (compileRuleTable keeps one per array).
    if (changedGroups.size > 0) {
      for (const key of [...this.ruleSets.keys()]) if (key.split('\0').some((g) => changedGroups.has(g))) this.ruleSets.delete(key);
    }
    /** A port's rules: its groups' (shared), or none (null) when it has no groups' list. */
    const rulesOf = (p: PortState): FirewallRule[] | null => {
      if (p.securityGroups === undefined) return null;
      if (p.securityGroups.length === 0) return NO_GROUPS;
      const key = p.securityGroups.join('\0');
      let rules = this.ruleSets.get(key);
      if (!rules) this.ruleSets.set(key, (rules = p.securityGroups.flatMap((g) => this.groupRules.get(g) ?? [])));
      return rules;
    };
    const portNetworks = (p: PortState) => (p.mode === 'access' ? [p.network] : [...Object.values(p.vlans), ...(p.nativeNetwork ? [p.nativeNetwork] : [])]);

    // 1. Ports that went, changed, or sit on a network being rebuilt.
    for (const [name, have] of this.ports) {
      const want = wantPorts.get(name);
      if (want === have && (rebuilt.size === 0 || !portNetworks(have).some((n) => rebuilt.has(n)))) {
        // The same port: only its groups' rules may have changed.
        if (groupsChanged(want)) {
          dp.setPortFirewall(name, rulesOf(want), want.connectionLimit);
          result.changed.push(`port ${name} (security groups)`);
        }
        continue;
      }
      // A port is rebuilt only when what it is changes; its DHCP lease is swapped in place.
      if (want && same(withoutDhcp(want), withoutDhcp(have)) && !portNetworks(have).some((n) => rebuilt.has(n))) {
        if (!same(dhcpOf(want), dhcpOf(have))) {
          dp.setPortDhcp(name, lease(want));
          result.changed.push(`port ${name} (DHCP)`);
        }
        if (!same(want.security, have.security)) {
          dp.setPortSecurity(name, security(want));
          result.changed.push(`port ${name} (port security)`);
        }
        if (!same(want.securityGroups, have.securityGroups) || want.connectionLimit !== have.connectionLimit || groupsChanged(want)) {
          dp.setPortFirewall(name, rulesOf(want), want.connectionLimit);
          result.changed.push(`port ${name} (security groups)`);
        }
        this.ports.set(name, want);
        continue;
      }
      dp.removePort(name);
      this.ports.delete(name);
      (want ? result.changed : result.removed).push(`port ${name}`);
    }
    for (const name of this.pending.keys()) if (!wantPorts.has(name)) this.pending.delete(name);

    // 2. Networks that went or changed identity; then the new ones.
    for (const name of rebuilt) {
      dp.removeNetwork(name);
      this.networks.delete(name);
      (wantNets.has(name) ? result.changed : result.removed).push(`network ${name}`);
    }
    for (const want of desired.networks) {
      if (this.networks.has(want.name)) continue;
      try {
        dp.addNetwork({ ...want, encrypted: want.encryption === 'noise' });
      } catch (err) {
        result.failed.push((err as Error).message);
        continue;
      }
      this.networks.set(want.name, { state: null, builder: new TableBuilder(), identity: identityOf(want), header: '', neighbors: new Map(), gatewayIps: [] });
      result.added.push(`network ${want.name}`);
    }

    // 3. The routers' external gateways held here.
    const wantNat = new Map(desired.nat.map((n) => [n.router, n]));
    for (const router of this.natJson.keys()) {
      if (wantNat.has(router)) continue;
      dp.setNat(router, null);
      this.natJson.delete(router);
      result.removed.push(`external gateway of ${router}`);
    }
    for (const n of desired.nat) {
      const json = JSON.stringify(n);
      if (this.natJson.get(n.router) === json && dp.hasNat(n.router)) continue;
      try {
        dp.setNat(n.router, natSpec(n), n.inside);
      } catch (err) {
        result.failed.push(`external gateway of ${n.router}: ${(err as Error).message}`);
        this.natJson.delete(n.router);
        continue;
      }
      (this.natJson.has(n.router) ? result.changed : result.added).push(`external gateway of ${n.router}`);
      this.natJson.set(n.router, json);
    }

    // 4. Each network's tables, compiled where it changed and swapped in whole. Routes name
    // other networks, which all exist by now.
    for (const want of desired.networks) {
      const a = this.networks.get(want.name);
      if (!a || a.state === want) continue;
      const wasApplied = a.header !== '';
      const failed = this.compile(want, a);
      const tables = a.builder.build();
      const changed = tables !== dp.tablesOf(want.name);
      try {
        dp.setTables(want.name, tables);
      } catch (err) {
        failed.push(`network ${want.name}: ${(err as Error).message}`);
      }
      // Not recorded as applied while some of it is missing: the next apply tries again.
      a.state = failed.length === 0 ? want : null;
      result.failed.push(...failed);
      if (wasApplied && changed) result.changed.push(`network ${want.name}`);
    }

    // 5. Ports to attach (new, changed, or still pending from an earlier apply).
    for (const want of desired.ports) {
      if (this.ports.has(want.name)) continue;
      let backend: PortBackend;
      try {
        const mac = want.mode === 'access' ? wantNets.get(want.network)?.neighbors?.find((x) => x.port === want.name)?.mac : undefined;
        backend = this.open(want, want.backend, mac);
      } catch (err) {
        this.pending.set(want.name, (err as Error).message);
        continue;
      }
      try {
        dp.addPort(want.mode === 'access'
          ? { name: want.name, backend, mode: 'access', network: want.network }
          : { name: want.name, backend, mode: 'trunk', vlans: want.vlans, nativeNetwork: want.nativeNetwork, uplink: want.backend.type === 'uplink' });
      } catch (err) {
        backend.close();
        this.pending.set(want.name, (err as Error).message);
        continue;
      }
      this.pending.delete(want.name);
      this.ports.set(want.name, want);
      dp.setPortDhcp(want.name, lease(want));
      dp.setPortSecurity(want.name, security(want));
      dp.setPortFirewall(want.name, rulesOf(want), want.connectionLimit);
      dp.startPort(want.name, this.clock);
      if (!result.changed.includes(`port ${want.name}`)) result.added.push(`port ${want.name}`);
    }
    result.pending = this.pendingPorts();
    return result;
  }

  /**
   * Puts what changed of `net` into its builder: the header when its JSON differs, and the
   * neighbours that are not the objects compiled last time (the rest are). Returns what
   * could not be compiled; a neighbour that could not be is tried again next time.
   */
  private compile(net: NetworkState, a: Applied): string[] {
    const b = a.builder;
    const failed: string[] = [];
    const { neighbors, ...rest } = net;
    const header = JSON.stringify(rest);
    const headerChanged = header !== a.header;
    if (headerChanged) {
      b.members(net.remotes.map((r) => ({ address: r.address, port: r.port, key: r.publicKey ?? null })));
      b.mtu(net.mtu);
      b.routes(net.routes ?? []);
      b.gateways(net.gateways ?? []);
      b.ipv6(net.ipv6 ?? null);
      const ext = net.external;
      if (!b.external(!ext ? null : ext.remote ? { address: ext.remote.address, port: ext.remote.port } : { router: ext.router })) {
        failed.push(`network ${net.name} has no remote host ${ext!.remote!.address}:${ext!.remote!.port} to send its outside traffic to`);
      }
      a.header = header;
    }
    if (neighbors === undefined) {
      for (const c of a.neighbors.values()) if (c.pinned) b.unpin(c.mac);
      a.neighbors = new Map();
      a.gatewayIps = [];
      b.answering(false);
      return failed;
    }
    // Neighbours by identity: the ones compiled last time and still here are kept.
    const before = a.neighbors;
    const after = new Map<Neighbor, Compiled>();
    let added: Neighbor[] = [];
    for (const n of neighbors) {
      const c = before.get(n);
      if (c === undefined) added.push(n);
      else {
        after.set(n, c);
        before.delete(n);
      }
    }
    // A new object saying what a gone one said (a full state again, a view made afresh) is
    // the same neighbour: kept as compiled.
    if (added.length > 0 && before.size > 0) {
      const gone = new Map<string, Neighbor>();
      for (const n of before.keys()) gone.set(n.mac, n);
      added = added.filter((n) => {
        const old = gone.get(n.mac);
        if (old === undefined || JSON.stringify(old) !== JSON.stringify(n)) return true;
        after.set(n, before.get(old)!);
        before.delete(old);
        gone.delete(n.mac);
        return false;
      });
    }
    a.neighbors = after;
    if (!headerChanged && added.length === 0 && before.size === 0 && a.state !== null) return failed;
    b.answering(true);
    for (const c of before.values()) {
      if (c.pinned) b.unpin(c.mac);
      for (const ip of c.ipv4) b.arp(ip, null);
      for (const ip of c.ipv6) b.ndp(ip, null);
    }
    let more = 0;
    for (const n of added) {
      const mac = parseMac(n.mac);
      const c: Compiled = { mac, pinned: false, ipv4: [], ipv6: [] };
      if (n.port !== undefined) {
        b.pinLocal(mac, n.port);
        c.pinned = true;
      }
      if (n.remote) {
        if (!b.pinRemote(mac, n.remote.address, n.remote.port)) {
          // The first few reasons, then a count: a view can hold thousands of MACs.
          if (failed.length < 3) failed.push(`network ${net.name} has no remote host ${n.remote.address}:${n.remote.port}: ${n.mac} not installed`);
          else more++;
          if (c.pinned) b.unpin(mac);
          continue;
        }
        c.pinned = true;
      }
      for (const ip of n.ips) {
        if (ip.includes(':')) {
          b.ndp(ip, mac);
          c.ipv6.push(ip);
        } else {
          const v4 = parseIpv4(ip);
          b.arp(v4, mac);
          c.ipv4.push(v4);
        }
      }
      after.set(n, c);
    }
    if (more > 0) failed.push(`and ${more} more of network ${net.name}'s MACs not installed`);
    // The router's own addresses answer with its MAC, over any neighbour's.
    if (headerChanged || added.length > 0 || before.size > 0) {
      const gatewayIps = (net.gateways ?? []).map((g) => parseIpv4(g.split('/')[0]));
      for (const ip of a.gatewayIps) if (!gatewayIps.includes(ip)) b.arp(ip, null);
      for (const ip of gatewayIps) b.arp(ip, ROUTER_MAC);
      a.gatewayIps = gatewayIps;
      b.ndp(ROUTER_LINK_LOCAL_TEXT, net.ipv6 ? ROUTER_MAC : null);
    }
    return failed;
  }
}

const ROUTER_LINK_LOCAL_TEXT = formatIpv6(ROUTER_LINK_LOCAL);
