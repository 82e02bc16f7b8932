/**
 * What the data path is made of: bridge domains (networks), ports, tunnels to remote hosts
 * (VTEPs) and underlay sockets, and `Output`, what every stage may do with a frame. The
 * stages (switching in datapath.ts, routing in router.ts, the local services in
 * services.ts) work on these objects; only the data path creates and removes them.
 */
import type { Tracer } from './trace.js';
import type { PortBackend, UnderlayBackend } from './backend.js';
import { Counters } from './counters.js';
import { DHCP_OUTCOMES, type DhcpLease } from './dhcp-server.js';
import { encapHeaderLen, type Encapsulation } from './encapsulation.js';
import { Fdb } from './fdb.js';
import type { Neighbors6, Prefix6 } from './ipv6.js';
import type { Nat } from './nat.js';
import type { PortSecurity } from './port-security.js';
import type { Firewall } from './firewall.js';
import { EMPTY_TABLES, type AddressTable, type Member, type NetworkTables } from './tables.js';

/** Implementation limits (ours, not a protocol's). */
export const PORT_TX_QUEUE = 256;
export const UNDERLAY_TX_QUEUE = 1024;

/** Something that wants to see frames (a capture). Called only while set; it must copy. */
export interface FrameTap {
  /** A frame entering ('rx') or leaving ('tx') a port. */
  frame(mem: Uint8Array, off: number, len: number, direction: 'rx' | 'tx', now: number): void;
  /** A datagram on a tunnel: the UDP payload at (off, len), the inner frame at (innerOff,
   * innerLen) (inside the payload; for a sealed datagram, its plaintext elsewhere), of the
   * network `vni`. */
  datagram(mem: Uint8Array, off: number, len: number, innerOff: number, innerLen: number, direction: 'rx' | 'tx',
    local: number, localPort: number, remote: number, remotePort: number, vni: number, now: number): void;
}

/**
 * What a stage may do with frames. Offsets are into `mem`, the data path's packet memory;
 * a frame queued with `toPort` or `forward` goes out at the end of the batch.
 */
export interface Output {
  readonly mem: Uint8Array;
  /** `weft trace`: stages say what they did with a traced probe (when tracer.active). */
  readonly tracer: Tracer;
  /** The offset of a free scratch buffer (one slot, with headroom in front) for a frame a
   * stage writes itself: an answer, an ICMP error. Valid until the end of the batch. */
  scratch(): number;
  /** Queues a frame to one port (tagged there if the port is a trunk). */
  toPort(port: Port, net: Network, off: number, len: number, now: number): void;
  /** Queues a frame, unchanged, to one remote host over `net`'s tunnel. */
  toTunnel(vtep: Vtep, net: Network, off: number, len: number, c: Counters, now: number): void;
  /** Switches a frame within `net`: to the port or tunnel its destination MAC is at, or
   * flooded. `from` is the ingress port's index, or -(vtep + 1) for a tunnel; `fromNet` the
   * network it came in on, when it was routed from another (`net` when not given). */
  forward(net: Network, off: number, len: number, from: number, c: Counters, now: number, fromNet?: Network): void;
}

