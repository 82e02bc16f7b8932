/**
 * The userspace data path of one host: bridge domains (one per network) joining local ports
 * and tunnels to remote hosts over the underlay: a UDP socket per encapsulation, and each
 * network accepts datagrams only from its own encapsulation's socket.
 *
 * Two straight-line functions carry every frame: `inside` (port -> VLAN -> learn -> local
 * services or router or switch) and `outside` (underlay -> decapsulate -> learn -> switch).
 * Each returns early on every drop and counts it. The stages with a concern of their own
 * live in their own files and are called from these two: the local services (DHCP, ARP and
 * ND answers: services.ts) and the distributed router (router.ts); switching (`forward`,
 * `toPort`, `toTunnel`) is here. The objects they work on are in model.ts. No I/O happens in
 * any stage: backends are called only in `pump*` and `flush`, in batches, and time comes in
 * as `now`.
 *
 * Memory: frames are read into slots of one PacketMemory with HEADROOM bytes free in front,
 * so encapsulation writes its header in place and a VLAN tag is removed by moving the MAC
 * addresses forward. Transmit queues hold offsets into that memory, never copies; the only
 * copy is into a scratch slot when a trunk port needs a tag inserted. Offsets stay valid
 * until the end of the batch that read them, which is when every queue is flushed.
 */
import { formatIpv4, formatMac, isGroupMac, parseIpv4, parseIpv6, readU16, readU24, readU32, writeU16 } from '../wire/bytes.js';
import { Tracer, type TraceMatch, type TraceStep } from './trace.js';
import { Neighbors6, Prefix6 } from './ipv6.js';
import { EtherType } from '../wire/ethernet.js';
import { FLAG_CRITICAL, FLAG_OAM, PROTOCOL_ETHERNET } from '../wire/geneve.js';
import { FLAG_I } from '../wire/vxlan.js';
import { VID_MAX, VID_MIN } from '../wire/vlan.js';
import { writeGeneveHeader } from '../wire/geneve.js';
import { writeVxlanHeader } from '../wire/vxlan.js';
import { BAD_OFFLOAD, type KernelCounters, type PortBackend, type UnderlayBackend } from './backend.js';
import { Counters, Drop, type CounterSnapshot } from './counters.js';
import { overlayMtu, type Encapsulation } from './encapsulation.js';
import { Fdb, isRemote, NOT_FOUND, vtepDestination, vtepOf, type FdbDestination } from './fdb.js';
import { localOf, NO_PIN, type Member, type NetworkTables } from './tables.js';
import { PacketMemory } from './packet-memory.js';
import { DHCP_OUTCOMES, isDhcpToServer, type DhcpLease, type DhcpOutcome } from './dhcp-server.js';
import { Network, Port, Underlay, UNDERLAY_TX_QUEUE, PORT_TX_QUEUE, Vtep, type FrameTap, type Output, type TunnelEngine, type TunnelPeer, type TunnelStats, TUNNEL_HANDLED, TUNNEL_HEADER_LEN, TunnelRefusal } from './model.js';
import { Router } from './router.js';
import { isRouterMac } from './router-mac.js';
import { LocalServices } from './services.js';
import type { PortSecurity } from './port-security.js';
import { Firewall, type FirewallRule } from './firewall.js';
import { Flow, parseFlow } from './flow.js';
import { Nat, NatStage, type NatSpec } from './nat.js';

export type { FrameTap } from './model.js';

/** The drop reason for each of the tunnels' refusals (TunnelRefusal's codes, negated). */
const TUNNEL_DROPS: number[] = [];
TUNNEL_DROPS[-TunnelRefusal.malformed] = Drop['tunnel-malformed'];
TUNNEL_DROPS[-TunnelRefusal.unknownSession] = Drop['tunnel-unknown-session'];
TUNNEL_DROPS[-TunnelRefusal.authFailed] = Drop['tunnel-auth-failed'];
TUNNEL_DROPS[-TunnelRefusal.replay] = Drop['tunnel-replay'];
TUNNEL_DROPS[-TunnelRefusal.expired] = Drop['tunnel-expired'];
TUNNEL_DROPS[-TunnelRefusal.handshakeRefused] = Drop['tunnel-handshake-refused'];
TUNNEL_DROPS[-TunnelRefusal.rateLimited] = Drop['tunnel-rate-limited'];
const tunnelDrop = (code: number): number => TUNNEL_DROPS[-code] ?? Drop['tunnel-malformed'];

/** The EtherTypes that mean a VLAN tag follows: 802.1Q, 802.1ad, and the pre-standard QinQ
 * values switches still send (0x9100, 0x9200). Any of them is a tag where none belongs. */
const TAG_ETHERTYPES = [EtherType.Vlan, EtherType.QinQ, 0x9100, 0x9200];
const isTag = (type: number): boolean => type === TAG_ETHERTYPES[0] || type === TAG_ETHERTYPES[1] || type === TAG_ETHERTYPES[2] || type === TAG_ETHERTYPES[3];

/** Implementation limits (ours, not a protocol's). */
export const HEADROOM = 64;
export const BATCH = 64;
const UNDERLAY_RX_SLOTS = 128;
const SCRATCH_SLOTS = 128;
/** Sealed datagrams waiting to be sent (each needs its own slot: a flooded frame is sealed
 * once per peer). The queue is flushed when full. */
const SEALED_TX_SLOTS = 256;
/** Unsolicited router advertisements, and how long a VM keeps this host's router as its
 * default (RFC 4861 §6.2.1: MaxRtrAdvInterval 600 s, AdvDefaultLifetime 3 × that). */
const RA_INTERVAL_MS = 200_000;
const RA_ROUTER_LIFETIME = 1800;
/** Connections a port's security groups track at once, unless the port says. */
const DEFAULT_CONNECTION_LIMIT = 4096;
/** A pump reads at most this many batches before it yields to the event loop. */
const BATCHES_PER_PUMP = 8;

export interface DatapathOptions {
  /** MTU of the underlay interface; sizes the slots and each network's overlay MTU. */
  underlayMtu?: number;
  /** Most ports this host will have at once (sizes the packet memory). */
  maxPorts?: number;
  /** Most MACs each network learns (the FDB limit per network). */
  fdbLimit?: number;
  fdbAgingMs?: number;
  /** false: frames are never checked for a trace's probe (`weft trace` finds nothing on
   * this host). Only to measure what the check costs (`npm run bench`); true by default. */
  tracing?: boolean;
}

export interface NetworkSpec {
  name: string;
  vni: number;
  encapsulation: Encapsulation;
  /** At most what the underlay allows (the default). */
  mtu?: number;
  /** A provider network: on a host interface (an uplink port) instead of the overlay, so its
   * MTU is the physical network's (1500 by default), and it has no remote hosts. */
  provider?: boolean;
  /** Carried only in encrypted tunnels (needs `attachTunnels`; VXLAN inside). */
  encrypted?: boolean;
}

export type PortSpec =
  | { name: string; backend: PortBackend; mode: 'access'; network: string }
  | { name: string; backend: PortBackend; mode: 'trunk'; vlans: Record<number, string>; nativeNetwork?: string;
    /** A host interface carrying provider networks (the physical network, not a VM): no
     * local service answers it and nothing it sends is routed. */
    uplink?: boolean };

