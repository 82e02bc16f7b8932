/**
 * The model cache as it was before per-network pieces and deltas (src/controller/model-cache.ts
 * at dee14dc): every view computed whole from the model. Kept unchanged as the oracle of the
 * property test (test/view-deltas.test.ts): the incremental cache and the deltas built from
 * it must give exactly the views this one computes.
 *
 * Why a copy and not a ModelCache loaded afresh at each step: where an external gateway is
 * placed depends on history (it stays on its host until that host goes), which a fresh load
 * cannot know; this copy replays the same history with the old placement. The cost is that
 * an intended change of what a view holds must be made here too. Once the model can be
 * loaded with a given placement, a fresh load is the better oracle and this file goes.
 */
import type { DhcpState, FirewallRuleState, HostView, NatState, NetworkState, PortGroups, PortState, RemoteHost, SecurityState } from '../../src/view/host-view.js';
import { contains, parseCidr } from '../../src/controller/ipam.js';
import { formatIpv6, parseIpv4, parseIpv6, parseMac } from '../../src/wire/bytes.js';
import { eui64 } from '../../src/datapath/ipv6.js';
import { attachments, type FloatingIp, type Host, type Network, type Port, type PortForward, type Router, type SecurityGroup, type Subnet } from '../../src/controller/model.js';
import type { Change, Store } from '../../src/controller/store/store.js';
import { GENEVE_PORT, TUNNEL_PORT } from '../../src/wire/udp.js';
import { hasOwnKey, own } from '../../src/config/fields.js';

export class LegacyModelCache {
  readonly hosts = new Map<string, Host>();
  readonly networks = new Map<string, Network>();
  readonly subnets = new Map<string, Subnet>();
  readonly ports = new Map<string, Port>();
  readonly routers = new Map<string, Router>();
  readonly floatingIps = new Map<string, FloatingIp>();
  readonly portForwards = new Map<string, PortForward>();
  readonly securityGroups = new Map<string, SecurityGroup>();
  /** Security group -> the names of its ports. */
  private readonly groupMembers = new Map<string, Set<string>>();
  /** Group -> its members' addresses, computed once between changes. */
  private readonly addressCache = new Map<string, string[]>();
  /** Hosts whose agents hold a watch now (told by the watch hub). */
  private readonly connected = new Set<string>();
  /** Router -> the host holding its external gateway, for gateways not pinned to one. */
  private readonly placement = new Map<string, string>();
  private readonly subnetsByNetwork = new Map<string, Map<string, Subnet>>();
  /** Subnet name -> the router it is attached to. */
  private readonly routerOfSubnet = new Map<string, string>();
  private readonly byHost = new Map<string, Set<string>>();
  private readonly byNetwork = new Map<string, Set<string>>();
  revision = 0;

  static async load(store: Store): Promise<LegacyModelCache> {
    const m = new LegacyModelCache();
    // Read the revision first: changes after it are replayed by the caller's subscription.
    m.revision = await store.revision();
    for (const e of await store.list<Host>('/hosts/')) m.hosts.set(e.value.name, e.value);
    for (const e of await store.list<Network>('/networks/')) m.networks.set(e.value.name, e.value);
    for (const e of await store.list<Subnet>('/subnets/')) m.indexSubnet(e.value);
    for (const e of await store.list<Port>('/ports/')) m.indexPort(e.value);
    for (const e of await store.list<Router>('/routers/')) m.indexRouter(e.value);
    for (const e of await store.list<FloatingIp>('/floating-ips/')) m.floatingIps.set(e.value.name, e.value);
    for (const e of await store.list<PortForward>('/port-forwards/')) m.portForwards.set(e.value.name, e.value);
    for (const e of await store.list<SecurityGroup>('/security-groups/')) m.securityGroups.set(e.value.name, e.value);
    m.place();
    return m;
  }

  private indexPort(p: Port): void {
    this.ports.set(p.name, p);
    add(this.byHost, p.host, p.name);
    for (const g of p.securityGroups ?? []) add(this.groupMembers, g, p.name);
    for (const a of attachments(p)) add(this.byNetwork, a.network, p.name);
  }

