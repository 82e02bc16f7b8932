/**
 * The controller's in-memory copy of the intended network, kept current from the store's
 * change feed, with the indexes that make a host's view cheap to compute: ports by host
 * and by network, and one *piece* per network, computed once and shared by every host that
 * holds the network.
 *
 * A network's piece is what every member host needs of it, in host-independent form: its
 * ports' neighbor entries (MAC, addresses, where the port's host is reached), the hosts
 * that are its remotes, and its header (VNI, gateways, routes, IPv6, the candidates for the
 * way out). A host's view of the network is the piece seen from that host (its own ports'
 * entries name the port instead of a remote; it is not its own remote). A change updates
 * the entries it changes (a port: its entries on its networks; a host: its ports' entries),
 * recomputes the headers of the networks it touches (and of those routed with them), and
 * records what it changed (`takeChanges`) for the watch to turn into deltas
 * (view-feed.ts); nothing is recomputed for a network the change does not touch.
 */
import type { DhcpState, FirewallRuleState, HostView, NatState, Neighbor, NetworkState, PortGroups, PortState, RemoteHost, SecurityState } from '../view/host-view.js';
import { contains, parseCidr } from './ipam.js';
import { formatIpv6, parseIpv4, parseIpv6, parseMac } from '../wire/bytes.js';
import { eui64 } from '../datapath/ipv6.js';
import { attachments, type FloatingIp, type Host, type Network, type Port, type PortForward, type Router, type SecurityGroup, type Subnet } from './model.js';
import type { Change, Store } from './store/store.js';
import { GENEVE_PORT, TUNNEL_PORT } from '../wire/udp.js';
import { hasOwnKey, own } from '../config/fields.js';

/** A port's entry in a network's piece: its neighbor, seen from no host in particular. */
export interface NeighborEntry {
  host: string;
  mac: string;
  /** Its addresses on the network (its SLAAC one with them). */
  ips: string[];
  /** Where its host is reached on this network (null: its host has not joined, or has no
   * tunnel key for an encrypted network: nowhere to send to). */
  remote: RemoteHost | null;
  /** Its security groups, and its allowed addresses: what group address sets hold of it. */
  groups: string[];
  allowed: string[];
}

/** A network's piece apart from its neighbors, seen from no host in particular. */
interface NetworkHeader {
  /** The network's own fields as a view gives them. */
  base: Omit<NetworkState, 'remotes' | 'neighbors' | 'gateways' | 'routes' | 'external' | 'ipv6'>;
  provider: boolean;
  gateways: string[];
  routes: NonNullable<NetworkState['routes']>;
  ipv6?: NetworkState['ipv6'];
  /** Hosts that are this network's remotes for every host but themselves (its members with
   * a remote, and the hosts routed into it), by name. */
  remotes: Array<[string, RemoteHost]>;
  /** The way out, candidates in subnet order: the first whose host is the viewer, or has a
   * remote, is taken. */
  external: Array<{ router: string; host: string; remote: RemoteHost | null }>;
}

/** A network's piece: its neighbor entries by port name, its member hosts and its header. */
class NetworkPiece {
  readonly entries = new Map<string, NeighborEntry>();
  /** Host -> how many of the network's ports it has. */
  readonly hosts = new Map<string, number>();
  private sorted: string[] | null = null;
  header: NetworkHeader | null = null;
  headerJson = '';
  /** Bumped when the header changes (view-feed.ts sends a host the header again then). */
  version = 0;

  set(port: string, e: NeighborEntry): void {
    if (!this.entries.has(port)) this.sorted = null;
    this.entries.set(port, e);
  }

  delete(port: string): void {
    if (this.entries.delete(port)) this.sorted = null;
  }

  /** Its port names in view order (sorted). */
  names(): string[] {
    return (this.sorted ??= [...this.entries.keys()].sort());
  }
}

/**
 * What changes did since the last `takeChanges`, for the watch to turn into each host's
 * delta (view-feed.ts).
 */