export interface DatapathStats {
  ports: Array<{ name: string; backend: string; mode: 'access' | 'trunk'; networks: string[]; failed: string | null; kernel: KernelCounters | null;
    /** DHCP messages by outcome, for a port the agent serves DHCP to (else null). */
    dhcp: Partial<Record<DhcpOutcome, number>> | null;
    /** Its security groups' connection table (null: no groups apply). */
    conntrack: { entries: number; limit: number; refused: number } | null } & CounterSnapshot>;
  tunnels: Array<{ remote: string; networks: string[]; encrypted: boolean; tunnel: TunnelStats | null } & CounterSnapshot>;
  underlays: Array<{ encapsulation: Encapsulation | 'encrypted'; backend: string; local: string; mtu: number; kernel: KernelCounters | null } & CounterSnapshot>;
  networks: Array<{ name: string; vni: number; encapsulation: Encapsulation; encrypted: boolean;
    /** On a host interface (a physical network), not an overlay: its encapsulation is unused. */
    provider: boolean; mtu: number; ports: number; remotes: number; fdb: { entries: number; static: number; limit: number; learnRefused: number; moves: number }; arpAnswered: number; ndAnswered: number }>;
  /** The routers' external gateways this host holds. */
  nats: Array<{ router: string; network: string; address: string; connections: number; limit: number; translatedOut: number; translatedIn: number; neighbors: number }>;
}

export class Datapath implements Output {
  readonly memory: PacketMemory;
  readonly underlayMtu: number;
  readonly slotCapacity: number;
  private readonly fdbLimit: number;
  private readonly fdbAgingMs: number;

  private readonly networks: Array<Network | undefined> = [];
  private readonly networkByName = new Map<string, Network>();
  private readonly networkByVni = new Map<number, Network>();
  private readonly ports: Array<Port | undefined> = [];
  private readonly portByName = new Map<string, Port>();
  private readonly vteps: Array<Vtep | undefined> = [];

  private readonly underlays: Underlay[] = [];
  private vxlanUnderlay: Underlay | null = null;
  private geneveUnderlay: Underlay | null = null;
  /** The encrypted tunnels' socket, and which vtep each of their peers is. */
  private tunnelUnderlay: Underlay | null = null;
  private readonly vtepOfPeer = new Map<TunnelPeer, Vtep>();
  /** How many tunnel peers are being captured (sealed datagrams are then copied before
   * they are opened, for the capture to show them as they came). */
  private tappedPeers = 0;
  /** Remote hosts of encrypted networks came or went since the tunnels were told. */
  private peersChanged = false;

  /** `weft trace`: follows one marked probe through the stages (trace.ts). */
  readonly tracer = new Tracer();
  /** Where frames enter: checked for a trace's probe, or (tracing: false, to measure what
   * the check costs) handed straight on. */
  private readonly enterFromPort: (port: Port, off: number, len: number, now: number) => void;
  private readonly enterFromTunnel: (u: Underlay, net: Network, vtep: Vtep, inner: number, innerLen: number, fromAddr: number, now: number) => void;
  private readonly router: Router;
  private readonly nat: NatStage;
  /** The routers' external gateways this host holds, by router. */
  private readonly nats = new Map<string, Nat>();
  private readonly services: LocalServices;
  private readonly scratchSlot: number;
  private scratchUsed = 0;
  private readonly dirtyPorts: Port[] = [];

  private readonly rxLengths = new Int32Array(UNDERLAY_RX_SLOTS);
  private readonly rxAddrs = new Uint32Array(UNDERLAY_RX_SLOTS);
  private readonly rxPorts = new Uint16Array(UNDERLAY_RX_SLOTS);
  /** Where the current frame's encapsulation header was written (-1: not yet). */
  private encapAt = -1;
  /** The flow key of the frame `inside` or `fromTunnel` is handling (flow.ts). */
  private readonly flow = new Flow();
  /** The flow key of a frame being delivered to a port with security groups: parsed by the
   * same function, since what reaches a port may be routed, translated or an ICMP error
   * this host made, not the frame that came in. */
  private readonly delivered = new Flow();

  constructor(options: DatapathOptions = {}) {
    this.underlayMtu = options.underlayMtu ?? 1500;
    const maxPorts = options.maxPorts ?? 64;
    this.fdbLimit = options.fdbLimit ?? 4096;
    this.fdbAgingMs = options.fdbAgingMs ?? 300_000;
    // A slot holds the largest frame a port may send (a tagged frame at the underlay's MTU,
    // or a standard 1500-byte one) or the largest datagram the underlay can bring.
    this.slotCapacity = Math.max(1500, this.underlayMtu) + 14 + 4 + 4;
    const slotSize = Math.ceil((HEADROOM + this.slotCapacity) / 64) * 64;
    // Receive rings for the VXLAN, Geneve and tunnel sockets; the tunnels' transmit slots.
    this.memory = new PacketMemory(slotSize, maxPorts * BATCH + 3 * UNDERLAY_RX_SLOTS + SEALED_TX_SLOTS + SCRATCH_SLOTS);
    this.scratchSlot = this.memory.alloc(SCRATCH_SLOTS);
    const tracing = options.tracing ?? true;
    this.enterFromPort = tracing ? this.insideTraced : this.inside;
    this.enterFromTunnel = tracing ? this.fromTunnelTraced : (_u, net, vtep, inner, innerLen, _a, now) => this.fromTunnel(net, vtep, inner, innerLen, now);
    this.nat = new NatStage(this);
    this.router = new Router(this, this.nat);
    this.services = new LocalServices(this);
  }

  // ---- configuration (control plane; may allocate) ---------------------------------------

  addNetwork(spec: NetworkSpec): void {
    if (this.networkByName.has(spec.name)) throw new Error(`network ${spec.name} exists already`);
    const clash = this.networkByVni.get(spec.vni);
    if (clash) throw new Error(`VNI ${spec.vni} is taken by network ${clash.name}`);
    let index = this.networks.indexOf(undefined);
    if (index < 0) index = this.networks.length;
    const encrypted = spec.encrypted === true;
    if (encrypted && (spec.encapsulation !== 'vxlan' || spec.provider)) throw new Error(`network ${spec.name}: encryption carries VXLAN over tunnels, not ${spec.provider ? 'a provider network' : spec.encapsulation}`);
    const most = this.mostMtu(spec.encapsulation, spec.provider === true, encrypted);
    const net = new Network(index, spec.name, spec.vni, spec.encapsulation, Math.min(spec.mtu ?? (spec.provider ? 1500 : most), most), this.fdbLimit, this.fdbAgingMs, spec.provider === true, encrypted);
    this.networks[index] = net;
    this.networkByName.set(net.name, net);
    this.networkByVni.set(net.vni, net);
  }

  removeNetwork(name: string): void {
    const net = this.mustNetwork(name);
    if (net.ports.length > 0) throw new Error(`network ${name} still has ports: ${net.ports.map((p) => p.name).join(', ')}`);
    this.installMembers(net, []);
    for (const other of this.networks) {
      if (!other) continue;
      other.routes = other.routes.filter((r) => r.network !== net);
      other.routes6 = other.routes6.filter((r) => r.network !== net);
    }
    for (const nat of [...this.nats.values()]) {
      if (nat.network === net) this.setNat(nat.spec.router, null);
      else nat.inside = nat.inside.filter((r) => r.network !== net);
    }
    this.networks[net.index] = undefined;
    this.networkByName.delete(name);
    this.networkByVni.delete(net.vni);
  }

  /** The largest MTU a network may have: the overlay's, or for a provider network what a
   * slot holds untagged-plus-tag (the physical network's MTU is the operator's to give). */
  private mostMtu(encapsulation: Encapsulation, provider: boolean, encrypted: boolean): number {
    return provider ? this.slotCapacity - 14 - 4 - 4 : overlayMtu(this.underlayMtu, encapsulation, encrypted);
  }

  /** The overlay MTU of a network: what its VMs' interfaces should be set to. */
  networkMtu(name: string): number {
    return this.mustNetwork(name).mtu;
  }