  private indexRouter(r: Router): void {
    this.routers.set(r.name, r);
    for (const s of r.subnets) this.routerOfSubnet.set(s, r.name);
  }

  private unindexRouter(r: Router): void {
    this.routers.delete(r.name);
    for (const s of r.subnets) if (this.routerOfSubnet.get(s) === r.name) this.routerOfSubnet.delete(s);
  }

  /** The networks a router joins `network` to (not `network` itself). */
  private routedWith(network: string): string[] {
    const out = new Set<string>();
    for (const s of this.subnetsOf(network)) {
      const r = this.routers.get(this.routerOfSubnet.get(s.name) ?? '');
      for (const t of r?.subnets ?? []) {
        const n = this.subnets.get(t)?.network;
        if (n !== undefined && n !== network) out.add(n);
      }
    }
    return [...out];
  }

  private unindexPort(p: Port): void {
    this.ports.delete(p.name);
    remove(this.byHost, p.host, p.name);
    for (const g of p.securityGroups ?? []) remove(this.groupMembers, g, p.name);
    for (const a of attachments(p)) remove(this.byNetwork, a.network, p.name);
  }

  /**
   * Applies committed changes; returns the hosts whose view may have changed (those with
   * ports on a touched network, and the hosts of touched ports).
   */
  apply(changes: Change[]): Set<string> {
    const affected = new Set<string>();
    // Hosts of a network, and of the networks routed with it: their views hold its ports.
    const touchNetwork = (n: string) => {
      for (const m of [n, ...this.routedWith(n)]) for (const pn of this.byNetwork.get(m) ?? []) affected.add(this.ports.get(pn)!.host);
    };
    this.addressCache.clear();
    const gatewayHosts = () => [...this.routers.values()].map((r) => this.gatewayHost(r)).filter((h): h is string => h !== undefined);
    for (const h of gatewayHosts()) affected.add(h);
    let routersChanged = false;
    for (const c of changes) {
      this.revision = Math.max(this.revision, c.revision);
      const [, kind, name] = c.key.split('/');
      if (kind === 'security-groups') {
        // Its members apply its rules, and the members of groups naming it hold its
        // members' addresses: the hosts of all those ports.
        const touched = new Set([name]);
        for (const g of this.securityGroups.values()) if (g.rules.some((r) => r.remote && 'group' in r.remote && r.remote.group === name)) touched.add(g.name);
        if (c.value) this.securityGroups.set(name, c.value as SecurityGroup);
        else this.securityGroups.delete(name);
        for (const g of touched) for (const pn of this.groupMembers.get(g) ?? []) affected.add(this.ports.get(pn)!.host);
        continue;
      }
      if (kind === 'floating-ips' || kind === 'port-forwards') {
        const map: Map<string, unknown> = kind === 'floating-ips' ? this.floatingIps : this.portForwards;
        if (c.value) map.set(name, c.value);
        else map.delete(name);
        routersChanged = true;
        continue;
      }
      if (kind === 'ports') {
        const old = this.ports.get(name);
        if (old) {
          for (const a of attachments(old)) touchNetwork(a.network);
          affected.add(old.host);
          this.unindexPort(old);
        }
        if (c.value) {
          const p = c.value as Port;
          this.indexPort(p);
          for (const a of attachments(p)) touchNetwork(a.network);
        }
      } else if (kind === 'networks') {
        if (c.value) this.networks.set(name, c.value as Network);
        else this.networks.delete(name);
        touchNetwork(name);
      } else if (kind === 'hosts') {
        if (c.value) this.hosts.set(name, c.value as Host);
        else this.hosts.delete(name);
        affected.add(name);
        // Its address is in the views of every host it shares a network with.
        for (const pn of this.byHost.get(name) ?? []) for (const a of attachments(this.ports.get(pn)!)) touchNetwork(a.network);
      } else if (kind === 'routers') {
        routersChanged = true;
        const old = this.routers.get(name);
        const networksOf = (r: Router | undefined) => (r?.subnets ?? []).map((s) => this.subnets.get(s)?.network).filter((n): n is string => n !== undefined);
        const before = networksOf(old);
        if (old) this.unindexRouter(old);
        if (c.value) this.indexRouter(c.value as Router);
        for (const n of new Set([...before, ...networksOf(c.value as Router | undefined)])) touchNetwork(n);
      } else if (kind === 'subnets') {
        // A subnet's gateway and DHCP settings are in the views of its network's hosts.
        const old = this.subnets.get(name);
        if (old) {
          touchNetwork(old.network);
          this.unindexSubnet(old);
        }
        if (c.value) {
          this.indexSubnet(c.value as Subnet);
          touchNetwork((c.value as Subnet).network);
        }
      }
    }
    // Where gateways are, after the change: their hosts, and the hosts sending to them.
    for (const r of this.place()) for (const h of this.routerHosts(r)) affected.add(h);
    if (routersChanged || changes.some((c) => c.key.startsWith('/hosts/'))) for (const h of gatewayHosts()) affected.add(h);
    return affected;
  }

