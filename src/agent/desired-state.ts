/**
 * The desired state of one host: what its data path should hold. A static config file is
 * one source of it (src/agent/config.ts); a controller's watch stream will be another. The
 * reconciler (src/agent/reconciler.ts) makes the data path match it, whatever the source.
 */
import type { Encapsulation } from '../datapath/encapsulation.js';

export interface RemoteHost {
  /** Underlay IPv4 address of the remote VTEP. */
  address: string;
  /** Its UDP port for the network's encapsulation. */
  port: number;
}

export interface NetworkState {
  name: string;
  vni: number;
  encapsulation: Encapsulation;
  /** The hosts that share this network: flooded frames are replicated to each. */
  remotes: RemoteHost[];
  /** An MTU below what the underlay allows, if the network asks for one. */
  mtu?: number;
  /** Ports known to be on this network (pushed by a controller): their MACs are installed
   * in the FDB, and ARP requests for their addresses are answered by the agent. */
  neighbors?: Neighbor[];
  /** Gateway addresses of the network's subnets: the agent answers ARP for them with its
   * router MAC (they are the DHCP server's address, and the router's). */
  gateways?: string[];
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
  | { type: 'tap'; device: string; netns?: string }
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
}

export type PortState =
  | { name: string; mode: 'access'; network: string; backend: BackendState; dhcp?: DhcpState }
  | { name: string; mode: 'trunk'; vlans: Record<number, string>; nativeNetwork?: string; backend: BackendState };

export interface HostState {
  host: string;
  /** Where this host's tunnels end: its address, the UDP port of VXLAN (4789 by default) and
   * of Geneve (6081 by default), and the underlay's MTU. */
  underlay: { address: string; port: number; genevePort: number; mtu: number };
  networks: NetworkState[];
  ports: PortState[];
  limits: { maxPorts: number; fdbLimit: number; fdbAgingSeconds: number };
}