export interface ViewChanges {
  /** Hosts whose view may have changed. */
  hosts: Set<string>;
  /** Network -> port -> its neighbor entry as it was at the last take (undefined: none). */
  entries: Map<string, Map<string, NeighborEntry | undefined>>;
  /** Networks whose record changed: their holders are sent them whole. */
  replaced: Set<string>;
  /** Host -> its ports whose own state may have changed (it had or has them). */
  ports: Map<string, Set<string>>;
  /** Security groups whose rules changed. */
  groups: Set<string>;
}

const noChanges = (): ViewChanges => ({ hosts: new Set(), entries: new Map(), replaced: new Set(), ports: new Map(), groups: new Set() });

export class ModelCache {
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
  /** Network -> group -> its members' addresses on the network, computed when asked for
   * after a change to them. */
  private readonly addressCache = new Map<string, Map<string, string[]>>();
  /** Network -> its piece (every known network, and any network ports name). */
  private readonly pieces = new Map<string, NetworkPiece>();
  /** Networks whose header must be computed again before it is read. */
  private readonly staleHeaders = new Set<string>();
  private pending = noChanges();
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

  static async load(store: Store): Promise<ModelCache> {
    const m = new ModelCache();
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
    for (const a of attachments(p)) {
      const had = this.byNetwork.get(a.network)?.has(p.name);
      add(this.byNetwork, a.network, p.name);
      if (had) continue;
      const piece = this.piece(a.network);
      const count = (piece.hosts.get(p.host) ?? 0) + 1;
      piece.hosts.set(p.host, count);
      // A new member host: a remote of the network (and of those routed with it) now.
      if (count === 1) this.staleNetwork(a.network);
      this.setEntry(a.network, p);
    }
  }

  /** Network n's piece (made empty if it has none yet). */
  private piece(n: string): NetworkPiece {
    let piece = this.pieces.get(n);
    if (!piece) this.pieces.set(n, (piece = new NetworkPiece()));
    return piece;
  }

  /** Records the entry a port had on n before this change, once between takes. */
  private recordEntry(n: string, port: string): void {
    let of = this.pending.entries.get(n);
    if (!of) this.pending.entries.set(n, (of = new Map()));
    if (!of.has(port)) of.set(port, this.pieces.get(n)?.entries.get(port));
  }

  /** Port p's entry on n, computed from p, n's record and p's host's record. */
  private setEntry(n: string, p: Port): void {
    const piece = this.piece(n);
    this.recordEntry(n, p.name);
    const net = this.networks.get(n);
    const a = attachments(p).find((x) => x.network === n)!;
    const h = this.hosts.get(p.host);
    piece.set(p.name, {
      host: p.host, mac: p.mac, ips: net ? withSlaac(a.ips, net, p.mac) : a.ips, remote: (h && net && remoteOf(h, net)) || null,
      groups: p.securityGroups ?? [], allowed: (p.allowedAddresses ?? []).map((x) => x.ip),
    });
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
    for (const a of attachments(p)) {
      if (!this.byNetwork.get(a.network)?.has(p.name)) continue;
      remove(this.byNetwork, a.network, p.name);
      const piece = this.pieces.get(a.network)!;
      this.recordEntry(a.network, p.name);
      piece.delete(p.name);
      const left = (piece.hosts.get(p.host) ?? 1) - 1;
      if (left > 0) piece.hosts.set(p.host, left);
      else {
        piece.hosts.delete(p.host);
        this.staleNetwork(a.network);
      }
    }
  }

  /** A group's addresses on n may have changed. */
  private staleAddresses(group: string, n: string): void {
    this.addressCache.get(n)?.delete(group);
  }

  /** A port's own state on its host may have changed. */
  private stalePort(host: string, port: string): void {
    add(this.pending.ports, host, port);
    this.pending.hosts.add(host);
  }

  /** What changed since the last call (view-feed.ts), the headers it touched recomputed. */
  takeChanges(): ViewChanges {
    for (const n of this.staleHeaders) this.headerOf(n);
    // Every host holding a network whose entries changed.
    for (const n of this.pending.entries.keys()) for (const h of this.holders(n)) this.pending.hosts.add(h);
    const taken = this.pending;
    this.pending = noChanges();
    return taken;
  }