  /** An agent's watch came or went: gateways may move. Returns the hosts whose view changed. */
  setConnected(host: string, connected: boolean): Set<string> {
    if (connected) this.connected.add(host);
    else this.connected.delete(host);
    const affected = new Set<string>();
    for (const r of this.place()) for (const h of this.routerHosts(r)) affected.add(h);
    return affected;
  }

  /** The host holding router r's external gateway (undefined: none, or no host can). */
  gatewayHost(r: Router): string | undefined {
    if (!r.externalGateway) return undefined;
    return r.externalGateway.host ?? this.placement.get(r.name);
  }

  /**
   * Places every external gateway not pinned to a host: it stays where it is while that
   * host is connected and on the gateway's physical network; else it moves to the first
   * such host (by name) that is connected; with none connected it stays, or goes to the
   * first that could hold it. Returns the routers whose gateway moved (with its old host).
   */
  private place(): Array<{ router: Router; from?: string }> {
    const moved: Array<{ router: Router; from?: string }> = [];
    for (const [name, host] of this.placement) {
      const r = this.routers.get(name);
      if (!r?.externalGateway || r.externalGateway.host !== undefined) {
        this.placement.delete(name);
        if (r) moved.push({ router: r, from: host });
      }
    }
    for (const r of this.routers.values()) {
      const g = r.externalGateway;
      if (!g || g.host !== undefined) continue;
      const physnet = this.networks.get(g.network)?.provider?.physicalNetwork;
      const able = [...this.hosts.values()].filter((h) => physnet !== undefined && hasOwnKey(h.physicalNetworks, physnet)).map((h) => h.name).sort();
      const current = this.placement.get(r.name);
      let next = current;
      if (current === undefined || !able.includes(current) || !this.connected.has(current)) {
        next = able.find((h) => this.connected.has(h)) ?? (current !== undefined && able.includes(current) ? current : able[0]);
      }
      if (next === current) continue;
      if (next === undefined) this.placement.delete(r.name);
      else this.placement.set(r.name, next);
      moved.push({ router: r, from: current });
    }
    return moved;
  }

  /** The hosts a router's gateway move concerns: the old and new gateway hosts, and every
   * host with ports on the router's networks (they send to it). */
  private routerHosts(m: { router: Router; from?: string }): string[] {
    const out = new Set<string>(m.from === undefined ? [] : [m.from]);
    const now = this.gatewayHost(m.router);
    if (now !== undefined) out.add(now);
    for (const s of m.router.subnets) {
      const n = this.subnets.get(s)?.network;
      for (const pn of (n === undefined ? [] : this.byNetwork.get(n)) ?? []) out.add(this.ports.get(pn)!.host);
    }
    return [...out];
  }