  /**
   * Swaps in a network's compiled tables (tables.ts), whole: its MTU, member hosts, pins,
   * ARP and ND answers, routes, the router's addresses, IPv6 advertisements and way out.
   * Checked before anything changes: members that do not fit the network (a provider network
   * has none; an encrypted network's have keys, a plain one's none) or a route to a network
   * this data path lacks refuse the tables, with nothing swapped. What the data path learned
   * (MACs, connections, tunnel sessions, counters) stays. A way out through a gateway this
   * host does not hold (yet), or pins to ports not attached (yet), are none until they come.
   */
  setTables(name: string, t: NetworkTables): void {
    const net = this.mustNetwork(name);
    const old = net.tables;
    if (t === old) return;
    if (t.members !== old.members) {
      if (net.provider && t.members.length > 0) throw new Error(`network ${name} is a provider network: it reaches other hosts through its uplink, not tunnels`);
      for (const m of t.members) {
        if (net.encrypted !== (m.key !== null)) throw new Error(`network ${name} is ${net.encrypted ? 'encrypted: a remote host needs its public key' : 'not encrypted: a remote host has no key in it'}`);
      }
    }
    const routes = t.routes === old.routes ? net.routes : t.routes.map((r) => ({ prefix: r.prefix, mask: r.mask, network: this.mustNetwork(r.network), nextHop: r.nextHop }));
    const routes6 = t.routes6 === old.routes6 ? net.routes6 : t.routes6.map((r) => ({ prefix: r.prefix, network: this.mustNetwork(r.network) }));
    // Nothing is refused from here on.
    if (t.members !== old.members) this.installMembers(net, t.members);
    net.tables = t;
    net.routes = routes;
    net.routes6 = routes6;
    const most = this.mostMtu(net.encapsulation, net.provider, net.encrypted);
    net.mtu = Math.min(t.mtu ?? (net.provider ? 1500 : most), most);
    net.arp = t.arp;
    net.nd = t.nd;
    net.nd6 = t.nd6;
    net.gateways = t.gateways;
    if (t.ipv6 !== old.ipv6) {
      const fresh = net.ra === null;
      net.ra = t.ipv6 === null ? null : { prefix: t.ipv6.prefix, prefixLength: t.ipv6.prefixLength, routerLifetime: t.ipv6.routed ? RA_ROUTER_LIFETIME : 0, dns: t.ipv6.dns };
      // Tell every port at the next tick, not in RA_INTERVAL_MS.
      if (fresh) for (const p of net.ports) p.raSent = -1;
    }
    this.resolveLocals(net);
    this.resolveExternal(net);
  }

  /** The network's tables as last swapped in. */
  tablesOf(name: string): NetworkTables {
    return this.mustNetwork(name).tables;
  }

  /** Makes the network's tunnels those of `members`: a member that went gives up its VTEP
   * (and the MACs learned behind it), a new one gets one (shared with the other networks
   * the two hosts have in common). */
  private installMembers(net: Network, members: readonly Member[]): void {
    const next = new Set(members);
    for (const m of net.members) {
      if (next.has(m)) continue;
      const vtep = net.vtepOfMember[m.id]!;
      net.vtepOfMember[m.id] = undefined;
      if (net.externalVtep === vtep) net.externalVtep = null;
      net.fdb.flushDestination(vtepDestination(vtep.index));
      if (--vtep.networks === 0) {
        this.vteps[vtep.index] = undefined;
        if (vtep.key !== null) this.peersChanged = true;
      }
    }
    const had = new Set(net.members);
    for (const m of members) {
      if (had.has(m)) continue;
      let vtep = this.vteps.find((v) => v !== undefined && v.address === m.address && v.port === m.port && v.key === m.key);
      if (!vtep) {
        let index = this.vteps.indexOf(undefined);
        if (index < 0) index = this.vteps.length;
        vtep = new Vtep(index, m.address, m.port, m.key);
        this.vteps[index] = vtep;
        if (m.key !== null) this.peersChanged = true;
      }
      vtep.networks++;
      net.vtepOfMember[m.id] = vtep;
    }
    net.members = members;
    net.remotes = members.map((m) => net.vtepOfMember[m.id]!);
  }

  /** Where each local pin of the network's tables points: its port, while that port is on
   * the network here. */
  private resolveLocals(net: Network): void {
    const locals = net.tables.locals;
    const at = new Int32Array(locals.length).fill(NOT_FOUND);
    for (let i = 0; i < locals.length; i++) {
      const port = net.ports.find((p) => p.name === locals[i]);
      if (port) at[i] = port.index;
    }
    net.localPort = at;
  }

  private resolveExternal(net: Network): void {
    const to = net.tables.external;
    net.external = to !== null && 'router' in to ? this.nats.get(to.router) ?? null : null;
    net.externalVtep = to !== null && 'member' in to ? net.vtepOfMember[to.member] ?? null : null;
  }

  /** Tells the tunnels which peers this host may talk to now (the keys of every encrypted
   * network's remote hosts): a peer no longer among them loses its session at once. Done
   * at the next batch (or `age`, or `stats`) after a change, not at each change, so a remote
   * host moved from one address to another within one reconcile keeps its session. */
  private syncPeers(): void {
    this.peersChanged = false;
    const tunnels = this.tunnelUnderlay?.tunnels;
    if (!tunnels) return;
    const keyed = this.vteps.filter((v): v is Vtep => v !== undefined && v.key !== null);
    tunnels.setPeers(keyed.map((v) => ({ publicKey: Buffer.from(v.key!, 'base64'), address: v.address, port: v.port })));
    this.vtepOfPeer.clear();
    for (const v of keyed) {
      v.peer = tunnels.peerOf(Buffer.from(v.key!, 'base64')) ?? null;
      if (v.peer) this.vtepOfPeer.set(v.peer, v);
    }
    this.countTappedPeers();
  }