  /**
   * Applies committed changes: updates the pieces they touch and records what changed (read
   * by `takeChanges`). Returns the hosts whose view may have changed so far (those holding
   * a touched network, the hosts of touched ports, the gateway hosts of touched routers).
   */
  apply(changes: Change[]): Set<string> {
    const affected = this.pending.hosts;
    // The hosts holding a network: with ports on it or on a network routed with it (their
    // views hold its ports), or holding an external gateway of a router on it.
    const touchNetwork = (n: string) => {
      for (const h of this.holders(n)) affected.add(h);
    };
    for (const c of changes) {
      this.revision = Math.max(this.revision, c.revision);
      // The claims of names, addresses and MACs say nothing a view holds.
      if (c.key.startsWith('/index/')) continue;
      const [, kind, name] = c.key.split('/');
      if (kind === 'security-groups') {
        // Its members apply its rules, and the members of groups naming it hold its
        // members' addresses: the hosts of all those ports.
        const touched = new Set([name]);
        for (const g of this.securityGroups.values()) if (g.rules.some((r) => r.remote && 'group' in r.remote && r.remote.group === name)) touched.add(g.name);
        if (c.value) this.securityGroups.set(name, c.value as SecurityGroup);
        else this.securityGroups.delete(name);
        this.pending.groups.add(name);
        for (const g of touched) for (const pn of this.groupMembers.get(g) ?? []) affected.add(this.ports.get(pn)!.host);
        continue;
      }
      if (kind === 'floating-ips' || kind === 'port-forwards') {
        const map: Map<string, unknown> = kind === 'floating-ips' ? this.floatingIps : this.portForwards;
        if (c.value) map.set(name, c.value);
        else map.delete(name);
        // The routers' NAT: on the hosts holding their external gateways.
        for (const r of this.routers.values()) {
          const gh = this.gatewayHost(r);
          if (gh !== undefined) affected.add(gh);
        }
        continue;
      }
      if (kind === 'ports') {
        const old = this.ports.get(name);
        if (old) {
          for (const a of attachments(old)) touchNetwork(a.network);
          affected.add(old.host);
          this.stalePort(old.host, name);
          this.unindexPort(old);
          for (const a of attachments(old)) for (const g of old.securityGroups ?? []) this.staleAddresses(g, a.network);
        }
        if (c.value) {
          const p = c.value as Port;
          this.indexPort(p);
          this.stalePort(p.host, name);
          for (const a of attachments(p)) {
            touchNetwork(a.network);
            for (const g of p.securityGroups ?? []) this.staleAddresses(g, a.network);
          }
        }
        // A floating IP or port forward to it: the NAT of its router's gateway host.
        if ([...this.floatingIps.values()].some((f) => f.port === name) || [...this.portForwards.values()].some((f) => f.port === name)) {
          for (const r of this.routers.values()) {
            const gh = this.gatewayHost(r);
            if (gh !== undefined) affected.add(gh);
          }
        }
      } else if (kind === 'networks') {
        touchNetwork(name);
        this.staleNetwork(name);
        if (c.value) this.networks.set(name, c.value as Network);
        else this.networks.delete(name);
        this.pending.replaced.add(name);
        // Its ports' entries (addresses by SLAAC, the remotes of its encapsulation), and
        // their own states (waiting for their networks, or not).
        for (const pn of this.byNetwork.get(name) ?? []) {
          const p = this.ports.get(pn)!;
          this.setEntry(name, p);
          this.stalePort(p.host, pn);
        }
        this.addressCache.delete(name);
        touchNetwork(name);
        this.staleNetwork(name);
      } else if (kind === 'hosts') {
        const holding = (h: string) => [...this.routers.values()].filter((r) => this.gatewayHost(r) === h);
        const wasHolding = holding(name);
        if (c.value) this.hosts.set(name, c.value as Host);
        else this.hosts.delete(name);
        affected.add(name);
        // Its address is in the views of every host it shares a network with: its ports'
        // entries, and the remotes of their networks.
        for (const pn of this.byHost.get(name) ?? []) {
          const p = this.ports.get(pn)!;
          for (const a of attachments(p)) {
            this.setEntry(a.network, p);
            touchNetwork(a.network);
            this.staleNetwork(a.network);
          }
        }
        // The way out through the gateways it holds.
        for (const r of new Set([...wasHolding, ...holding(name)])) this.staleRouter(r, affected);
      } else if (kind === 'routers') {
        const old = this.routers.get(name);
        if (old) this.staleRouter(old, affected);
        if (old) this.unindexRouter(old);
        if (c.value) this.indexRouter(c.value as Router);
        if (c.value) this.staleRouter(c.value as Router, affected);
      } else if (kind === 'subnets') {
        // A subnet's gateway and DHCP settings are in the views of its network's hosts.
        const old = this.subnets.get(name);
        const now = c.value as Subnet | null;
        for (const n of new Set([old?.network, now?.network])) {
          if (n === undefined) continue;
          touchNetwork(n);
          this.staleNetwork(n);
        }
        if (old) this.unindexSubnet(old);
        if (now) this.indexSubnet(now);
        for (const n of new Set([old?.network, now?.network])) {
          if (n === undefined) continue;
          touchNetwork(n);
          this.staleNetwork(n);
          // Its ports' DHCP leases.
          for (const pn of this.byNetwork.get(n) ?? []) this.stalePort(this.ports.get(pn)!.host, pn);
        }
      }
    }
    // Where gateways are, after the change: their hosts, and the hosts sending to them.
    for (const m of this.place()) this.moved(m, affected);
    return affected;
  }