  /** The router of the subnet holding a port's first IPv4 address on its untagged network. */
  private routerOfPort(p: Port): Router | undefined {
    const ip = p.ips.find((a) => !a.includes(':'));
    if (p.network === undefined || ip === undefined) return undefined;
    const s = this.subnetsOf(p.network).find((x) => contains(parseCidr(x.cidr), parseIpv4(ip)));
    return s ? this.routers.get(this.routerOfSubnet.get(s.name) ?? '') : undefined;
  }

  /** A router's external gateway, as the host holding it makes it real. */
  private natState(r: Router): NatState | null {
    const g = r.externalGateway!;
    const subnet = this.subnetsOf(g.network).find((s) => contains(parseCidr(s.cidr), parseIpv4(g.ip)));
    if (!subnet || !this.networks.has(g.network)) return null;
    const v4 = (p: Port | undefined) => p?.ips.find((a) => !a.includes(':'));
    const floating = [...this.floatingIps.values()].filter((f) => {
      const p = this.ports.get(f.port);
      return p !== undefined && this.routerOfPort(p)?.name === r.name && v4(p) !== undefined;
    }).map((f) => ({ outside: f.address, inside: v4(this.ports.get(f.port))! }));
    const forwards = [...this.portForwards.values()].filter((f) => f.router === r.name && v4(this.ports.get(f.port)) !== undefined)
      .map((f) => ({ protocol: f.protocol, port: f.externalPort, inside: v4(this.ports.get(f.port))!, insidePort: f.internalPort }));
    const inside = r.subnets.map((s) => this.subnets.get(s)).filter((s): s is Subnet => s !== undefined && this.networks.has(s.network)).map((s) => ({ cidr: s.cidr, network: s.network }));
    return { router: r.name, network: g.network, address: `${g.ip}/${parseCidr(subnet.cidr).prefix}`, mac: g.mac, nextHop: subnet.gateway, floating, forwards, inside, limit: NAT_LIMIT };
  }

  private indexSubnet(s: Subnet): void {
    this.subnets.set(s.name, s);
    let of = this.subnetsByNetwork.get(s.network);
    if (!of) this.subnetsByNetwork.set(s.network, (of = new Map()));
    of.set(s.name, s);
  }

  private unindexSubnet(s: Subnet): void {
    this.subnets.delete(s.name);
    const of = this.subnetsByNetwork.get(s.network);
    of?.delete(s.name);
    if (of?.size === 0) this.subnetsByNetwork.delete(s.network);
  }

