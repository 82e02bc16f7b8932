/**
 * Makes a data path match a desired state, touching only what differs: a port or network
 * that did not change keeps its counters, its learned MACs and its traffic.
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
import type { BackendState, HostState, NatState, NetworkState, PortState, RemoteHost } from './desired-state.js';
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

export class Reconciler {
  private networks = new Map<string, NetworkState>();
  /** Each applied network as JSON: an unchanged network costs one string comparison. */
  private networkJson = new Map<string, string>();
  private ports = new Map<string, PortState>();
  private readonly pending = new Map<string, string>();
  /** Per network: the remote MACs installed statically, as MAC -> "address:port". */
  private readonly staticMacs = new Map<string, Map<number, string>>();
  /** Each applied NAT (router -> JSON). */
  private readonly natJson = new Map<string, string>();
  /** Security groups' member addresses, as applied (group -> JSON, and the set itself). */
  private readonly setJson = new Map<string, string>();
  private readonly sets = new Map<string, AddressSet>();
  /** Security groups' rules, as applied (group -> JSON, and compiled). */
  private readonly groupJson = new Map<string, string>();
  private readonly groupRules = new Map<string, FirewallRule[]>();

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
    for (const [name, net] of this.networks) {
      const want = wantNets.get(name);
      if (!want || want.vni !== net.vni || want.encapsulation !== net.encapsulation || Boolean(want.provider) !== Boolean(net.provider) || want.encryption !== net.encryption) rebuilt.add(name);
    }
    // Address sets first: a changed one is given again to every port whose rules name it.
    const changedSets = new Set<string>();
    for (const [group, addresses] of Object.entries(desired.addressSets)) {
      const json = JSON.stringify(addresses);
      if (this.setJson.get(group) === json) continue;
      this.setJson.set(group, json);
      this.sets.set(group, new AddressSet(addresses.map(prefix)));
      changedSets.add(group);
    }
    for (const group of [...this.setJson.keys()]) {
      if (Object.hasOwn(desired.addressSets, group)) continue;
      this.setJson.delete(group);
      this.sets.delete(group);
    }
    // Then the groups' rules: compiled again when they or a set they name changed.
    const changedGroups = new Set<string>();
    for (const [group, rules] of Object.entries(desired.securityGroups)) {
      const json = JSON.stringify(rules);
      if (this.groupJson.get(group) === json && !rules.some((r) => r.remoteGroup !== undefined && changedSets.has(r.remoteGroup))) continue;
      this.groupJson.set(group, json);
      this.groupRules.set(group, compileRules(group, rules, this.sets));
      changedGroups.add(group);
    }
    for (const group of [...this.groupJson.keys()]) {
      if (Object.hasOwn(desired.securityGroups, group)) continue;
      this.groupJson.delete(group);
      this.groupRules.delete(group);
    }
    const groupsChanged = (p: PortState) => (p.securityGroups ?? []).some((g) => changedGroups.has(g));
    /** A port's rules: its groups' (shared), or none (null) when it has no groups' list. */
    const rulesOf = (p: PortState): FirewallRule[] | null => {
      if (p.securityGroups === undefined) return null;
      if (p.securityGroups.length === 0) return NO_GROUPS;
      return p.securityGroups.flatMap((g) => this.groupRules.get(g) ?? []);
    };
    const portNetworks = (p: PortState) => (p.mode === 'access' ? [p.network] : [...Object.values(p.vlans), ...(p.nativeNetwork ? [p.nativeNetwork] : [])]);

    // 1. Ports that went, changed, or sit on a network being rebuilt.
    for (const [name, have] of this.ports) {
      const want = wantPorts.get(name);
      // A port is rebuilt only when what it is changes; its DHCP lease is swapped in place.
      if (want && same(withoutDhcp(want), withoutDhcp(have)) && !portNetworks(have).some((n) => rebuilt.has(n))) {
        if (!same(dhcpOf(want), dhcpOf(have))) {
          dp.setPortDhcp(name, lease(want));
          this.ports.set(name, want);
          result.changed.push(`port ${name} (DHCP)`);
        }
        if (!same(want.security, have.security)) {
          dp.setPortSecurity(name, security(want));
          this.ports.set(name, want);
          result.changed.push(`port ${name} (port security)`);
        }
        if (!same(want.securityGroups, have.securityGroups) || want.connectionLimit !== have.connectionLimit || groupsChanged(want)) {
          dp.setPortFirewall(name, rulesOf(want), want.connectionLimit);
          this.ports.set(name, want);
          result.changed.push(`port ${name} (security groups)`);
        }
        continue;
      }
      dp.removePort(name);
      this.ports.delete(name);
      (want ? result.changed : result.removed).push(`port ${name}`);
    }
    for (const name of this.pending.keys()) if (!wantPorts.has(name)) this.pending.delete(name);

    // 2. Networks that went or changed identity; then remote hosts of the rest.
    for (const name of rebuilt) {
      dp.removeNetwork(name);
      this.networks.delete(name);
      this.staticMacs.delete(name);
      this.networkJson.delete(name);
      (wantNets.has(name) ? result.changed : result.removed).push(`network ${name}`);
    }
    for (const want of desired.networks) {
      const have = this.networks.get(want.name);
      const json = JSON.stringify(want);
      if (have && this.networkJson.get(want.name) === json) continue;
      if (!have) {
        dp.addNetwork({ ...want, encrypted: want.encryption === 'noise' });
        result.added.push(`network ${want.name}`);
      }
      // A remote host is its address and port, and on an encrypted network also its key.
      const key = (r: RemoteHost) => `${r.address}:${r.port}:${r.publicKey ?? ''}`;
      const haveRemotes = new Set((have?.remotes ?? []).map(key));
      const wantRemotes = new Set(want.remotes.map(key));
      for (const r of have?.remotes ?? []) if (!wantRemotes.has(key(r))) dp.removeRemote(want.name, parseIpv4(r.address), r.port);
      for (const r of want.remotes) if (!haveRemotes.has(key(r))) dp.addRemote(want.name, parseIpv4(r.address), r.port, r.publicKey);
      // Same VNI and encapsulation (else it was rebuilt above): its remotes, MTU or
      // neighbors changed.
      if (have) result.changed.push(`network ${want.name}`);
      if (have?.mtu !== want.mtu) dp.setNetworkMtu(want.name, want.mtu);
      const failed = this.applyNeighbors(want);
      dp.setIpv6(want.name, want.ipv6 ?? null);
      this.networks.set(want.name, want);
      // Not recorded as applied while some of it is missing: the next apply tries again.
      if (failed.length === 0) this.networkJson.set(want.name, json);
      else result.failed.push(...failed);
    }

    // Routes name other networks, which all exist by now.
    for (const want of desired.networks) {
      dp.setRoutes(want.name, want.routes ?? []);
      dp.setGateways(want.name, want.gateways ?? []);
    }

    // The routers' external gateways held here, then where each network's way out is.
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
      (this.natJson.has(n.router) ? result.changed : result.added).push(`external gateway of ${n.router}`);
      dp.setNat(n.router, natSpec(n), n.inside);
      this.natJson.set(n.router, json);
    }
    for (const want of desired.networks) {
      const ext = want.external;
      dp.setExternal(want.name, !ext ? null : ext.remote ? { address: parseIpv4(ext.remote.address), port: ext.remote.port } : { router: ext.router });
    }

    // 3. Ports to attach (new, changed, or still pending from an earlier apply).
    for (const want of desired.ports) {
      if (this.ports.has(want.name)) continue;
      let backend: PortBackend;
      try {
        const mac = want.mode === 'access' ? desired.networks.find((n) => n.name === want.network)?.neighbors?.find((x) => x.port === want.name)?.mac : undefined;
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

  /** Installs remote ports' MACs (removing those that went) and the ARP answers. Returns
   * what could not be installed (the rest is). */
  private applyNeighbors(net: NetworkState): string[] {
    const dp = this.datapath;
    if (net.neighbors === undefined) {
      dp.setArpTable(net.name, null);
      dp.setNdTable(net.name, null);
      dp.setLocalMacs(net.name, null);
      return [];
    }
    const refused: string[] = [];
    let more = 0;
    const installed = this.staticMacs.get(net.name) ?? new Map<number, string>();
    const next = new Map<number, string>();
    const arp = new Map<number, number>();
    const nd = new Map<string, number>();
    const local = new Map<number, string>();
    for (const n of net.neighbors) {
      const mac = parseMac(n.mac);
      for (const ip of n.ips) {
        if (ip.includes(':')) nd.set(formatIpv6(parseIpv6(ip)), mac);
        else arp.set(parseIpv4(ip), mac);
      }
      if (n.port !== undefined) local.set(mac, n.port);
      if (!n.remote) continue;
      const where = `${n.remote.address}:${n.remote.port}`;
      if (installed.get(mac) !== where) {
        try {
          dp.addRemoteMac(net.name, mac, parseIpv4(n.remote.address), n.remote.port, this.clock());
        } catch (err) {
          // The first few reasons, then a count: a view can hold thousands of MACs.
          const why = (err as Error).message;
          if (refused.length < 3) refused.push(why);
          else more++;
          continue;
        }
      }
      next.set(mac, where);
    }
    for (const gw of net.gateways ?? []) arp.set(parseIpv4(gw.split('/')[0]), ROUTER_MAC);
    if (net.ipv6) nd.set(formatIpv6(ROUTER_LINK_LOCAL), ROUTER_MAC);
    for (const mac of installed.keys()) if (!next.has(mac)) dp.removeMac(net.name, mac);
    this.staticMacs.set(net.name, next);
    dp.setLocalMacs(net.name, local);
    dp.setArpTable(net.name, arp);
    dp.setNdTable(net.name, nd);
    if (more > 0) refused.push(`and ${more} more of network ${net.name}'s MACs not installed`);
    return refused;
  }
}