  /** The hosts holding network n: with ports on it or on a network routed with it, or
   * holding the external gateway of a router on it. */
  private holders(n: string): Set<string> {
    const out = new Set<string>();
    for (const m of [n, ...this.routedWith(n)]) for (const h of this.pieces.get(m)?.hosts.keys() ?? []) out.add(h);
    for (const r of this.routers.values()) {
      const gh = this.gatewayHost(r);
      if (gh !== undefined && this.routerNetworks(r).includes(n)) out.add(gh);
    }
    return out;
  }

  /** A router's networks: its subnets', and its external gateway's. */
  private routerNetworks(r: Router): string[] {
    const out = r.subnets.map((s) => this.subnets.get(s)?.network).filter((n): n is string => n !== undefined);
    if (r.externalGateway) out.push(r.externalGateway.network);
    return out;
  }

  /** Network n's header, and those of the networks routed with it, are to be computed
   * again (their remotes, routes, gateways or way out may have changed). */
  private staleNetwork(n: string): void {
    this.staleHeaders.add(n);
    for (const m of this.routedWith(n)) this.staleHeaders.add(m);
  }

  /** A router changed, or its gateway's host did: the headers of its networks (and of
   * those routed with them) and every host holding them (its gateway host with them). */
  private staleRouter(r: Router, affected: Set<string>): void {
    for (const n of this.routerNetworks(r)) {
      this.staleNetwork(n);
      for (const h of this.holders(n)) affected.add(h);
    }
    const gh = this.gatewayHost(r);
    if (gh !== undefined) affected.add(gh);
  }

  /** A router's external gateway moved (place()). */
  private moved(m: { router: Router; from?: string }, affected: Set<string>): void {
    for (const h of this.routerHosts(m)) affected.add(h);
    if (m.from !== undefined) affected.add(m.from);
    this.staleRouter(m.router, affected);
  }