  /** Sets what a port may send as (port security; null: off). */
  setPortSecurity(name: string, security: PortSecurity | null): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    port.security = security;
  }

  /** Sets the rules of a port's security groups (null: none apply, nothing is filtered).
   * Tracked connections are kept, and checked against new rules at their next packet; a new
   * table size starts an empty table. */
  setPortFirewall(name: string, rules: FirewallRule[] | null, limit = DEFAULT_CONNECTION_LIMIT): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    if (rules === null) {
      port.firewall = null;
      return;
    }
    if (port.firewall === null || port.firewall.capacity !== limit) port.firewall = new Firewall(limit);
    port.firewall.setRules(rules);
  }

  /** Sets the DHCP lease an access port is answered from (null: no DHCP server for it). */
  setPortDhcp(name: string, lease: DhcpLease | null): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    port.dhcp = lease;
  }

  addPort(spec: PortSpec): void {
    if (this.portByName.has(spec.name)) throw new Error(`port ${spec.name} exists already`);
    const members: Network[] = [];
    let access: Network | null = null;
    if (spec.mode === 'access') {
      access = this.mustNetwork(spec.network);
      members.push(access);
    } else {
      for (const [vidText, name] of Object.entries(spec.vlans)) {
        const vid = Number(vidText);
        if (!Number.isInteger(vid) || vid < VID_MIN || vid > VID_MAX) throw new Error(`port ${spec.name}: VLAN ID ${vidText} is not in ${VID_MIN}..${VID_MAX}`);
        members.push(this.mustNetwork(name));
      }
      if (spec.nativeNetwork !== undefined) members.push(this.mustNetwork(spec.nativeNetwork));
      if (new Set(members).size !== members.length) throw new Error(`port ${spec.name}: a network appears twice on the trunk`);
    }
    const rxSlot = this.memory.alloc(BATCH);
    if (rxSlot < 0) throw new Error(`no packet memory left for port ${spec.name}: raise maxPorts`);
    let index = this.ports.indexOf(undefined);
    if (index < 0) index = this.ports.length;
    const port = new Port(index, spec.name, spec.backend, spec.mode === 'trunk', access, rxSlot, spec.mode === 'trunk' && spec.uplink === true);
    if (spec.mode === 'trunk') {
      for (const [vidText, name] of Object.entries(spec.vlans)) {
        const net = this.mustNetwork(name);
        port.networkOfVid[Number(vidText)] = net;
        port.vidOfNetwork.set(net.index, Number(vidText));
      }
      if (spec.nativeNetwork !== undefined) port.nativeNetwork = this.mustNetwork(spec.nativeNetwork);
    }
    this.ports[index] = port;
    this.portByName.set(port.name, port);
    for (const net of members) {
      net.ports.push(port);
      this.resolveLocals(net);
    }
  }

  removePort(name: string): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    for (const net of this.networks) {
      if (!net) continue;
      const i = net.ports.indexOf(port);
      if (i < 0) continue;
      net.ports.splice(i, 1);
      net.fdb.flushDestination(port.index);
      this.resolveLocals(net);
    }
    const d = this.dirtyPorts.indexOf(port);
    if (d >= 0) this.dirtyPorts.splice(d, 1);
    this.ports[port.index] = undefined;
    this.portByName.delete(name);
    this.memory.release(port.rxSlot, BATCH);
    port.backend.close();
  }

  hasPort(name: string): boolean {
    return this.portByName.has(name);
  }

  /** Starts reading a port: the backend calls back when frames wait. */
  startPort(name: string, now: () => number): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    port.backend.start(() => this.pumpPort(port.index, now()));
  }

  /** Attaches the underlay socket that carries the networks of `encapsulation`. */
  attachUnderlay(backend: UnderlayBackend, localAddress: number, localPort: number, encapsulation: Encapsulation): void {
    if (this.underlays.some((u) => u.encapsulation === encapsulation)) throw new Error(`an underlay for ${encapsulation} is attached already`);
    const rxSlot = this.memory.alloc(UNDERLAY_RX_SLOTS);
    if (rxSlot < 0) throw new Error('no packet memory left for the underlay');
    const u = new Underlay(backend, localAddress, localPort, encapsulation, rxSlot);
    this.underlays.push(u);
    if (encapsulation === 'vxlan') this.vxlanUnderlay = u;
    else this.geneveUnderlay = u;
  }

  /**
   * Attaches the encrypted tunnels' socket: encrypted networks' frames go out through it,
   * sealed by `tunnels` per peer, and come in only through it, opened and authenticated.
   */
  attachTunnels(backend: UnderlayBackend, localAddress: number, localPort: number, tunnels: TunnelEngine): void {
    if (this.tunnelUnderlay !== null) throw new Error('the tunnels\' socket is attached already');
    const rxSlot = this.memory.alloc(UNDERLAY_RX_SLOTS);
    const txSlot = this.memory.alloc(SEALED_TX_SLOTS);
    if (rxSlot < 0 || txSlot < 0) throw new Error('no packet memory left for the tunnels');
    const u = new Underlay(backend, localAddress, localPort, 'encrypted', rxSlot, tunnels, txSlot);
    this.underlays.push(u);
    this.tunnelUnderlay = u;
    this.syncPeers();
  }

  /** Queues a datagram the tunnels send of their own (a handshake message, a keepalive, a
   * frame held for a handshake): a copy, since it is not in packet memory. */
  private readonly queueTunnelMessage = (datagram: Uint8Array, address: number, port: number): void => {
    const u = this.tunnelUnderlay;
    if (u === null) return;
    if (datagram.length > this.slotCapacity) return u.counters.drop(Drop['tx-error']);
    if (u.txCount === SEALED_TX_SLOTS) this.flushUnderlay(u);
    const k = u.txCount++;
    const at = this.memory.offsetOf(u.txSlot + k) + HEADROOM;
    this.memory.bytes.set(datagram, at);
    u.txOffsets[k] = at;
    u.txLengths[k] = datagram.length;
    u.txAddrs[k] = address;
    u.txPorts[k] = port;
    u.txVteps[k] = -1;
  };

  startUnderlay(now: () => number): void {
    for (const u of this.underlays) u.backend.start(() => this.pumpUnderlay(u, now()));
  }

  setPortTap(name: string, tap: FrameTap | null): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    port.tap = tap;
  }

  /** Taps every tunnel to `address` (all ports when address is null). */
  setTunnelTap(address: number | null, tap: FrameTap | null): number {
    let n = 0;
    for (const v of this.vteps) {
      if (v && (address === null || v.address === address || v.peer?.address === address)) {
        v.tap = tap;
        n++;
      }
    }
    this.countTappedPeers();
    return n;
  }

  private countTappedPeers(): void {
    this.tappedPeers = this.vteps.filter((v) => v?.tap && v.key !== null).length;
  }

  /** Forgets learned MACs not seen for the aging time, and expired NAT connections; asks for
   * the NATs' next hops now and then. Call every second or so. */
  age(now: number): void {
    if (this.peersChanged) this.syncPeers();
    this.tunnelUnderlay?.tunnels?.tick();
    for (const net of this.networks) net?.fdb.age(now);
    for (const nat of this.nats.values()) this.nat.tick(nat, now);
    for (const p of this.ports) p?.firewall?.expire(now);
    // Unsolicited router advertisements (RFC 4861 §6.2.4): to a port soon after it came, or
    // after its network got IPv6, then every RA_INTERVAL_MS.
    for (const net of this.networks) {
      if (!net?.ra) continue;
      for (const p of net.ports) {
        if (!p.uplink && p.network === net && (p.raSent < 0 || now - p.raSent >= RA_INTERVAL_MS)) this.services.sendRa(p, net, -1, now);
      }
    }
    this.flush();
  }

  /**
   * Sets (or with null removes) a router's external gateway on this host: its NAT on the
   * external network `spec.network`, and the subnets translated packets come back to
   * (prefix -> network). Connections survive a change that keeps the external address;
   * networks that go out through it are set with setExternal.
   */
  setNat(router: string, spec: NatSpec | null, inside: Array<{ cidr: string; network: string }> = []): void {
    const old = this.nats.get(router);
    if (old) {
      const i = old.network.nats.indexOf(old);
      if (i >= 0) old.network.nats.splice(i, 1);
      this.nats.delete(router);
    }
    if (spec === null) {
      for (const net of this.networks) if (net) this.resolveExternal(net);
      return;
    }
    const keep = old !== undefined && old.spec.address === spec.address && old.spec.mac === spec.mac && old.table.capacity === spec.limit;
    const nat = new Nat(spec, this.mustNetwork(spec.network), keep ? old.table : undefined);
    nat.inside = inside.map((r) => {
      const [addr, len] = r.cidr.split('/');
      const mask = Number(len) === 0 ? 0 : (0xffff_ffff << (32 - Number(len))) >>> 0;
      return { prefix: (parseIpv4(addr) & mask) >>> 0, mask, network: this.mustNetwork(r.network) };
    }).sort((a, b) => b.mask - a.mask);
    if (keep) {
      // Same address: the connections and neighbours carry over.
      for (const [ip, mac] of old.arp) nat.arp.set(ip, mac);
      nat.announced = old.announced;
    }
    nat.network.nats.push(nat);
    this.nats.set(router, nat);
    // The networks whose tables go out through this router's gateway.
    for (const net of this.networks) if (net) this.resolveExternal(net);
  }

  /** Whether this host holds `router`'s external gateway. */
  hasNat(router: string): boolean {
    return this.nats.has(router);
  }

  // ---- the per-frame path (synchronous, allocation-free) ---------------------------------

  /** Reads and forwards what waits on a port, in batches, then flushes every output. */
  pumpPort(index: number, now: number): void {
    const port = this.ports[index];
    if (!port || port.failed !== null) return;
    if (this.peersChanged) this.syncPeers();
    const mem = this.memory.bytes;
    const base = this.memory.offsetOf(port.rxSlot) + HEADROOM;
    const stride = this.memory.slotSize;
    for (let b = 0; b < BATCHES_PER_PUMP; b++) {
      let n: number;
      try {
        n = port.backend.readBatch(mem, base, stride, this.slotCapacity, BATCH, this.rxLengths);
      } catch (err) {
        port.failed = (err as Error).message;
        port.backend.close();
        return;
      }
      for (let i = 0; i < n; i++) this.enterFromPort(port, base + i * stride, this.rxLengths[i], now);
      this.flush();
      if (n < BATCH) return;
    }
  }

  private pumpUnderlay(u: Underlay, now: number): void {
    if (this.peersChanged) this.syncPeers();
    const mem = this.memory.bytes;
    const base = this.memory.offsetOf(u.rxSlot) + HEADROOM;
    const stride = this.memory.slotSize;
    for (let b = 0; b < BATCHES_PER_PUMP; b++) {
      let n: number;
      try {
        n = u.backend.recvBatch(mem, base, stride, this.slotCapacity, UNDERLAY_RX_SLOTS, this.rxLengths, this.rxAddrs, this.rxPorts);
      } catch {
        u.counters.drop(Drop['rx-error']);
        return;
      }
      if (u.tunnels !== null) {
        for (let i = 0; i < n; i++) this.sealedOutside(u, u.tunnels, base + i * stride, this.rxLengths[i], this.rxAddrs[i], this.rxPorts[i], now);
      } else {
        for (let i = 0; i < n; i++) this.outside(u, base + i * stride, this.rxLengths[i], this.rxAddrs[i], this.rxPorts[i], now);
      }
      this.flush();
      if (n < UNDERLAY_RX_SLOTS) return;
    }
  }

  /** `inside`, followed when the frame is an armed trace's probe. */
  private insideTraced(port: Port, off: number, len: number, now: number): void {
    if (this.tracer.armed && len >= 14 && this.tracer.enter(this.memory.bytes, off, len, `port ${port.name}`)) {
      this.inside(port, off, len, now);
      this.tracer.leave();
      return;
    }
    this.inside(port, off, len, now);
  }

  /** `fromTunnel`, followed when the frame is an armed trace's probe. */
  private fromTunnelTraced(u: Underlay, net: Network, vtep: Vtep, inner: number, innerLen: number, fromAddr: number, now: number): void {
    if (this.tracer.armed && this.tracer.enter(this.memory.bytes, inner, innerLen, `${u.tunnels !== null ? 'encrypted tunnel' : 'tunnel'} from ${formatIpv4(fromAddr)}`)) {
      this.tracer.step('decapsulate', 'pass', `${net.encapsulation === 'vxlan' ? 'VXLAN' : 'Geneve'} VNI ${net.vni}: network ${net.name}`);
      this.fromTunnel(net, vtep, inner, innerLen, now);
      this.tracer.leave();
      return;
    }
    this.fromTunnel(net, vtep, inner, innerLen, now);
  }

  /** A frame from a VM's port. */
  private inside(port: Port, off: number, len: number, now: number): void {
    const mem = this.memory.bytes;
    const c = port.counters;
    if (len < 0) {
      // The backend says why it has no frame to give: cut short, or an offload refused.
      c.rx(0);
      return c.drop(len === BAD_OFFLOAD ? Drop['offload-refused'] : Drop.oversize);
    }
    c.rx(len);
    if (len < 14) return c.drop(Drop.runt);
    if (len >= this.slotCapacity) return c.drop(Drop.oversize);
    if (port.tap !== null) port.tap.frame(mem, off, len, 'rx', now);
    if (isGroupMac(mem, off + 6) || isZeroMac(mem, off + 6)) return c.drop(Drop['invalid-src-mac']);
    // The agent's own services answer from ROUTER_MAC: no VM may send as them.
    if (isRouterMac(mem, off + 6)) return c.drop(Drop['src-mac-pinned']);

    // An access port always has its network; a trunk picks one by tag below.
    let net = port.network!;
    const ethertype = readU16(mem, off + 12);
    if (port.trunk) {
      if (ethertype === EtherType.Vlan) {
        if (len < 18) return c.drop(Drop.runt);
        const tagged = port.networkOfVid[readU16(mem, off + 14) & 0x0fff];
        if (tagged === undefined) return c.drop(Drop['vlan-not-allowed']);
        net = tagged;
        // A second tag inside would reach the network's access ports still tagged: a way to
        // hop VLANs, so it is refused like any tag where none belongs.
        if (isTag(readU16(mem, off + 16))) return c.drop(Drop['vlan-not-allowed']);
        // Untag in place: move the two MAC addresses over the tag.
        mem.copyWithin(off + 4, off, off + 12);
        off += 4;
        len -= 4;
      } else {
        // Another tag EtherType selects no VLAN here, and must not reach the native network
        // still tagged.
        if (port.nativeNetwork === null || isTag(ethertype)) return c.drop(Drop['vlan-not-allowed']);
        net = port.nativeNetwork;
      }
    } else if (isTag(ethertype)) {
      return c.drop(Drop['vlan-not-allowed']);
    }

    const tracer = this.tracer;
    if (len - 14 > net.mtu) {
      if (tracer.active) tracer.because(`${len - 14} bytes, network ${net.name}'s MTU is ${net.mtu}`);
      return c.drop(Drop['mtu-exceeded']);
    }
    const flow = this.flow;
    const malformed = parseFlow(mem, off, len, flow);
    if (malformed >= 0) {
      if (tracer.active) tracer.because('a header is cut, or says more than the frame carries');
      return c.drop(malformed);
    }
    len = flow.len; // without Ethernet padding
    if (port.security !== null) {
      const refused = port.security.check(mem, off, flow);
      if (refused >= 0 && tracer.active) tracer.because(port.security.explain(refused));
      if (refused >= 0) return c.drop(refused);
      if (tracer.active) tracer.step('port security', 'pass', `sent as the port's own MAC and address`);
    }
    if (port.firewall !== null) {
      const refused = port.firewall.egress(mem, flow, now);
      if (tracer.active) {
        if (refused >= 0) tracer.because(port.firewall.explain(refused));
        else tracer.step('security groups', 'pass', `egress: ${port.firewall.explain(refused)}`);
      }
      if (refused >= 0) return c.drop(refused);
    }
    if (!this.learn(net, readU16(mem, off + 6), readU32(mem, off + 8), port.index, now)) return c.drop(Drop['src-mac-pinned']);
    // From the physical network: switched to the VMs, never answered or routed here (every
    // host has the uplink; only the VMs' own hosts answer them).
    if (port.uplink) {
      if (net.nats.length > 0 && this.nat.fromUplink(net.nats, port, net, off, len, c, now)) return;
      return this.forward(net, off, len, port.index, c, now);
    }
    const type = readU16(mem, off + 12);
    if (port.dhcp !== null && net === port.network && type === EtherType.Ipv4 && isDhcpToServer(mem, off, len)) return this.services.serveDhcp(port, net, off, len, now);
    // Neighbour discovery first: a VM checking its gateway's MAC sends to ROUTER_MAC too.
    if (net.arp !== null && type === EtherType.Arp && this.services.answerArp(port, net, off, len, now)) return;
    if (net.nd !== null && type === EtherType.Ipv6 && this.services.answerNd(port, net, off, len, now)) return;
    if (net.ra !== null && type === EtherType.Ipv6 && this.services.answerRs(port, net, off, len, now)) return;
    if (isRouterMac(mem, off)) return this.router.route(port, net, off, len, port.index, c, now);
    this.forward(net, off, len, port.index, c, now);
  }

  /**
   * A datagram from the underlay socket `u`: an encapsulated frame from a remote host. The
   * same rules as `inside` apply to the inner frame (source MAC, VLAN tags, MTU, pinned
   * MACs), counted under the same reasons, on the tunnel it came through.
   */
  private outside(u: Underlay, off: number, len: number, fromAddr: number, fromPort: number, now: number): void {
    const mem = this.memory.bytes;
    const uc = u.counters;
    if (len < 0) {
      uc.rx(this.slotCapacity);
      return uc.drop(Drop['datagram-oversize']);
    }
    uc.rx(len);
    if (len < 8 + 14) return uc.drop(Drop.truncated);
    const net = this.networkByVni.get(readU24(mem, off + 4));
    if (net === undefined) return uc.drop(Drop['unknown-vni']);
    if (net.encapsulation !== u.encapsulation) return uc.drop(Drop['wrong-encapsulation']);
    if (net.encrypted) return uc.drop(Drop['not-encrypted']);
    let vtep: Vtep | undefined;
    const remotes = net.remotes;
    for (let i = 0; i < remotes.length; i++) {
      // A VTEP is known by its address; its source port is entropy (RFC 7348 §5).
      if (remotes[i].address === fromAddr) {
        vtep = remotes[i];
        break;
      }
    }
    if (vtep === undefined) return uc.drop(Drop['unknown-vtep']);
    vtep.counters.rx(len);
    this.decapsulated(u, net, vtep, off, len, fromAddr, fromPort, now);
  }

  /**
   * A datagram from the encrypted tunnels' socket. Handshake messages are the tunnels'
   * business; a data message is opened in place and authenticated, and its plaintext (a
   * VXLAN datagram) is taken for a frame from the peer that sealed it, whatever address it
   * came from (a peer may roam), into a network that peer shares with this host only.
   */
  private sealedOutside(u: Underlay, tunnels: TunnelEngine, off: number, len: number, fromAddr: number, fromPort: number, now: number): void {
    const uc = u.counters;
    if (len < 0) {
      uc.rx(this.slotCapacity);
      return uc.drop(Drop['datagram-oversize']);
    }
    uc.rx(len);
    const mem = this.memory.bytes;
    // A capture of the outer layer shows the datagram as it came: sealed.
    let sealedCopy = -1;
    if (this.tappedPeers > 0 && len <= this.slotCapacity) {
      sealedCopy = this.scratch();
      mem.copyWithin(sealedCopy, off, off + len);
    }
    const plain = tunnels.receive(mem, off, len, fromAddr, fromPort);
    if (plain === TUNNEL_HANDLED || plain === 0) return;
    if (plain < 0) return uc.drop(tunnelDrop(plain));
    const vtep = this.vtepOfPeer.get(tunnels.lastPeer!);
    if (vtep === undefined) return uc.drop(Drop['unknown-vtep']);
    const c = vtep.counters;
    c.rx(len);
    const inner = off + TUNNEL_HEADER_LEN;
    if (plain < 8 + 14) return c.drop(Drop.truncated);
    if (vtep.tap !== null && sealedCopy >= 0) vtep.tap.datagram(mem, sealedCopy, len, inner + 8, plain - 8, 'rx', u.address, u.port, fromAddr, fromPort, readU24(mem, inner + 4), now);
    const net = this.networkByVni.get(readU24(mem, inner + 4));
    if (net === undefined || !net.encrypted) return c.drop(Drop['unknown-vni']);
    if (!net.remotes.includes(vtep)) return c.drop(Drop['unknown-vtep']);
    this.decapsulated(u, net, vtep, inner, plain, fromAddr, fromPort, now);
  }

  /** The rest of `outside`, once the datagram is known to come from `vtep`, a remote host of
   * `net` (counted on it): the same rules as `inside` apply to the inner frame. */
  private decapsulated(u: Underlay, net: Network, vtep: Vtep, off: number, len: number, fromAddr: number, fromPort: number, now: number): void {
    const mem = this.memory.bytes;
    const c = vtep.counters;
    let headerLen = 8;
    if (net.isVxlan) {
      if ((mem[off] & FLAG_I) === 0) return c.drop(Drop['vxlan-bad-flags']);
    } else {
      if (mem[off] >>> 6 !== 0) return c.drop(Drop['geneve-bad-version']);
      // RFC 8926 §3.4: a control message for the endpoint, never a frame to forward.
      if ((mem[off + 1] & FLAG_OAM) !== 0) return c.drop(Drop['geneve-oam']);
      if ((mem[off + 1] & FLAG_CRITICAL) !== 0) return c.drop(Drop['geneve-critical-option']);
      if (readU16(mem, off + 2) !== PROTOCOL_ETHERNET) return c.drop(Drop['geneve-bad-protocol']);
      headerLen += (mem[off] & 0x3f) * 4;
      if (len < headerLen + 14) return c.drop(Drop.truncated);
    }
    const inner = off + headerLen;
    const innerLen = len - headerLen;
    if (vtep.tap !== null && u.tunnels === null) vtep.tap.datagram(mem, off, len, inner, innerLen, 'rx', u.address, u.port, fromAddr, fromPort, net.vni, now);
    this.enterFromTunnel(u, net, vtep, inner, innerLen, fromAddr, now);
  }

  /** An inner frame from `vtep`, a remote host of `net`. */
  private fromTunnel(net: Network, vtep: Vtep, inner: number, innerLen: number, now: number): void {
    const mem = this.memory.bytes;
    const c = vtep.counters;
    if (isGroupMac(mem, inner + 6) || isZeroMac(mem, inner + 6)) return c.drop(Drop['invalid-src-mac']);
    // Frames cross the underlay untagged (the VNI is the network): a tag is never valid here.
    if (isTag(readU16(mem, inner + 12))) return c.drop(Drop['vlan-not-allowed']);
    if (innerLen - 14 > net.mtu) {
      if (this.tracer.active) this.tracer.because(`${innerLen - 14} bytes, network ${net.name}'s MTU is ${net.mtu}`);
      return c.drop(Drop['mtu-exceeded']);
    }
    const malformed = parseFlow(mem, inner, innerLen, this.flow);
    if (malformed >= 0) {
      if (this.tracer.active) this.tracer.because('a header is cut, or says more than the frame carries');
      return c.drop(malformed);
    }
    innerLen = this.flow.len; // without Ethernet padding
    // A routed frame comes from the router MAC, which is every host's own: never learned.
    // Sent to the router: a VM elsewhere going out through the gateway this host holds.
    if (isRouterMac(mem, inner)) {
      if (net.external === null) return c.drop(Drop['no-route']);
      if (!this.learn(net, readU16(mem, inner + 6), readU32(mem, inner + 8), vtepDestination(vtep.index), now)) return c.drop(Drop['src-mac-pinned']);
      return this.router.route(null, net, inner, innerLen, -1 - vtep.index, c, now);
    }
    if (!isRouterMac(mem, inner + 6) && !this.learn(net, readU16(mem, inner + 6), readU32(mem, inner + 8), vtepDestination(vtep.index), now)) {
      return c.drop(Drop['src-mac-pinned']);
    }
    this.forward(net, inner, innerLen, -1 - vtep.index, c, now);
  }

  /** Where the tables pin a MAC (given as its two halves): a port index or a VTEP
   * destination, or NOT_FOUND (not pinned, or pinned to a port or host not here now). */
  private pinnedAt(net: Network, hi: number, lo: number): FdbDestination {
    const code = net.tables.pins.get(hi, lo);
    if (code === NO_PIN) return NOT_FOUND;
    if (code >= 0) {
      const vtep = net.vtepOfMember[code];
      return vtep === undefined ? NOT_FOUND : vtepDestination(vtep.index);
    }
    const local = localOf(code);
    return local < net.localPort.length ? net.localPort[local] : NOT_FOUND;
  }

  /** Records that a source MAC was seen at `at`; false when the tables pin it elsewhere (the
   * frame is a spoof). A pinned MAC is never learned: learning cannot move it. */
  private learn(net: Network, hi: number, lo: number, at: FdbDestination, now: number): boolean {
    const pinned = this.pinnedAt(net, hi, lo);
    if (pinned !== NOT_FOUND) return pinned === at;
    net.fdb.learn(hi, lo, at, now);
    return true;
  }

  /**
   * Delivers a frame within its network. `from` is the ingress port index, or -(vtep + 1)
   * for a frame from a tunnel: such a frame never goes back out to the underlay (split
   * horizon), so a remote host's flood is not re-flooded. `fromNet` is the network it came
   * in on (another one when it was routed): a port is where a frame came from only on that
   * network, so a frame routed between two VLANs of one trunk goes back out of that trunk.
   */
  forward(net: Network, off: number, len: number, from: number, c: Counters, now: number, fromNet: Network = net): void {
    const mem = this.memory.bytes;
    this.encapAt = -1;
    const fromTunnel = from < 0;
    // The port the frame came from, on this network (NOT_FOUND: none; it came from a tunnel
    // or another network).
    const fromPort = fromTunnel || net !== fromNet ? NOT_FOUND : from;
    if (!isGroupMac(mem, off)) {
      const hi = readU16(mem, off);
      const lo = readU32(mem, off + 2);
      let dest = this.pinnedAt(net, hi, lo);
      if (dest === NOT_FOUND) dest = net.fdb.lookup(hi, lo);
      if (this.tracer.active) this.traceSwitch(net, mem, off, dest);
      if (dest !== NOT_FOUND) {
        if (dest === fromPort) return c.drop(Drop.hairpin);
        if (!isRemote(dest)) return this.toPort(this.ports[dest]!, net, off, len, now);
        if (fromTunnel) return c.drop(Drop.hairpin);
        return this.toTunnel(this.vteps[vtepOf(dest)]!, net, off, len, c, now);
      }
    }
    // Broadcast, multicast or unknown unicast: flood within the network.
    if (this.tracer.active && isGroupMac(mem, off)) this.tracer.step('switch', 'pass', `network ${net.name}: ${formatMac(readU16(mem, off) * 2 ** 32 + readU32(mem, off + 2))} is a group address: flooded`);
    const ports = net.ports;
    for (let i = 0; i < ports.length; i++) {
      if (ports[i].index !== fromPort) this.toPort(ports[i], net, off, len, now);
    }
    if (fromTunnel) return;
    const remotes = net.remotes;
    for (let i = 0; i < remotes.length; i++) this.toTunnel(remotes[i], net, off, len, c, now);
  }

  get mem(): Uint8Array {
    return this.memory.bytes;
  }

  scratch(): number {
    if (this.scratchUsed === SCRATCH_SLOTS) this.flush();
    return this.memory.offsetOf(this.scratchSlot + this.scratchUsed++) + HEADROOM;
  }

  toPort(port: Port, net: Network, off: number, len: number, now: number): void {
    if (port.failed !== null) return;
    const tracer = this.tracer;
    if (port.firewall !== null) {
      const malformed = parseFlow(this.memory.bytes, off, len, this.delivered);
      if (malformed >= 0) return port.counters.drop(malformed);
      const refused = port.firewall.ingress(this.memory.bytes, this.delivered, now);
      if (tracer.active) {
        if (refused >= 0) tracer.because(port.firewall.explain(refused));
        else tracer.step('security groups', 'pass', `ingress to port ${port.name}: ${port.firewall.explain(refused)}`);
      }
      if (refused >= 0) return port.counters.drop(refused);
    }
    if (tracer.active) tracer.step('deliver', 'deliver', `to port ${port.name} on network ${net.name}`, port.name);
    if (port.trunk && net !== port.nativeNetwork) {
      // Insert the tag in a scratch copy: the original may still go out elsewhere untagged.
      const mem = this.memory.bytes;
      const s = this.scratch();
      mem.copyWithin(s, off, off + 12);
      writeU16(mem, s + 12, EtherType.Vlan);
      writeU16(mem, s + 14, port.vidOfNetwork.get(net.index)!);
      mem.copyWithin(s + 16, off + 12, off + len);
      off = s;
      len += 4;
    }
    if (port.txCount === PORT_TX_QUEUE) this.flushPort(port);
    port.txOffsets[port.txCount] = off;
    port.txLengths[port.txCount] = len;
    port.txCount++;
    if (!port.dirty) {
      port.dirty = true;
      this.dirtyPorts.push(port);
    }
    if (port.tap !== null) port.tap.frame(this.memory.bytes, off, len, 'tx', now);
  }

  toTunnel(vtep: Vtep, net: Network, off: number, len: number, c: Counters, now: number): void {
    const u = net.encrypted ? this.tunnelUnderlay : net.isVxlan ? this.vxlanUnderlay : this.geneveUnderlay;
    if (u === null) return c.drop(Drop['tx-error']);
    const at = off - net.encapLen;
    if (this.encapAt !== at) {
      if (net.isVxlan) writeVxlanHeader(this.memory.bytes, at, net.vni);
      else writeGeneveHeader(this.memory.bytes, at, net.vni);
      this.encapAt = at;
    }
    if (u.tunnels !== null) return this.sealTo(u, u.tunnels, vtep, off, at, len + net.encapLen, c, now);
    if (this.tracer.active) this.tracer.step('encapsulate', 'send', `${net.encapsulation === 'vxlan' ? 'VXLAN' : 'Geneve'} VNI ${net.vni}, ${formatIpv4(u.address)}:${u.port} -> ${formatIpv4(vtep.address)}:${vtep.port}, ${len + net.encapLen + 28} bytes on the underlay (MTU ${this.underlayMtu})`);
    if (u.txCount === UNDERLAY_TX_QUEUE) this.flushUnderlay(u);
    const k = u.txCount++;
    u.txOffsets[k] = at;
    u.txLengths[k] = len + net.encapLen;
    u.txAddrs[k] = vtep.address;
    u.txPorts[k] = vtep.port;
    u.txVteps[k] = vtep.index;
    if (vtep.tap !== null) {
      vtep.tap.datagram(this.memory.bytes, at, len + net.encapLen, off, len, 'tx', u.address, u.port, vtep.address, vtep.port, net.vni, now);
    }
  }

  /** Seals the VXLAN datagram at (at, len) for `vtep`'s peer into a slot of its own (the
   * plaintext may go to other peers too) and queues it to where the peer is now. */
  private sealTo(u: Underlay, tunnels: TunnelEngine, vtep: Vtep, frame: number, at: number, len: number, c: Counters, now: number): void {
    const peer = vtep.peer;
    if (peer === null) return c.drop(Drop['tunnel-no-session']);
    if (u.txCount === SEALED_TX_SLOTS) this.flushUnderlay(u);
    const k = u.txCount;
    const slot = this.memory.offsetOf(u.txSlot + k) + HEADROOM;
    const mem = this.memory.bytes;
    const sealed = tunnels.seal(peer, mem, at, len, mem, slot);
    if (sealed === 0) { // held until the handshake under way finishes
      if (this.tracer.active) this.tracer.step('encrypt', 'send', `held until the handshake with ${formatIpv4(peer.address)} finishes`);
      return;
    }
    if (sealed < 0) return c.drop(Drop['tunnel-no-session']);
    if (this.tracer.active) this.tracer.step('encrypt', 'send', `sealed in the tunnel to ${formatIpv4(peer.address)}:${peer.port} (VXLAN VNI ${readU24(mem, at + 4)} inside), ${sealed + 28} bytes on the underlay (MTU ${this.underlayMtu})`);
    u.txCount++;
    u.txOffsets[k] = slot;
    u.txLengths[k] = sealed;
    u.txAddrs[k] = peer.address;
    u.txPorts[k] = peer.port;
    u.txVteps[k] = vtep.index;
    if (vtep.tap !== null) vtep.tap.datagram(mem, slot, sealed, frame, len - 8, 'tx', u.address, u.port, peer.address, peer.port, readU24(mem, at + 4), now);
  }

  /** Writes every queued frame. Called at the end of each batch. */
  flush(): void {
    for (let i = 0; i < this.dirtyPorts.length; i++) this.flushPort(this.dirtyPorts[i]);
    this.dirtyPorts.length = 0;
    const tunnels = this.tunnelUnderlay?.tunnels;
    if (tunnels?.pending) tunnels.drain(this.queueTunnelMessage);
    for (let i = 0; i < this.underlays.length; i++) if (this.underlays[i].txCount > 0) this.flushUnderlay(this.underlays[i]);
    this.scratchUsed = 0;
  }

  private flushPort(port: Port): void {
    port.dirty = false;
    const count = port.txCount;
    if (count === 0) return;
    port.txCount = 0;
    if (port.failed !== null) return;
    let attempted: number;
    try {
      attempted = port.backend.writeBatch(this.memory.bytes, port.txOffsets, port.txLengths, count);
    } catch (err) {
      port.failed = (err as Error).message;
      port.backend.close();
      return;
    }
    const c = port.counters;
    for (let i = 0; i < attempted; i++) {
      if (port.txLengths[i] >= 0) c.tx(port.txLengths[i]);
      else c.drop(Drop['tx-error']);
    }
    for (let i = attempted; i < count; i++) c.drop(Drop['tx-busy']);
  }

  private flushUnderlay(u: Underlay): void {
    const count = u.txCount;
    u.txCount = 0;
    const uc = u.counters;
    const attempted = u.backend.sendBatch(this.memory.bytes, u.txOffsets, u.txLengths, u.txAddrs, u.txPorts, count);
    for (let i = 0; i < count; i++) {
      const vc = this.vteps[u.txVteps[i]]?.counters;
      const len = u.txLengths[i];
      if (i < attempted && len >= 0) {
        uc.tx(len);
        vc?.tx(len);
      } else {
        const reason = i < attempted ? Drop['tx-error'] : Drop['tx-busy'];
        uc.drop(reason);
        vc?.drop(reason);
      }
    }
  }

  // ---- observation -----------------------------------------------------------------------

  /** The switching step of a traced probe: where its destination MAC is. */
  private traceSwitch(net: Network, mem: Uint8Array, off: number, dest: number): void {
    const mac = formatMac(readU16(mem, off) * 2 ** 32 + readU32(mem, off + 2));
    const where = dest === NOT_FOUND ? 'unknown here: flooded'
      : isRemote(dest) ? `behind host ${formatIpv4(this.vteps[vtepOf(dest)]?.address ?? 0)}` : `at port ${this.ports[dest]?.name ?? '?'}`;
    this.tracer.step('switch', 'pass', `network ${net.name}: ${mac} ${where}`);
  }

  /** Arms a trace (see trace.ts) for `ms`. */
  armTrace(match: TraceMatch, ms: number): void {
    this.tracer.arm(match, ms);
  }

  /** Ends a trace and returns what this host recorded of it. */
  traceSteps(id: string): TraceStep[] {
    return this.tracer.disarm(id);
  }

  /** Hands `frame` to the data path as if port `name` had sent it (a trace's probe). */
  inject(name: string, frame: Uint8Array, now: number): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    if (frame.length > this.slotCapacity) throw new Error(`a probe of ${frame.length} bytes does not fit a slot (${this.slotCapacity})`);
    const at = this.scratch();
    this.memory.bytes.set(frame, at);
    this.insideTraced(port, at, frame.length, now);
    this.flush();
  }

  portCounters(name: string): Counters {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    return port.counters;
  }

  tunnelCounters(address: number): Counters | undefined {
    return this.vteps.find((v) => v?.address === address)?.counters;
  }

  fdbOf(network: string): Fdb {
    return this.mustNetwork(network).fdb;
  }

  stats(formatAddress: (a: number) => string): DatapathStats {
    if (this.peersChanged) this.syncPeers();
    const netNames = (v: Vtep) => this.networks.filter((n) => n?.remotes.includes(v)).map((n) => n!.name);
    return {
      ports: [...this.portByName.values()].map((p) => ({
        name: p.name,
        backend: p.backend.description,
        mode: p.trunk ? 'trunk' : 'access',
        networks: this.networks.filter((n) => n?.ports.includes(p)).map((n) => n!.name),
        failed: p.failed,
        kernel: p.backend.kernelCounters?.() ?? null,
        dhcp: p.dhcp === null ? null : Object.fromEntries(DHCP_OUTCOMES.map((o, i) => [o, p.dhcpOutcomes[i]]).filter(([, n]) => n !== 0)),
        conntrack: p.firewall === null ? null : { entries: p.firewall.size, limit: p.firewall.capacity, refused: p.firewall.refused },
        ...p.counters.snapshot(),
      })),
      tunnels: this.vteps.filter((v): v is Vtep => v !== undefined).map((v) => ({
        tunnel: v.peer !== null && this.tunnelUnderlay?.tunnels ? this.tunnelUnderlay.tunnels.stats(v.peer) : null,
        // An encrypted tunnel's peer is where it was last heard from (it may have roamed).
        remote: v.peer ? `${formatAddress(v.peer.address)}:${v.peer.port}` : `${formatAddress(v.address)}:${v.port}`,
        networks: netNames(v),
        encrypted: v.key !== null,
        ...v.counters.snapshot(),
      })),
      underlays: this.underlays.map((u) => ({
        encapsulation: u.encapsulation,
        backend: u.backend.description,
        local: `${formatAddress(u.address)}:${u.port}`,
        mtu: this.underlayMtu,
        kernel: u.backend.kernelCounters?.() ?? null,
        ...u.counters.snapshot(),
      })),
      networks: this.networks.filter((n): n is Network => n !== undefined).map((n) => ({
        name: n.name,
        vni: n.vni,
        encapsulation: n.encapsulation,
        encrypted: n.encrypted,
        provider: n.provider,
        mtu: n.mtu,
        ports: n.ports.length,
        remotes: n.remotes.length,
        fdb: { entries: n.fdb.size + n.tables.pins.size, static: n.tables.pins.size, limit: n.fdb.limit, learnRefused: n.fdb.learnRefused, moves: n.fdb.moves },
        arpAnswered: n.arpAnswered,
        ndAnswered: n.ndAnswered,
      })),
      nats: [...this.nats.values()].map((n) => ({
        router: n.spec.router,
        network: n.network.name,
        address: formatAddress(n.spec.address),
        connections: n.table.size,
        limit: n.table.capacity,
        translatedOut: n.translatedOut,
        translatedIn: n.translatedIn,
        neighbors: n.arp.size,
      })),
    };
  }

  /** The counters of the underlay socket of `encapsulation`. */
  underlayCounters(encapsulation: Encapsulation): Counters | undefined {
    return this.underlays.find((u) => u.encapsulation === encapsulation)?.counters;
  }

  close(): void {
    for (const p of this.ports) p?.backend.close();
    for (const u of this.underlays) u.backend.close();
  }

  private mustNetwork(name: string): Network {
    const net = this.networkByName.get(name);
    if (!net) throw new Error(`no network ${name}`);
    return net;
  }
}

/** The all-zero MAC: no station's address, so never a valid source (IEEE 802). */
function isZeroMac(mem: Uint8Array, off: number): boolean {
  return readU16(mem, off) === 0 && readU32(mem, off + 2) === 0;
}