export class Network {
  readonly ports: Port[] = [];
  /** The tunnels of its member hosts, in the tables' order (a flood goes to each). */
  remotes: readonly Vtep[] = [];
  readonly fdb: Fdb;
  readonly encapLen: number;
  readonly isVxlan: boolean;
  /** The compiled tables as last swapped in (tables.ts); the fields below are what the data
   * path resolved of them (names to objects, ids to tunnels and ports). */
  tables: NetworkTables = EMPTY_TABLES;
  /** Its member hosts as installed, and the tunnel (VTEP) of each, by member id. */
  members: readonly Member[] = [];
  readonly vtepOfMember: Array<Vtep | undefined> = [];
  /** A local pin's id -> the index of its port while the port is on this network, else
   * NOT_FOUND. */
  localPort: Int32Array = new Int32Array(0);
  /** IPv4 -> MAC of the ports a controller told us about: ARP for these is answered here.
   * Null when there is no such table (static config): ARP is then flooded like any frame. */
  arp: AddressTable | null = null;
  arpAnswered = 0;
  /** IPv6 (RFC 5952 text) -> MAC: neighbor solicitations for these are answered here. */
  nd: ReadonlyMap<string, number> | null = null;
  ndAnswered = 0;
  /** Where the router takes packets sent to ROUTER_MAC on this network, longest prefix
   * first. */
  routes: ReadonlyArray<{ prefix: number; mask: number; network: Network; nextHop: number }> = [];
  /** The router's addresses on this network (its subnets' gateways): pings to them are
   * answered, and ICMP errors come from the one on the sender's subnet. */
  gateways: ReadonlyArray<{ readonly address: number; readonly mask: number }> = [];
  /** The way out from this network, when its router has an external gateway: translated
   * here (this host holds the gateway), or sent to the host that does. */
  external: Nat | null = null;
  externalVtep: Vtep | null = null;
  /** On an external (provider) network: the routers' gateways this host holds on it. */
  nats: Nat[] = [];
  /** IPv6: what this network's router advertisements say (null: none are sent). */
  ra: { prefix: Uint8Array; prefixLength: number; routerLifetime: number; dns: readonly Uint8Array[] } | null = null;
  /** IPv6: where the router takes packets sent to it, longest prefix first. */
  routes6: ReadonlyArray<{ prefix: Prefix6; network: Network }> = [];
  /** IPv6 neighbours the controller told us about, for routing into this network. */
  nd6: Neighbors6 | null = null;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly vni: number,
    readonly encapsulation: Encapsulation,
    public mtu: number,
    fdbLimit: number,
    fdbAgingMs: number,
    /** On a host interface (an uplink port), not the overlay: no remote hosts. */
    readonly provider: boolean,
    /** Carried only in sealed tunnels (VXLAN inside, then encrypted per peer). */
    readonly encrypted: boolean,
  ) {
    this.fdb = new Fdb(fdbLimit, fdbAgingMs);
    this.encapLen = encapHeaderLen(encapsulation);
    this.isVxlan = encapsulation === 'vxlan';
  }
}

export class Port {
  readonly counters = new Counters();
  /** Trunk only: network index -> VLAN ID, and VLAN ID -> network. */
  readonly vidOfNetwork = new Map<number, number>();
  readonly networkOfVid: Array<Network | undefined> = [];
  nativeNetwork: Network | null = null;
  readonly txOffsets = new Int32Array(PORT_TX_QUEUE);
  readonly txLengths = new Int32Array(PORT_TX_QUEUE);
  txCount = 0;
  dirty = false;
  tap: FrameTap | null = null;
  failed: string | null = null;
  /** An access port's DHCP lease, answered here (null: DHCP messages pass as frames). */
  dhcp: DhcpLease | null = null;
  readonly dhcpOutcomes = new Float64Array(DHCP_OUTCOMES.length);
  /** When this port was last sent a router advertisement (-1: never). */
  raSent = -1;
  /** What the port may send as (null: port security off). */
  security: PortSecurity | null = null;
  /** Its security groups' rules and connections (null: none apply). */
  firewall: Firewall | null = null;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly backend: PortBackend,
    readonly trunk: boolean,
    /** Access ports: their network. */
    readonly network: Network | null,
    readonly rxSlot: number,
    /** A host interface carrying provider networks, not a VM. */
    readonly uplink: boolean,
  ) {}
}

/** A tunnel to one remote host (VTEP), shared by the networks the two hosts have in common. */
export class Vtep {
  readonly counters = new Counters();
  networks = 0;
  tap: FrameTap | null = null;

  constructor(
    readonly index: number,
    readonly address: number,
    readonly port: number,
    /** An encrypted tunnel's remote host: its public key (base64). */
    readonly key: string | null = null,
  ) {}

  /** The tunnels' peer for `key`: frames to it are sealed in its session and go where it was
   * last heard from (it may roam), not necessarily to address:port. */
  peer: TunnelPeer | null = null;
}