  /** An agent's watch came or went: gateways may move. Returns the hosts whose view changed. */
  setConnected(host: string, connected: boolean): Set<string> {
    if (connected) this.connected.add(host);
    else this.connected.delete(host);
    const affected = new Set<string>();
    for (const m of this.place()) this.moved(m, affected);
    for (const h of affected) this.pending.hosts.add(h);
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
    let of = this.addressCache.get(network);
    if (!of) this.addressCache.set(network, (of = new Map()));
    let a = of.get(group);
    if (!a) of.set(group, (a = (this.groupParts(group, [network])[network] ?? []).flatMap(([, addresses]) => addresses)));
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

  /** Network n's header, computed again if a change touched it (its version bumped when
   * it came out different). */
  private headerOf(n: string): NetworkHeader | null {
    const piece = this.piece(n);
    if (!this.staleHeaders.has(n) && piece.headerJson !== '') return piece.header;
    this.staleHeaders.delete(n);
    const header = this.computeHeader(n, piece);
    const json = JSON.stringify(header);
    if (json !== piece.headerJson) {
      piece.header = header;
      piece.headerJson = json;
      piece.version++;
      for (const h of this.holders(n)) this.pending.hosts.add(h);
    }
    return piece.header;
  }

  /** The version of network n's header (view-feed.ts: has a host's copy of it changed?). */
  headerVersion(n: string): number {
    this.headerOf(n);
    return this.pieces.get(n)!.version;
  }

  private computeHeader(n: string, piece: NetworkPiece): NetworkHeader | null {
    const net = this.networks.get(n);
    if (!net) return null;
    if (net.provider) {
      // The physical network's own router owns the gateway address: not answered here.
      return { base: { name: n, vni: net.vni, encapsulation: net.encapsulation, ...(net.mtu ? { mtu: net.mtu } : {}), provider: true }, provider: true, gateways: [], routes: [], remotes: [], external: [] };
    }
    const remotes = new Map<string, RemoteHost>();
    const remoteOfHost = (name: string) => {
      const h = this.hosts.get(name);
      return (h && remoteOf(h, net)) || null;
    };
    for (const h of piece.hosts.keys()) {
      const r = remoteOfHost(h);
      if (r) remotes.set(h, r);
    }
    // Hosts whose VMs are routed into this network send into it from their own host: they
    // are its remote hosts too.
    for (const m of this.routedWith(n)) {
      for (const h of this.pieces.get(m)?.hosts.keys() ?? []) {
        const r = remoteOfHost(h);
        if (r) remotes.set(h, r);
      }
    }
    // The way out, through the external gateway of the network's router.
    const external: NetworkHeader['external'] = [];
    for (const s of this.subnetsOf(n)) {
      const r = this.routers.get(this.routerOfSubnet.get(s.name) ?? '');
      const gh = r && this.gatewayHost(r);
      if (!r || gh === undefined) continue;
      external.push({ router: r.name, host: gh, remote: remoteOfHost(gh) });
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
    return {
      base: { name: n, vni: net.vni, encapsulation: net.encapsulation, ...(net.encryption === 'noise' ? { encryption: 'noise' as const } : {}), ...(net.mtu ? { mtu: net.mtu } : {}) },
      provider: false,
      gateways,
      routes,
      ...(net.ipv6 ? { ipv6: { prefix: net.ipv6.prefix, dns: net.ipv6.dns, routed: this.subnetsOf(n).some((s) => this.routerOfSubnet.has(s.name)) } } : {}),
      remotes: [...remotes],
      external,
    };
  }

  /** Network n as `host` sees it, without its neighbors (n must be known). */
  networkHeaderFor(n: string, host: string): Omit<NetworkState, 'neighbors'> {
    const head = this.headerOf(n)!;
    if (head.provider) return { ...head.base, remotes: [] };
    const remotes = new Map(head.remotes);
    remotes.delete(host);
    let external: NetworkState['external'];
    for (const c of head.external) {
      if (c.host === host) {
        external = { router: c.router };
        break;
      }
      if (!c.remote) continue;
      remotes.set(c.host, c.remote);
      external = { router: c.router, remote: c.remote };
      break;
    }
    return {
      ...head.base,
      remotes: [...remotes.values()].sort((a, b) => (a.address < b.address ? -1 : 1)),
      ...(head.gateways.length ? { gateways: head.gateways } : {}),
      ...(head.routes.length ? { routes: head.routes } : {}),
      ...(external ? { external } : {}),
      ...(head.ipv6 ? { ipv6: head.ipv6 } : {}),
    };
  }

  /** Whether network n is a provider network (its neighbors have no remote). */
  isProvider(n: string): boolean {
    return this.networks.get(n)?.provider !== undefined;
  }

  /** Network n's entry of a port as `host` sees it (null: not in its view). */
  static neighborFor(e: NeighborEntry | undefined, port: string, host: string, provider: boolean): Neighbor | null {
    if (!e) return null;
    if (e.host === host) return { mac: e.mac, ips: e.ips, port };
    // A provider network's other ports are reached through the physical network: their
    // MACs are learned on the uplink, and their addresses answered from here.
    if (provider) return { mac: e.mac, ips: e.ips };
    // Its host has not joined yet (or has no tunnel key): nowhere to send to.
    return e.remote ? { mac: e.mac, ips: e.ips, remote: e.remote } : null;
  }

  /** Network n's current entry of a port. */
  entry(n: string, port: string): NeighborEntry | undefined {
    return this.pieces.get(n)?.entries.get(port);
  }

  /** Network n as `host` sees it (n must be known), with its neighbors' port names (in the
   * order of its neighbors: what deltas name them by). */
  networkFor(n: string, host: string): { state: NetworkState; keys: string[] } {
    const piece = this.piece(n);
    const provider = this.isProvider(n);
    const neighbors: Neighbor[] = [];
    const keys: string[] = [];
    for (const pn of piece.names()) {
      const nb = ModelCache.neighborFor(piece.entries.get(pn), pn, host, provider);
      if (!nb) continue;
      neighbors.push(nb);
      keys.push(pn);
    }
    const head = this.networkHeaderFor(n, host);
    // Fields in the order views have always had them.
    const { gateways, routes, external, ipv6, ...rest } = head;
    return { state: { ...rest, neighbors, ...(gateways ? { gateways } : {}), ...(routes ? { routes } : {}), ...(external ? { external } : {}), ...(ipv6 ? { ipv6 } : {}) }, keys };
  }

  /** A host's own ports in view order; a port whose networks are not all known (a change
   * still on its way) waits for them. */
  ownPorts(host: string): Port[] {
    return [...(this.byHost.get(host) ?? [])].sort().map((n) => this.ports.get(n)!).filter((p) => this.ready(p));
  }

  /** Whether a port's networks are all known (else it waits for them, out of views). */
  ready(p: Port): boolean {
    return attachments(p).every((a) => this.networks.has(a.network));
  }

  /** The networks in `host`'s view, sorted. */
  networksOf(host: string, mine = this.ownPorts(host)): string[] {
    const local = new Set(mine.flatMap((p) => attachments(p).map((a) => a.network)));
    // Networks a router joins to this host's: its VMs' packets are routed into them here.
    // The host holding a router's external gateway has the router's networks and the
    // external one: it routes between them for every VM behind the router.
    const held = this.holding(host).flatMap((r) => [r.externalGateway!.network, ...r.subnets.map((s) => this.subnets.get(s)?.network).filter((n): n is string => n !== undefined)]);
    return [...new Set([...local, ...[...local].flatMap((n) => this.routedWith(n)), ...held])].filter((n) => this.networks.has(n)).sort();
  }

  /** Whether `host`'s view depends on where the controller placed an external gateway (a
   * router's not pinned to a host, on one of its networks): what a restarted controller
   * cannot know of the view an agent had before. */
  dependsOnPlacement(host: string): boolean {
    const nets = new Set(this.networksOf(host));
    return [...this.routers.values()].some((r) => r.externalGateway && r.externalGateway.host === undefined && this.routerNetworks(r).some((n) => nets.has(n)));
  }

  /** The routers whose external gateway `host` holds. */
  private holding(host: string): Router[] {
    return [...this.routers.values()].filter((r) => this.gatewayHost(r) === host);
  }

  /** A port's state on its host (it must be ready). */
  portState(p: Port): PortState {
    return p.vlans === undefined
      ? { name: p.name, mode: 'access', network: p.network!, backend: p.backend, ...this.dhcpFor(p), ...this.securityFor(p), ...this.groupsFor(p) }
      : { name: p.name, mode: 'trunk', vlans: Object.fromEntries(p.vlans.map((v) => [v.vid, v.network])), ...(p.network === undefined ? {} : { nativeNetwork: p.network }), backend: p.backend, ...this.securityFor(p), ...this.groupsFor(p) };
  }

  /** The external gateways `host` holds, as it makes them real. */
  natFor(host: string): NatState[] {
    return this.holding(host).map((r) => this.natState(r)).filter((s): s is NatState => s !== null);
  }

  /** The rules of the groups of these ports, and the address sets they name on `netNames`. */
  groupsOf(ports: PortState[], netNames: string[]): { securityGroups?: Record<string, FirewallRuleState[]>; addressSets?: Record<string, string[]> } {
    const used = [...new Set(ports.flatMap((p) => p.securityGroups ?? []))].sort();
    const securityGroups = Object.fromEntries(used.map((g) => [g, this.groupRules(g)]));
    const named = ModelCache.namedGroups(securityGroups);
    const addressSets = Object.fromEntries(named.map((g) => [g, this.addressSet(g, netNames)]));
    return { ...(used.length ? { securityGroups } : {}), ...(named.length ? { addressSets } : {}) };
  }

  /** The groups these rules name as remote, sorted. */
  static namedGroups(securityGroups: Record<string, FirewallRuleState[]>): string[] {
    return [...new Set(Object.values(securityGroups).flatMap((rules) => rules.map((r) => r.remoteGroup).filter((g): g is string => g !== undefined)))].sort();
  }

  /** A group's addresses on these networks. */
  addressSet(group: string, netNames: string[]): string[] {
    return [...new Set(netNames.flatMap((n) => this.groupAddresses(group, n)))];
  }

  /** What a group's address set holds of a port's entry on a network (null: nothing, it is
   * not in the group). */
  static groupEntry(e: NeighborEntry | undefined, group: string): string[] | null {
    return e && e.groups.includes(group) ? [...e.ips, ...e.allowed] : null;
  }

  /** A group's addresses on these networks by network and port, in view order (the
   * networks where it has none left out): what the address set is made of. */
  groupParts(group: string, netNames: string[]): Record<string, Array<[string, string[]]>> {
    const out: Record<string, Array<[string, string[]]>> = {};
    for (const n of netNames) {
      const piece = this.pieces.get(n);
      if (!piece) continue;
      const part: Array<[string, string[]]> = [];
      for (const pn of piece.names()) {
        const a = ModelCache.groupEntry(piece.entries.get(pn), group);
        if (a) part.push([pn, a]);
      }
      if (part.length) out[n] = part;
    }
    return out;
  }

  /** A group's rules as a host enforces them. */
  rulesOf(group: string): FirewallRuleState[] {
    return this.groupRules(group);
  }

  /** The part of the intended network that `host` must make real. */
  viewFor(host: string): HostView {
    return this.copyFor(host).view;
  }

  /** `host`'s view, and its networks' neighbors' port names (what deltas name them by). */
  copyFor(host: string): { view: HostView; keys: Record<string, string[]>; groups: Record<string, Record<string, Array<[string, string[]]>>> } {
    const mine = this.ownPorts(host);
    const netNames = this.networksOf(host, mine);
    const built = netNames.map((n) => this.networkFor(n, host));
    const ports = mine.map((p) => this.portState(p));
    const nat = this.natFor(host);
    const groups = this.groupsOf(ports, netNames);
    return {
      view: { host, networks: built.map((b) => b.state), ports: [...ports, ...this.uplinksFor(host, netNames)], ...(nat.length ? { nat } : {}), ...groups },
      keys: Object.fromEntries(netNames.map((n, i) => [n, built[i].keys])),
      groups: Object.fromEntries(Object.keys(groups.addressSets ?? {}).map((g) => [g, this.groupParts(g, netNames)])),
    };
  }

  /** A port's security groups as its host enforces them (none with port security off). */
  portGroups(p: Port): string[] {
    return p.portSecurity === false || p.securityGroups === undefined ? [] : p.securityGroups;
  }

  /** One uplink port per physical network the host's provider networks are on: a trunk on
   * the host's interface, VLAN networks tagged and the flat one native. */
  uplinksFor(host: string, netNames: string[]): PortState[] {
    const byPhysnet = new Map<string, { vlans: Record<number, string>; native?: string }>();
    for (const n of netNames) {
      const provider = this.networks.get(n)?.provider;
      if (!provider) continue;
      let u = byPhysnet.get(provider.physicalNetwork);
      if (!u) byPhysnet.set(provider.physicalNetwork, (u = { vlans: {} }));
      if (provider.vlan === undefined) u.native = n;
      else u.vlans[provider.vlan] = n;
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
