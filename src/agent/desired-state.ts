/**
 * The desired state of one host: what its data path should hold. A static config file is
 * one source of it (src/agent/config.ts); a controller's host view (src/view/host-view.ts)
 * is the other. The reconciler (src/agent/reconciler.ts) makes the data path match it,
 * whatever the source.
 */
import type { FirewallRuleState, HostView, NatState, NetworkState, PortState } from '../view/host-view.js';

export type { BackendState, DhcpState, HostView, NatState, Neighbor, NetworkState, PortState, RemoteHost } from '../view/host-view.js';

export interface HostState {
  host: string;
  /** Where this host's tunnels end: its address, the UDP port of VXLAN (4789 by default) and
   * of Geneve (6081 by default), and the underlay's MTU. */
  underlay: { address: string; port: number; genevePort: number; tunnelPort: number; mtu: number };
  networks: NetworkState[];
  ports: PortState[];
  /** The routers' external gateways this host holds. */
  nat: NatState[];
  /** The rules of the security groups its ports are in. */
  securityGroups: Record<string, FirewallRuleState[]>;
  /** Security groups' member addresses, for the rules naming them as remote. */
  addressSets: Record<string, string[]>;
  /** Physical network -> this host's interface on it (reported when joining a controller). */
  physicalNetworks: Record<string, string>;
  limits: { maxPorts: number; fdbLimit: number; fdbAgingSeconds: number };
}

/** A host's full desired state from a controller's view plus what only the agent knows. */
export function hostStateFromView(view: HostView, from: HostState): HostState {
  return { host: view.host, underlay: from.underlay, networks: view.networks, ports: view.ports, nat: view.nat ?? [], securityGroups: view.securityGroups ?? {}, addressSets: view.addressSets ?? {}, physicalNetworks: from.physicalNetworks, limits: from.limits };
}
