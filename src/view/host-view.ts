/**
 * The host view: what the controller tells an agent about its part of the intended network,
 * and the contract between the two. Both import this module and nothing of each other: the
 * controller computes views (src/controller/model-cache.ts), the agent makes them real
 * (src/agent/reconciler.ts, through a HostState). A view is sent whole, as JSON, then as
 * deltas of it (view-delta.ts), so every field here is plain data; a field added later must be optional, so that an agent one
 * version behind still applies the rest.
 */
import type { Encapsulation } from '../datapath/encapsulation.js';

export interface RemoteHost {
  /** Underlay IPv4 address of the remote VTEP. */
  address: string;
  /** Its UDP port for the network's encapsulation. */
  port: number;
  /** On an encrypted network: the remote host's tunnel key (X25519 public, base64); `port`
   * is then its tunnel port. */
  publicKey?: string;
}

export interface NetworkState {
  name: string;
  vni: number;
  encapsulation: Encapsulation;
  /** 'noise': carried only in encrypted tunnels between hosts (absent: in clear). */
  encryption?: 'noise';
  /** The hosts that share this network: flooded frames are replicated to each. */
  remotes: RemoteHost[];
  /** An MTU below what the underlay allows, if the network asks for one. */
  mtu?: number;
  /** A provider network: it leaves this host on a host interface (an uplink port in
   * `ports`), not through tunnels; `remotes` is empty and neighbors have no `remote`. */
  provider?: boolean;
  /** Ports known to be on this network (pushed by a controller): their MACs are installed
   * in the FDB, and ARP requests for their addresses are answered by the agent. */
  neighbors?: Neighbor[];
  /** Gateway addresses of the network's subnets with their prefix length (10.0.0.1/24): the
   * agent answers ARP and pings for them from its router MAC (they are the DHCP server's
   * address, and the router's), and sends ICMP errors from them. */
  gateways?: string[];
  /** Where a router takes packets sent to the router MAC on this network: each prefix of
   * the other subnets it joins, and their network (also in this view, with its neighbors). */
  routes?: Array<{ cidr: string; network: string; nextHop?: string }>;
  /** The network's IPv6 prefix (a /64): the agent sends router advertisements for SLAAC
   * with it, the network's MTU and these DNS servers; `routed` when a router serves it (the
   * VMs then take this host's router as their default, at its link-local address). */
  ipv6?: { prefix: string; dns: string[]; routed: boolean };
  /** Where packets for beyond every route go: the external gateway of `router`, held by
   * this host (no `remote`) or by the remote host named. */
  external?: { router: string; remote?: RemoteHost };
}

/** A router's external gateway, on the host that holds it (addresses as text). */
export interface NatState {
  router: string;
  /** The external (provider) network, also in the view's networks. */
  network: string;
  /** The router's address on it, with the prefix length (203.0.113.5/24). */
  address: string;
  mac: string;
  /** Where packets for beyond the external subnet go (its gateway). */
  nextHop?: string;
  /** Floating (1:1) addresses: the outside one, and the VM's. */
  floating: Array<{ outside: string; inside: string }>;
  /** Port forwards to VMs, on the router's external address. */
  forwards: Array<{ protocol: 'tcp' | 'udp'; port: number; inside: string; insidePort: number }>;
  /** The router's subnets and their networks: where translated packets come back to. */
  inside: Array<{ cidr: string; network: string }>;
  /** Most connections at once. */
  limit: number;
}

export interface Neighbor {
  mac: string;
  ips: string[];
  /** The port's name, for a port on this host: its MAC is pinned to it. */
  port?: string;
  /** Where the port lives; absent for a port on this host. */
  remote?: RemoteHost;
}

export type BackendState =
  /** offload false: one frame at a time, no TCP super-frames (on by default). */
  | { type: 'tap'; device: string; netns?: string; offload?: boolean }
  /** A QEMU guest's NIC: the agent listens on `socket` for `-netdev stream`. */
  | { type: 'qemu'; socket: string }
  /** A host interface carrying provider networks (a trunk port: VLAN networks tagged, the
   * flat one native). */
  | { type: 'uplink'; interface: string }
  /** An in-memory port, for tests and simulations. */
  | { type: 'memory' };

/** What an access port's DHCP server offers (addresses as text). */
export interface DhcpState {
  /** The port's MAC: only requests from it are answered. */
  mac: string;
  ip: string;
  prefixLength: number;
  gateway: string;
  dns: string[];
  leaseSeconds: number;
  hostName?: string;
  /** The DNS domain: given as the domain name (option 15) and the search list (119). */
  domain?: string;
}

/** What a port may send as (port security): its MACs, and its addresses and prefixes (CIDR
 * text or plain addresses, IPv4 and IPv6). Absent: port security is off for the port. */
export interface SecurityState {
  macs: string[];
  ips: string[];
  /** EtherTypes it may send besides IPv4, IPv6 and ARP (numbers); absent: none. */
  etherTypes?: number[];
}

/** An allow rule of a port's security groups, with its remote group already turned into its
 * members' addresses. Protocol, ports and ICMP fields -1: any; remote null: anyone. */
export interface FirewallRuleState {
  direction: 'ingress' | 'egress';
  ipv6: boolean;
  protocol: number;
  portMin: number;
  portMax: number;
  icmpType: number;
  icmpCode: number;
  /** Remote prefixes; null: anyone (or the group below). */
  remote: string[] | null;
  /** A remote security group: its members' addresses are `addressSets[remoteGroup]`. */
  remoteGroup?: string;
}

export type PortState =
  | { name: string; mode: 'access'; network: string; backend: BackendState; dhcp?: DhcpState; security?: SecurityState } & PortGroups
  | { name: string; mode: 'trunk'; vlans: Record<number, string>; nativeNetwork?: string; backend: BackendState; security?: SecurityState } & PortGroups;

/** A port's security groups (their rules are the view's `securityGroups`): absent, nothing
 * is filtered; empty, nothing comes in and everything goes out. */
export interface PortGroups {
  securityGroups?: string[];
  /** Most connections its groups track at once (the agent's default when absent). */
  connectionLimit?: number;
}

/** A host's part of the intended network, as the controller sends it. */
export interface HostView {
  host: string;
  networks: NetworkState[];
  ports: PortState[];
  /** The routers' external gateways this host holds (absent: none). */
  nat?: NatState[];
  /** The rules of the security groups its ports are in, by group: once per view, whatever
   * the number of ports in them. */
  securityGroups?: Record<string, FirewallRuleState[]>;
  /** The addresses of the security groups those rules name as remote, by group (on this
   * host's networks): once per view, whatever the number of rules naming them. */
  addressSets?: Record<string, string[]>;
}

/**
 * A trace order (`weft trace`), sent on the watch: follow probes of `match` (IPv4 text,
 * protocol number) for `ms`, and, on the source port's host, hand the probe (`frame`,
 * base64) to the data path as if the port sent it, `afterMs` after the order came (so that
 * every host is following by then). The agent answers {type: "trace-report", id, steps}.
 */
export interface TraceOrder {
  id: string;
  ms: number;
  match: { src: string; dst: string; protocol: number };
  inject?: { port: string; frame: string; afterMs: number };
}