/** What `TunnelEngine.receive` returns for a handshake message it consumed. */
export const TUNNEL_HANDLED = -1;
/** What else it refuses, and why (each a drop reason of its own). */
export const TunnelRefusal = {
  malformed: -2,
  /** A data message for no session this host has (never had, forgotten, or a revoked peer's). */
  unknownSession: -3,
  authFailed: -4,
  replay: -5,
  /** A session past its time or message limit. */
  expired: -6,
  /** A handshake not meant for this host (mac1), or from a key that is not a peer's. */
  handshakeRefused: -7,
  /** A handshake over the per-source rate, or without a cookie under load. */
  rateLimited: -8,
} as const;
/** A sealed datagram's header (type, receiver index, counter): the plaintext follows it. */
export const TUNNEL_HEADER_LEN = 16;

/** A remote host of the encrypted tunnels: where to send to it (updated as it roams). */
export interface TunnelPeer {
  address: number;
  port: number;
}

export interface TunnelPeerSpec {
  publicKey: Uint8Array;
  address: number;
  port: number;
}

/** One peer's tunnel, for `weft stats`. */
export interface TunnelStats {
  endpoint: string;
  session: { ageMs: number; initiator: boolean; sent: number } | null;
  handshakes: number;
  rotations: number;
  authFailures: number;
  replays: number;
  roams: number;
}

/**
 * What the data path needs of the encrypted tunnels (src/tunnel/tunnels.ts): seal a datagram
 * for a peer, open one from the tunnel socket, and keep time. Allocation-free per packet.
 */
export interface TunnelEngine {
  /** Seals src[srcOff, +len) for `peer` into dst at dstOff; the datagram's length, 0 when
   * there is no session yet and the frame is held for the handshake under way, or -1 when it
   * could not be held either. */
  seal(peer: TunnelPeer, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
  /** A datagram from the tunnel socket: >= 0, a data message opened in place (its plaintext
   * at buf[off + 16, + result), from `lastPeer`; 0 is a keepalive); TUNNEL_HANDLED, a
   * handshake message consumed; a TunnelRefusal, a drop. */
  receive(buf: Uint8Array, off: number, len: number, fromAddress: number, fromPort: number): number;
  readonly lastPeer: TunnelPeer | null;
  /** The peers this host may talk to: anyone else's traffic is refused. */
  setPeers(peers: TunnelPeerSpec[]): void;
  peerOf(publicKey: Uint8Array): TunnelPeer | undefined;
  /** Timers: handshake retries, rekeys, expiry, keepalives. */
  tick(): void;
  /** Whether the tunnels have datagrams of their own to send; `drain` hands them over. */
  readonly pending: boolean;
  drain(send: (data: Uint8Array, address: number, port: number) => void): void;
  stats(peer: TunnelPeer): TunnelStats;
}

/** One underlay socket: it carries every network of one encapsulation. */
export class Underlay {
  readonly counters = new Counters();
  readonly txOffsets = new Int32Array(UNDERLAY_TX_QUEUE);
  readonly txLengths = new Int32Array(UNDERLAY_TX_QUEUE);
  readonly txAddrs = new Uint32Array(UNDERLAY_TX_QUEUE);
  readonly txPorts = new Uint16Array(UNDERLAY_TX_QUEUE);
  readonly txVteps = new Int32Array(UNDERLAY_TX_QUEUE);
  txCount = 0;

  constructor(
    readonly backend: UnderlayBackend,
    readonly address: number,
    readonly port: number,
    /** 'encrypted': the tunnels' socket (VXLAN inside, sealed). */
    readonly encapsulation: Encapsulation | 'encrypted',
    readonly rxSlot: number,
    /** The encrypted tunnels' socket: datagrams are sealed, and carry VXLAN inside. */
    readonly tunnels: TunnelEngine | null = null,
    /** Sealed datagrams are written to these slots (encrypted tunnels only). */
    readonly txSlot = -1,
  ) {}
}