  /** A network's subnets, by name. */
  private subnetsOf(network: string): Subnet[] {
    return [...(this.subnetsByNetwork.get(network)?.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** An access port's DHCP lease: its first IPv4 address, in a subnet with DHCP on. */
  private dhcpFor(p: Port): { dhcp?: DhcpState } {
    for (const ip of p.ips) {
      if (ip.includes(':')) continue;
      const s = this.subnetsOf(p.network!).find((x) => contains(parseCidr(x.cidr), parseIpv4(ip)));
      if (!s || s.dhcp === false) continue;
      return { dhcp: { mac: p.mac, ip, prefixLength: parseCidr(s.cidr).prefix, gateway: s.gateway, dns: s.dns, leaseSeconds: LEASE_SECONDS, hostName: p.name, ...(s.domain ? { domain: s.domain } : {}) } };
    }
    return {};
  }

  /**
   * The addresses a group's ports have on `network` (their allowed ones with them), computed
   * once between changes. A view carries a group's addresses on its own networks only: a
   * member elsewhere has no path to this host's ports but through a router's external
   * gateway, which translates its address anyway. So a port change concerns the hosts of
   * its networks, as before groups.
   */
  private groupAddresses(group: string, network: string): string[] {
    const key = `${group}\0${network}`;
    let a = this.addressCache.get(key);
    if (!a) {
      const net = this.networks.get(network);
      // The network's ports, not the group's: a group may span every network.
      a = [...(this.byNetwork.get(network) ?? [])].sort().flatMap((pn) => {
        const p = this.ports.get(pn)!;
        const on = p.securityGroups?.includes(group) ? attachments(p).find((x) => x.network === network) : undefined;
        if (!on) return [];
        return [...(net ? withSlaac(on.ips, net, p.mac) : on.ips), ...(p.allowedAddresses ?? []).map((x) => x.ip)];
      });
      this.addressCache.set(key, a);
    }
    return a;
  }

  /** A port's security groups, for its host to enforce (with port security on). */
  private groupsFor(p: Port): PortGroups {
    if (p.portSecurity === false || p.securityGroups === undefined) return {};
    return { securityGroups: p.securityGroups, ...(p.connectionLimit ? { connectionLimit: p.connectionLimit } : {}) };
  }

  /** A group's rules as a host enforces them; a rule naming a group names its address set. */
  private groupRules(name: string): FirewallRuleState[] {
    const protocols: Record<string, number> = { any: -1, tcp: 6, udp: 17, icmp: 1, icmpv6: 58 };
    return (this.securityGroups.get(name)?.rules ?? []).map((r) => ({
      direction: r.direction, ipv6: r.ethertype === 'ipv6', protocol: typeof r.protocol === 'number' ? r.protocol : protocols[r.protocol],
      portMin: r.ports?.min ?? -1, portMax: r.ports?.max ?? -1, icmpType: r.icmp?.type ?? -1, icmpCode: r.icmp?.code ?? -1,
      remote: r.remote && 'cidr' in r.remote ? [r.remote.cidr] : null,
      ...(r.remote && 'group' in r.remote ? { remoteGroup: r.remote.group } : {}),
    }));
  }

  /** What a port may send as: its MAC and the allowed pairs' MACs; its addresses on every
   * network it is on (SLAAC ones included) and the allowed addresses; the EtherTypes it may
   * send besides IPv4, IPv6 and ARP. */
  private securityFor(p: Port): { security?: SecurityState } {
    if (p.portSecurity === false) return {};
    const pairs = p.allowedAddresses ?? [];
    const macs = [...new Set([p.mac, ...pairs.map((a) => a.mac).filter((m): m is string => m !== undefined)])];
    const ips = attachments(p).flatMap((a) => {
      const net = this.networks.get(a.network);
      return net ? withSlaac(a.ips, net, p.mac) : a.ips;
    });
    const etherTypes = (p.allowedEtherTypes ?? []).map((t) => parseInt(t, 16));
    return { security: { macs, ips: [...new Set([...ips, ...pairs.map((a) => a.ip)])], ...(etherTypes.length ? { etherTypes } : {}) } };
  }

  /** The part of the intended network that `host` must make real. */
  viewFor(host: string): HostView {
    // A port whose networks are not all known (a change still on its way) waits for them.
    const mine = [...(this.byHost.get(host) ?? [])].sort().map((n) => this.ports.get(n)!).filter((p) => attachments(p).every((a) => this.networks.has(a.network)));
    const local = new Set(mine.flatMap((p) => attachments(p).map((a) => a.network)));
    // Networks a router joins to this host's: its VMs' packets are routed into them here.
    // The host holding a router's external gateway has the router's networks and the
    // external one: it routes between them for every VM behind the router.
    const holding = [...this.routers.values()].filter((r) => this.gatewayHost(r) === host);
    const held = holding.flatMap((r) => [r.externalGateway!.network, ...r.subnets.map((s) => this.subnets.get(s)?.network).filter((n): n is string => n !== undefined)]);
    const netNames = [...new Set([...local, ...[...local].flatMap((n) => this.routedWith(n)), ...held])].filter((n) => this.networks.has(n)).sort();
    const networks: NetworkState[] = netNames.map((n) => {
      const net = this.networks.get(n)!;
      const members = [...(this.byNetwork.get(n) ?? [])].sort().map((pn) => this.ports.get(pn)!);
      const remotes = new Map<string, RemoteHost>();
      const neighbors = [];
      for (const p of members) {
        const ips = withSlaac(attachments(p).find((a) => a.network === n)!.ips, net, p.mac);
        if (p.host === host) {
          neighbors.push({ mac: p.mac, ips, port: p.name });
          continue;
        }
        // A provider network's other ports are reached through the physical network: their
        // MACs are learned on the uplink, and their addresses answered from here.
        if (net.provider) {
          neighbors.push({ mac: p.mac, ips });
          continue;
        }
        const h = this.hosts.get(p.host);
        const remote = h && remoteOf(h, net);
        if (!remote) continue; // its host has not joined yet (or has no tunnel key): nowhere to send to
        remotes.set(h.name, remote);
        neighbors.push({ mac: p.mac, ips, remote });
      }
      // Hosts whose VMs are routed into this network send into it from their own host: they
      // are its remote hosts too.
      for (const m of this.routedWith(n)) {
        for (const pn of this.byNetwork.get(m) ?? []) {
          const h = this.hosts.get(this.ports.get(pn)!.host);
          const remote = h && h.name !== host && remoteOf(h, net);
          if (remote) remotes.set(h.name, remote);
        }
      }
      // The way out, through the external gateway of the network's router.
      let external: NetworkState['external'];
      for (const s of this.subnetsOf(n)) {
        const r = this.routers.get(this.routerOfSubnet.get(s.name) ?? '');
        const gh = r && this.gatewayHost(r);
        if (!r || gh === undefined) continue;
        if (gh === host) {
          external = { router: r.name };
        } else {
          const h = this.hosts.get(gh);
          const remote = h && remoteOf(h, net);
          if (!remote) continue;
          remotes.set(h.name, remote);
          external = { router: r.name, remote };
        }
        break;
      }
      const gateways = this.subnetsOf(n).filter((s) => s.dhcp !== false || this.routerOfSubnet.has(s.name)).map((s) => `${s.gateway}/${parseCidr(s.cidr).prefix}`);
      const routes = this.subnetsOf(n).flatMap((s) => {
        const r = this.routers.get(this.routerOfSubnet.get(s.name) ?? '');
        const joined = (r?.subnets ?? []).map((t) => this.subnets.get(t)).filter((t): t is Subnet => t !== undefined && this.networks.has(t.network));
        // Static routes lead to a next hop in one of the router's subnets; each of the
        // router's networks carries them (once), so every VM reaches them.
        const statics = s === this.subnetsOf(n).find((x) => this.routerOfSubnet.get(x.name) === r?.name) ? (r?.routes ?? []).flatMap((rt) => {
          const via = joined.find((t) => contains(parseCidr(t.cidr), parseIpv4(rt.nextHop)));
          return via ? [{ cidr: rt.cidr, network: via.network, nextHop: rt.nextHop }] : [];
        }) : [];
        return [...joined.filter((t) => t.name !== s.name).map((t) => ({ cidr: t.cidr, network: t.network })), ...statics];
      });
      // IPv6: the /64 of each other network the router joins this one to.
      const routed6 = new Set(this.routedWith(n).filter((m) => this.networks.get(m)?.ipv6));
      for (const m of [...routed6].sort()) routes.push({ cidr: this.networks.get(m)!.ipv6!.prefix, network: m });
      if (net.provider) {
        // The physical network's own router owns the gateway address: not answered here.
        return { name: n, vni: net.vni, encapsulation: net.encapsulation, ...(net.mtu ? { mtu: net.mtu } : {}), provider: true, remotes: [], neighbors };
      }
      return {
        name: n,
        vni: net.vni,
        encapsulation: net.encapsulation,
        ...(net.encryption === 'noise' ? { encryption: 'noise' as const } : {}),
        ...(net.mtu ? { mtu: net.mtu } : {}),
        remotes: [...remotes.values()].sort((a, b) => (a.address < b.address ? -1 : 1)),
        neighbors,
        ...(gateways.length ? { gateways } : {}),
        ...(routes.length ? { routes } : {}),
        ...(external ? { external } : {}),
        ...(net.ipv6 ? { ipv6: { prefix: net.ipv6.prefix, dns: net.ipv6.dns, routed: this.subnetsOf(n).some((s) => this.routerOfSubnet.has(s.name)) } } : {}),
      };
    });
    const ports: PortState[] = mine.map((p) => (p.vlans === undefined
      ? { name: p.name, mode: 'access', network: p.network!, backend: p.backend, ...this.dhcpFor(p), ...this.securityFor(p), ...this.groupsFor(p) }
      : { name: p.name, mode: 'trunk', vlans: Object.fromEntries(p.vlans.map((v) => [v.vid, v.network])), ...(p.network === undefined ? {} : { nativeNetwork: p.network }), backend: p.backend, ...this.securityFor(p), ...this.groupsFor(p) }));
    const nat = holding.map((r) => this.natState(r)).filter((s): s is NatState => s !== null);
    const used = [...new Set(ports.flatMap((p) => p.securityGroups ?? []))].sort();
    const securityGroups = Object.fromEntries(used.map((g) => [g, this.groupRules(g)]));
    const named = [...new Set(Object.values(securityGroups).flatMap((rules) => rules.map((r) => r.remoteGroup).filter((g): g is string => g !== undefined)))].sort();
    const addressSets = Object.fromEntries(named.map((g) => [g, [...new Set(netNames.flatMap((n) => this.groupAddresses(g, n)))]]));
    return {
      host, networks, ports: [...ports, ...this.uplinksFor(host, networks)], ...(nat.length ? { nat } : {}),
      ...(used.length ? { securityGroups } : {}), ...(named.length ? { addressSets } : {}),
    };
  }

  /** One uplink port per physical network the host's provider networks are on: a trunk on
   * the host's interface, VLAN networks tagged and the flat one native. */
  private uplinksFor(host: string, networks: NetworkState[]): PortState[] {
    const byPhysnet = new Map<string, { vlans: Record<number, string>; native?: string }>();
    for (const ns of networks) {
      const provider = this.networks.get(ns.name)?.provider;
      if (!provider) continue;
      let u = byPhysnet.get(provider.physicalNetwork);
      if (!u) byPhysnet.set(provider.physicalNetwork, (u = { vlans: {} }));
      if (provider.vlan === undefined) u.native = ns.name;
      else u.vlans[provider.vlan] = ns.name;
    }
    const mapping = this.hosts.get(host)?.physicalNetworks;
    return [...byPhysnet].filter(([physnet]) => hasOwnKey(mapping, physnet)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([physnet, u]) => ({
      name: `uplink:${physnet}`, mode: 'trunk', vlans: u.vlans, ...(u.native ? { nativeNetwork: u.native } : {}), backend: { type: 'uplink', interface: own(mapping, physnet)! },
    }));
  }
}

const LEASE_SECONDS = 3600;

/** A port's addresses on a network, with the one it makes itself by SLAAC on the network's
 * IPv6 prefix (from its MAC, modified EUI-64) unless it has one there already. */
function withSlaac(ips: string[], net: Network, mac: string): string[] {
  if (!net.ipv6) return ips;
  const prefix = parseIpv6(net.ipv6.prefix.split('/')[0]);
  const inPrefix = (ip: string) => ip.includes(':') && parseIpv6(ip).subarray(0, 8).every((b, i) => b === prefix[i]);
  if (ips.some(inPrefix)) return ips;
  return [...ips, formatIpv6(eui64(prefix, parseMac(mac)))];
}
/** Connections a router's NAT holds at most. */
const NAT_LIMIT = 65_536;

function add(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function remove(m: Map<string, Set<string>>, k: string, v: string): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/** Where a network's frames go to reach host `h`: its VXLAN or Geneve port, or for an
 * encrypted network its tunnel port and key (null: it has no key, so it cannot be reached). */
function remoteOf(h: Host, net: Network): RemoteHost | null {
  // A revoked host is nobody's peer: its traffic is refused everywhere.
  if (h.revokedAt !== undefined) return null;
  if (net.encryption === 'noise') return h.tunnelKey ? { address: h.address, port: h.tunnelPort ?? TUNNEL_PORT, publicKey: h.tunnelKey } : null;
  // Each encapsulation has its own UDP port on every host.
  return { address: h.address, port: net.encapsulation === 'geneve' ? h.genevePort ?? GENEVE_PORT : h.port };
}
