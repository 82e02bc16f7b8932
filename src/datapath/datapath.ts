/**
 * The userspace data path of one host: bridge domains (one per network) joining local ports
 * and tunnels to remote hosts over the underlay: a UDP socket per encapsulation, and each
 * network accepts datagrams only from its own encapsulation's socket.
 *
 * Two straight-line functions carry every frame: `inside` (port -> VLAN -> learn -> lookup
 * -> local port or tunnel) and `outside` (underlay -> decapsulate -> learn -> lookup -> local
 * port). Each returns early on every drop and counts it. No I/O happens here: backends are
 * called only in `pump*` and `flush`, in batches, and time comes in as `now`.
 *
 * Memory: frames are read into slots of one PacketMemory with HEADROOM bytes free in front,
 * so encapsulation writes its header in place and a VLAN tag is removed by moving the MAC
 * addresses forward. Transmit queues hold offsets into that memory, never copies; the only
 * copy is into a scratch slot when a trunk port needs a tag inserted. Offsets stay valid
 * until the end of the batch that read them, which is when every queue is flushed.
 */
import { formatIpv6, isGroupMac, parseIpv4, readMac, readU16, readU24, readU32, writeMac, writeU16, writeU32 } from '../wire/bytes.js';
import { finish, sumBytes } from '../wire/checksum.js';
import { EtherType } from '../wire/ethernet.js';
import { FLAG_CRITICAL, FLAG_OAM, PROTOCOL_ETHERNET } from '../wire/geneve.js';
import { FLAG_I } from '../wire/vxlan.js';
import { VID_MAX, VID_MIN } from '../wire/vlan.js';
import { writeGeneveHeader } from '../wire/geneve.js';
import { writeVxlanHeader } from '../wire/vxlan.js';
import type { KernelCounters, PortBackend, UnderlayBackend } from './backend.js';
import { Counters, Drop, type CounterSnapshot } from './counters.js';
import { encapHeaderLen, overlayMtu, type Encapsulation } from './encapsulation.js';
import { Fdb, isRemote, Learned, NOT_FOUND, vtepDestination, vtepOf } from './fdb.js';
import { PacketMemory } from './packet-memory.js';
import { answerDhcp, DHCP_OUTCOMES, isDhcpToServer, type DhcpLease, type DhcpOutcome } from './dhcp-server.js';
import { isRouterMac, ROUTER_MAC } from './router-mac.js';

/** ICMP (RFC 792) types the router sends. */
const ICMP_UNREACHABLE = 3;
const ICMP_TIME_EXCEEDED = 11;

/** Implementation limits (ours, not a protocol's). */
export const HEADROOM = 64;
/** ICMP errors a host's router sends per second at most (RFC 1812 §4.3.2.8). */
const ICMP_ERRORS_PER_SECOND = 100;
export const BATCH = 64;
const UNDERLAY_RX_SLOTS = 128;
const PORT_TX_QUEUE = 256;
const UNDERLAY_TX_QUEUE = 1024;
const SCRATCH_SLOTS = 128;
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
}

export interface NetworkSpec {
  name: string;
  vni: number;
  encapsulation: Encapsulation;
  /** At most what the underlay allows (the default). */
  mtu?: number;
}

export type PortSpec =
  | { name: string; backend: PortBackend; mode: 'access'; network: string }
  | { name: string; backend: PortBackend; mode: 'trunk'; vlans: Record<number, string>; nativeNetwork?: string };

/** Something that wants to see frames (a capture). Called only while set; it must copy. */
export interface FrameTap {
  /** A frame entering ('rx') or leaving ('tx') a port. */
  frame(mem: Uint8Array, off: number, len: number, direction: 'rx' | 'tx', now: number): void;
  /** A datagram on a tunnel: the UDP payload at (off, len), the inner frame at innerOff. */
  datagram(mem: Uint8Array, off: number, len: number, innerOff: number, direction: 'rx' | 'tx',
    local: number, localPort: number, remote: number, remotePort: number, now: number): void;
}

class Network {
  readonly ports: Port[] = [];
  readonly remotes: Vtep[] = [];
  readonly fdb: Fdb;
  readonly encapLen: number;
  readonly isVxlan: boolean;
  /** IPv4 -> MAC of the ports a controller told us about: ARP for these is answered here.
   * Null when there is no such table (static config): ARP is then flooded like any frame. */
  arp: Map<number, number> | null = null;
  arpAnswered = 0;
  /** IPv6 (RFC 5952 text) -> MAC: neighbor solicitations for these are answered here. */
  nd: Map<string, number> | null = null;
  ndAnswered = 0;
  /** Where the router takes packets sent to ROUTER_MAC on this network, longest prefix
   * first. */
  routes: Array<{ prefix: number; mask: number; network: Network; nextHop: number }> = [];
  /** The router's addresses on this network (its subnets' gateways): pings to them are
   * answered, and ICMP errors come from the one on the sender's subnet. */
  gateways: Array<{ address: number; mask: number }> = [];
  /** MAC -> name of the local port the controller gave it: pinned in the FDB to that port
   * while it exists, so that no frame from elsewhere can move it. */
  localMacs: Map<number, string> | null = null;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly vni: number,
    readonly encapsulation: Encapsulation,
    public mtu: number,
    fdbLimit: number,
    fdbAgingMs: number,
  ) {
    this.fdb = new Fdb(fdbLimit, fdbAgingMs);
    this.encapLen = encapHeaderLen(encapsulation);
    this.isVxlan = encapsulation === 'vxlan';
  }
}

class Port {
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

  constructor(
    readonly index: number,
    readonly name: string,
    readonly backend: PortBackend,
    readonly trunk: boolean,
    /** Access ports: their network. */
    readonly network: Network | null,
    readonly rxSlot: number,
  ) {}
}

/** A tunnel to one remote host (VTEP), shared by the networks the two hosts have in common. */
class Vtep {
  readonly counters = new Counters();
  networks = 0;
  tap: FrameTap | null = null;

  constructor(
    readonly index: number,
    readonly address: number,
    readonly port: number,
  ) {}
}

/** One underlay socket: it carries every network of one encapsulation. */
class Underlay {
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
    readonly encapsulation: Encapsulation,
    readonly rxSlot: number,
  ) {}
}

export interface DatapathStats {
  ports: Array<{ name: string; backend: string; mode: 'access' | 'trunk'; networks: string[]; failed: string | null; kernel: KernelCounters | null;
    /** DHCP messages by outcome, for a port the agent serves DHCP to (else null). */
    dhcp: Partial<Record<DhcpOutcome, number>> | null } & CounterSnapshot>;
  tunnels: Array<{ remote: string; networks: string[] } & CounterSnapshot>;
  underlays: Array<{ encapsulation: Encapsulation; backend: string; local: string; mtu: number; kernel: KernelCounters | null } & CounterSnapshot>;
  networks: Array<{ name: string; vni: number; encapsulation: Encapsulation; mtu: number; ports: number; remotes: number; fdb: { entries: number; limit: number; learnRefused: number; moves: number }; arpAnswered: number; ndAnswered: number }>;
}

export class Datapath {
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
  private icmpWindowStart = 0;
  private icmpSent = 0;
  private vxlanUnderlay: Underlay | null = null;
  private geneveUnderlay: Underlay | null = null;

  private readonly scratchSlot: number;
  private scratchUsed = 0;
  private readonly dirtyPorts: Port[] = [];

  private readonly rxLengths = new Int32Array(UNDERLAY_RX_SLOTS);
  private readonly rxAddrs = new Uint32Array(UNDERLAY_RX_SLOTS);
  private readonly rxPorts = new Uint16Array(UNDERLAY_RX_SLOTS);
  /** Where the current frame's encapsulation header was written (-1: not yet). */
  private encapAt = -1;

  constructor(options: DatapathOptions = {}) {
    this.underlayMtu = options.underlayMtu ?? 1500;
    const maxPorts = options.maxPorts ?? 64;
    this.fdbLimit = options.fdbLimit ?? 4096;
    this.fdbAgingMs = options.fdbAgingMs ?? 300_000;
    // A slot holds the largest frame a port may send (a tagged frame at the underlay's MTU,
    // or a standard 1500-byte one) or the largest datagram the underlay can bring.
    this.slotCapacity = Math.max(1500, this.underlayMtu) + 14 + 4 + 4;
    const slotSize = Math.ceil((HEADROOM + this.slotCapacity) / 64) * 64;
    this.memory = new PacketMemory(slotSize, maxPorts * BATCH + UNDERLAY_RX_SLOTS + SCRATCH_SLOTS);
    this.scratchSlot = this.memory.alloc(SCRATCH_SLOTS);
  }

  // ---- configuration (control plane; may allocate) ---------------------------------------

  addNetwork(spec: NetworkSpec): void {
    if (this.networkByName.has(spec.name)) throw new Error(`network ${spec.name} exists already`);
    const clash = this.networkByVni.get(spec.vni);
    if (clash) throw new Error(`VNI ${spec.vni} is taken by network ${clash.name}`);
    let index = this.networks.indexOf(undefined);
    if (index < 0) index = this.networks.length;
    const most = overlayMtu(this.underlayMtu, spec.encapsulation);
    const net = new Network(index, spec.name, spec.vni, spec.encapsulation, Math.min(spec.mtu ?? most, most), this.fdbLimit, this.fdbAgingMs);
    this.networks[index] = net;
    this.networkByName.set(net.name, net);
    this.networkByVni.set(net.vni, net);
  }

  removeNetwork(name: string): void {
    const net = this.mustNetwork(name);
    if (net.ports.length > 0) throw new Error(`network ${name} still has ports: ${net.ports.map((p) => p.name).join(', ')}`);
    for (const v of [...net.remotes]) this.removeRemote(name, v.address, v.port);
    for (const other of this.networks) if (other) other.routes = other.routes.filter((r) => r.network !== net);
    this.networks[net.index] = undefined;
    this.networkByName.delete(name);
    this.networkByVni.delete(net.vni);
  }

  /** The overlay MTU of a network: what its VMs' interfaces should be set to. */
  networkMtu(name: string): number {
    return this.mustNetwork(name).mtu;
  }

  /** Adds a remote host (VTEP) to a network: flooded frames are replicated to it, and
   * frames from it are accepted. */
  addRemote(network: string, address: number, port: number): void {
    const net = this.mustNetwork(network);
    if (net.remotes.some((v) => v.address === address && v.port === port)) return;
    let vtep = this.vteps.find((v) => v !== undefined && v.address === address && v.port === port);
    if (!vtep) {
      let index = this.vteps.indexOf(undefined);
      if (index < 0) index = this.vteps.length;
      vtep = new Vtep(index, address, port);
      this.vteps[index] = vtep;
    }
    vtep.networks++;
    net.remotes.push(vtep);
  }

  removeRemote(network: string, address: number, port: number): void {
    const net = this.mustNetwork(network);
    const i = net.remotes.findIndex((v) => v.address === address && v.port === port);
    if (i < 0) return;
    const vtep = net.remotes[i];
    net.remotes.splice(i, 1);
    net.fdb.flushDestination(vtepDestination(vtep.index));
    if (--vtep.networks === 0) this.vteps[vtep.index] = undefined;
  }

  /** Sets a network's MTU (capped at what the underlay allows); returns the one in force. */
  setNetworkMtu(name: string, mtu: number | undefined): number {
    const net = this.mustNetwork(name);
    const most = overlayMtu(this.underlayMtu, net.encapsulation);
    net.mtu = Math.min(mtu ?? most, most);
    return net.mtu;
  }

  /** Sets where the router takes packets sent to it on `network`: prefixes (CIDR text) and
   * the network each leads to (which must exist). */
  setRoutes(network: string, routes: Array<{ cidr: string; network: string; nextHop?: string }>): void {
    const net = this.mustNetwork(network);
    net.routes = routes.map((r) => {
      const [addr, len] = r.cidr.split('/');
      const length = Number(len);
      const mask = length === 0 ? 0 : (0xffff_ffff << (32 - length)) >>> 0;
      return { prefix: (parseIpv4(addr) & mask) >>> 0, mask, network: this.mustNetwork(r.network), nextHop: r.nextHop ? parseIpv4(r.nextHop) : 0 };
    }).sort((a, b) => b.mask - a.mask);
  }

  /** Sets the router's addresses on a network (its subnets' gateways, CIDR text). */
  setGateways(network: string, gateways: string[]): void {
    this.mustNetwork(network).gateways = gateways.map((g) => {
      const [addr, len] = g.split('/');
      const length = Number(len ?? 32);
      return { address: parseIpv4(addr), mask: length === 0 ? 0 : (0xffff_ffff << (32 - length)) >>> 0 };
    });
  }

  /** Sets the DHCP lease an access port is answered from (null: no DHCP server for it). */
  setPortDhcp(name: string, lease: DhcpLease | null): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    port.dhcp = lease;
  }

  /** Sets the addresses this host answers ARP for on a network (null: answer none). */
  setArpTable(network: string, table: Map<number, number> | null): void {
    this.mustNetwork(network).arp = table;
  }

  /** Sets the IPv6 addresses (RFC 5952 text) this host answers neighbor solicitations for. */
  setNdTable(network: string, table: Map<string, number> | null): void {
    this.mustNetwork(network).nd = table;
  }

  /** Removes a MAC from a network's FDB (a remote port that went away). */
  removeMac(network: string, mac: number): void {
    this.mustNetwork(network).fdb.remove(mac);
  }

  /** Installs a MAC that lives behind a remote host (pushed by a controller). */
  addRemoteMac(network: string, mac: number, address: number, port: number, now: number): void {
    const net = this.mustNetwork(network);
    const vtep = net.remotes.find((v) => v.address === address && v.port === port);
    if (!vtep) throw new Error(`network ${network} has no remote host ${address}:${port}`);
    net.fdb.setStatic(mac, vtepDestination(vtep.index), now);
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
    const port = new Port(index, spec.name, spec.backend, spec.mode === 'trunk', access, rxSlot);
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
      this.pinLocalMacs(net);
    }
  }

  /**
   * Sets which MACs belong to which local port on a network (from the controller's view;
   * null: none known). Each is pinned in the FDB to its port while the port exists: learning
   * never moves it, and a frame claiming it from another port or a tunnel is dropped
   * ('src-mac-pinned'), so one spoofed frame cannot cut a VM off.
   */
  setLocalMacs(network: string, macs: Map<number, string> | null): void {
    const net = this.mustNetwork(network);
    const old = net.localMacs;
    net.localMacs = macs;
    if (old) {
      for (const [mac, portName] of old) {
        const port = this.portByName.get(portName);
        if (port && macs?.get(mac) !== portName && net.fdb.isStaticAt(mac, port.index)) net.fdb.remove(mac);
      }
    }
    this.pinLocalMacs(net);
  }

  private pinLocalMacs(net: Network): void {
    if (!net.localMacs) return;
    for (const [mac, portName] of net.localMacs) {
      const port = this.portByName.get(portName);
      if (port && net.ports.includes(port)) net.fdb.setStatic(mac, port.index, 0);
    }
  }

  removePort(name: string): void {
    const port = this.portByName.get(name);
    if (!port) throw new Error(`no port ${name}`);
    for (const net of this.networks) {
      if (!net) continue;
      const i = net.ports.indexOf(port);
      if (i >= 0) net.ports.splice(i, 1);
      net.fdb.flushDestination(port.index);
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
      if (v && (address === null || v.address === address)) {
        v.tap = tap;
        n++;
      }
    }
    return n;
  }

  /** Forgets learned MACs not seen for the aging time. Call now and then (every second). */
  age(now: number): void {
    for (const net of this.networks) net?.fdb.age(now);
  }

  // ---- the per-frame path (synchronous, allocation-free) ---------------------------------

  /** Reads and forwards what waits on a port, in batches, then flushes every output. */
  pumpPort(index: number, now: number): void {
    const port = this.ports[index];
    if (!port || port.failed !== null) return;
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
      for (let i = 0; i < n; i++) this.inside(port, base + i * stride, this.rxLengths[i], now);
      this.flush();
      if (n < BATCH) return;
    }
  }

  private pumpUnderlay(u: Underlay, now: number): void {
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
      for (let i = 0; i < n; i++) this.outside(u, base + i * stride, this.rxLengths[i], this.rxAddrs[i], this.rxPorts[i], now);
      this.flush();
      if (n < UNDERLAY_RX_SLOTS) return;
    }
  }

  /** A frame from a VM's port. */
  private inside(port: Port, off: number, len: number, now: number): void {
    const mem = this.memory.bytes;
    const c = port.counters;
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
        const inner = readU16(mem, off + 16);
        if (inner === EtherType.Vlan || inner === EtherType.QinQ) return c.drop(Drop['vlan-not-allowed']);
        // Untag in place: move the two MAC addresses over the tag.
        mem.copyWithin(off + 4, off, off + 12);
        off += 4;
        len -= 4;
      } else {
        if (port.nativeNetwork === null) return c.drop(Drop['vlan-not-allowed']);
        net = port.nativeNetwork;
      }
    } else if (ethertype === EtherType.Vlan || ethertype === EtherType.QinQ) {
      return c.drop(Drop['vlan-not-allowed']);
    }

    if (len - 14 > net.mtu) return c.drop(Drop['mtu-exceeded']);
    if (net.fdb.learn(readU16(mem, off + 6), readU32(mem, off + 8), port.index, now) === Learned.pinnedElsewhere) return c.drop(Drop['src-mac-pinned']);
    const type = readU16(mem, off + 12);
    if (port.dhcp !== null && net === port.network && type === EtherType.Ipv4 && isDhcpToServer(mem, off, len)) return this.serveDhcp(port, net, off, len, now);
    if (isRouterMac(mem, off)) return this.route(port, net, off, len, c, now);
    if (net.arp !== null && type === EtherType.Arp && this.answerArp(port, net, off, len, now)) return;
    if (net.nd !== null && type === EtherType.Ipv6 && this.answerNd(port, net, off, len, now)) return;
    this.encapAt = -1;
    this.forward(net, off, len, port.index, c, now);
  }

  /**
   * The distributed router: a frame a VM sent to its gateway (ROUTER_MAC) is routed here,
   * on the VM's own host, straight into the destination's network: TTL decremented, the
   * header checksum updated incrementally (RFC 1624), MACs rewritten (from the router, to
   * the destination port's MAC the controller gave), then switched there, so a packet
   * between VMs on two hosts crosses the underlay once.
   */
  private route(port: Port, net: Network, off: number, len: number, c: Counters, now: number): void {
    const mem = this.memory.bytes;
    const ip = off + 14;
    if (readU16(mem, off + 12) !== EtherType.Ipv4 || len < 14 + 20 || mem[ip] >>> 4 !== 4 || (mem[ip] & 0x0f) < 5) return c.drop(Drop['no-route']);
    const dst = readU32(mem, ip + 16);
    const routes = net.routes;
    let target: Network | null = null;
    let hop = dst;
    for (let i = 0; i < routes.length; i++) {
      if (((dst & routes[i].mask) >>> 0) === routes[i].prefix) {
        target = routes[i].network;
        if (routes[i].nextHop !== 0) hop = routes[i].nextHop;
        break;
      }
    }
    if (target === null) {
      if (this.gatewayOf(net, dst) === dst) return this.answerGatewayPing(port, net, off, len, c, now);
      this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 0 /* net unreachable */, 0, now);
      return c.drop(Drop['no-route']);
    }
    if (mem[ip + 8] <= 1) {
      this.icmpError(port, net, off, len, ICMP_TIME_EXCEEDED, 0, 0, now);
      return c.drop(Drop['ttl-exceeded']);
    }
    if (len - 14 > target.mtu) {
      // RFC 1191: with DF set, say which MTU fits; Weft does not fragment either way.
      if ((mem[ip + 6] & 0x40) !== 0) this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 4 /* fragmentation needed */, target.mtu, now);
      return c.drop(Drop['mtu-exceeded']);
    }
    const mac = target.arp?.get(hop);
    if (mac === undefined) {
      this.icmpError(port, net, off, len, ICMP_UNREACHABLE, 1 /* host unreachable */, 0, now);
      return c.drop(Drop['no-neighbor']);
    }
    const before = readU16(mem, ip + 8);
    mem[ip + 8]--;
    let sum = (~readU16(mem, ip + 10) & 0xffff) + (~before & 0xffff) + readU16(mem, ip + 8);
    sum = (sum & 0xffff) + (sum >>> 16);
    sum = (sum & 0xffff) + (sum >>> 16);
    writeU16(mem, ip + 10, ~sum & 0xffff);
    writeMac(mem, off, mac);
    writeMac(mem, off + 6, ROUTER_MAC);
    this.encapAt = -1;
    this.forward(target, off, len, port.index, c, now);
  }

  /** The router's address on `net` for the subnet holding `ip`, else its first, else 0. */
  private gatewayOf(net: Network, ip: number): number {
    const g = net.gateways;
    for (let i = 0; i < g.length; i++) if (((ip ^ g[i].address) & g[i].mask) === 0) return g[i].address;
    return g.length > 0 ? g[0].address : 0;
  }

  /** ICMP errors owed by the router (RFC 1812 §4.3.2.7: never about an ICMP error, a
   * fragment other than the first, or a packet to or from a group or zero address), at
   * most ICMP_ERRORS_PER_SECOND per host; the packet itself is dropped by the caller. */
  private icmpError(port: Port, net: Network, off: number, len: number, type: number, code: number, mtu: number, now: number): void {
    const mem = this.memory.bytes;
    const ip = off + 14;
    const ihl = (mem[ip] & 0x0f) * 4;
    const src = readU32(mem, ip + 12);
    const from = this.gatewayOf(net, src);
    if (from === 0 || len < 14 + ihl || (readU16(mem, ip + 6) & 0x1fff) !== 0 || src === 0 || src >>> 28 === 14 || src === 0xffffffff) return;
    if (mem[ip + 9] === 1 && len >= 14 + ihl + 1 && (mem[ip + ihl] === ICMP_UNREACHABLE || mem[ip + ihl] === ICMP_TIME_EXCEEDED)) return;
    if (now - this.icmpWindowStart >= 1000) {
      this.icmpWindowStart = now;
      this.icmpSent = 0;
    }
    if (this.icmpSent >= ICMP_ERRORS_PER_SECOND) return;
    this.icmpSent++;
    const quoted = Math.min(len - 14, ihl + 8);
    if (this.scratchUsed === SCRATCH_SLOTS) this.flush();
    const r = this.memory.offsetOf(this.scratchSlot + this.scratchUsed++) + HEADROOM;
    const rip = r + 14;
    const icmp = rip + 20;
    mem.copyWithin(r, off + 6, off + 12); // back to the sender's MAC
    writeMac(mem, r + 6, ROUTER_MAC);
    writeU16(mem, r + 12, EtherType.Ipv4);
    mem.copyWithin(icmp + 8, ip, ip + quoted); // the original header and 8 bytes (RFC 792)
    mem[icmp] = type;
    mem[icmp + 1] = code;
    writeU16(mem, icmp + 2, 0);
    writeU16(mem, icmp + 4, 0);
    writeU16(mem, icmp + 6, mtu);
    writeU16(mem, icmp + 2, finish(sumBytes(mem, icmp, 8 + quoted, 0)));
    writeIpv4Header(mem, rip, 20 + 8 + quoted, 1, from, src);
    this.toPort(port, net, r, 14 + 20 + 8 + quoted, now);
  }

  /** An echo request to the router's own address on the network: answered in place. */
  private answerGatewayPing(port: Port, net: Network, off: number, len: number, c: Counters, now: number): void {
    const mem = this.memory.bytes;
    const ip = off + 14;
    const ihl = (mem[ip] & 0x0f) * 4;
    const icmp = ip + ihl;
    const total = readU16(mem, ip + 2);
    if (mem[ip + 9] !== 1 || len < 14 + ihl + 8 || mem[icmp] !== 8 || total > len - 14 || total < ihl + 8) return c.drop(Drop['no-route']);
    const gateway = readU32(mem, ip + 16);
    mem.copyWithin(off, off + 6, off + 12);
    writeMac(mem, off + 6, ROUTER_MAC);
    writeIpv4Header(mem, ip, total, 1, gateway, readU32(mem, ip + 12));
    if (ihl > 20) mem.copyWithin(ip + 20, icmp, ip + total); // options are not echoed
    const reply = ip + 20;
    mem[reply] = 0; // echo reply
    writeU16(mem, reply + 2, 0);
    writeU16(mem, reply + 2, finish(sumBytes(mem, reply, total - ihl, 0)));
    writeU16(mem, ip + 2, 20 + total - ihl);
    this.toPort(port, net, off, 14 + 20 + total - ihl, now);
  }

  /**
   * A DHCP message from a port with a lease: answered here from the lease (never flooded to
   * the network, so no other VM or host sees it); one that cannot be answered is counted
   * under its outcome and dropped as 'dhcp-refused'.
   */
  private serveDhcp(port: Port, net: Network, off: number, len: number, now: number): void {
    if (this.scratchUsed === SCRATCH_SLOTS) this.flush();
    const mem = this.memory.bytes;
    const r = this.memory.offsetOf(this.scratchSlot + this.scratchUsed++) + HEADROOM;
    const a = answerDhcp(mem, off, len, port.dhcp!, ROUTER_MAC, net.mtu, mem, r);
    port.dhcpOutcomes[DHCP_OUTCOMES.indexOf(a.outcome)]++;
    if (a.outcome === 'malformed' || a.outcome === 'wrong-client' || a.outcome === 'not-for-us') return port.counters.drop(Drop['dhcp-refused']);
    if (a.length > 0) this.toPort(port, net, r, a.length, now);
  }

  /**
   * ARP suppression: a request for an address the controller told us about is answered
   * here, to the asking port only, instead of being flooded to every host. Gratuitous ARP
   * and a VM probing its own address pass through. Returns whether it answered.
   */
  private answerArp(port: Port, net: Network, off: number, len: number, now: number): boolean {
    const mem = this.memory.bytes;
    const a = off + 14;
    if (len < 14 + 28 || readU32(mem, a) !== 0x0001_0800 || readU16(mem, a + 4) !== 0x0604 || readU16(mem, a + 6) !== 1) return false;
    const senderIp = readU32(mem, a + 14);
    const targetIp = readU32(mem, a + 24);
    if (senderIp === targetIp) return false;
    const mac = net.arp!.get(targetIp);
    if (mac === undefined || mac === readMac(mem, a + 8)) return false;
    if (this.scratchUsed === SCRATCH_SLOTS) this.flush();
    const r = this.memory.offsetOf(this.scratchSlot + this.scratchUsed++) + HEADROOM;
    mem.copyWithin(r, off + 6, off + 12); // to the asker
    writeMac(mem, r + 6, mac);
    writeU16(mem, r + 12, EtherType.Arp);
    writeU32(mem, r + 14, 0x0001_0800);
    writeU16(mem, r + 18, 0x0604);
    writeU16(mem, r + 20, 2); // reply
    writeMac(mem, r + 22, mac);
    writeU32(mem, r + 28, targetIp);
    mem.copyWithin(r + 32, a + 8, a + 18); // target hardware and protocol address: the asker's
    net.arpAnswered++;
    this.toPort(port, net, r, 42, now);
    return true;
  }

  /**
   * Neighbor solicitation suppression (RFC 4861 §7.2.4, answered on the target's behalf): a
   * solicitation for an address the controller told us about gets a solicited, override
   * advertisement from the agent. Duplicate address detection (unspecified source) and a
   * VM asking for its own address pass through. Returns whether it answered.
   */
  private answerNd(port: Port, net: Network, off: number, len: number, now: number): boolean {
    const mem = this.memory.bytes;
    const ip = off + 14;
    const icmp = ip + 40;
    // ICMPv6 straight after the fixed header, hop limit 255 (§7.1.1), type 135, code 0.
    if (len < 14 + 40 + 24 || mem[ip + 6] !== 58 || mem[ip + 7] !== 255 || mem[icmp] !== 135 || mem[icmp + 1] !== 0) return false;
    let unspecified = true;
    for (let i = 0; i < 16 && unspecified; i++) unspecified = mem[ip + 8 + i] === 0;
    if (unspecified) return false;
    const mac = net.nd!.get(formatIpv6(mem, icmp + 8));
    if (mac === undefined || mac === readMac(mem, off + 6)) return false;
    if (this.scratchUsed === SCRATCH_SLOTS) this.flush();
    const r = this.memory.offsetOf(this.scratchSlot + this.scratchUsed++) + HEADROOM;
    const rip = r + 14;
    const ricmp = rip + 40;
    mem.copyWithin(r, off + 6, off + 12); // to the asker
    writeMac(mem, r + 6, mac);
    writeU16(mem, r + 12, EtherType.Ipv6);
    writeU32(mem, rip, 0x6000_0000);
    writeU16(mem, rip + 4, 32); // payload: NA (24) + target link-layer address option (8)
    mem[rip + 6] = 58;
    mem[rip + 7] = 255;
    mem.copyWithin(rip + 8, icmp + 8, icmp + 24); // from the target address
    mem.copyWithin(rip + 24, ip + 8, ip + 24); // to the soliciting address
    mem[ricmp] = 136;
    mem[ricmp + 1] = 0;
    writeU16(mem, ricmp + 2, 0);
    writeU32(mem, ricmp + 4, 0x6000_0000); // solicited, override
    mem.copyWithin(ricmp + 8, icmp + 8, icmp + 24);
    mem[ricmp + 24] = 2; // target link-layer address
    mem[ricmp + 25] = 1;
    writeMac(mem, ricmp + 26, mac);
    const pseudo = sumBytes(mem, rip + 8, 32, 32 + 58);
    writeU16(mem, ricmp + 2, finish(sumBytes(mem, ricmp, 32, pseudo)));
    net.ndAnswered++;
    this.toPort(port, net, r, 86, now);
    return true;
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
    const c = vtep.counters;
    c.rx(len);

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
    if (vtep.tap !== null) vtep.tap.datagram(mem, off, len, inner, 'rx', u.address, u.port, fromAddr, fromPort, now);
    if (isGroupMac(mem, inner + 6) || isZeroMac(mem, inner + 6)) return c.drop(Drop['invalid-src-mac']);
    // Frames cross the underlay untagged (the VNI is the network): a tag is never valid here.
    const innerType = readU16(mem, inner + 12);
    if (innerType === EtherType.Vlan || innerType === EtherType.QinQ) return c.drop(Drop['vlan-not-allowed']);
    if (innerLen - 14 > net.mtu) return c.drop(Drop['mtu-exceeded']);
    // A routed frame comes from the router MAC, which is every host's own: never learned.
    if (!isRouterMac(mem, inner + 6) && net.fdb.learn(readU16(mem, inner + 6), readU32(mem, inner + 8), vtepDestination(vtep.index), now) === Learned.pinnedElsewhere) {
      return c.drop(Drop['src-mac-pinned']);
    }
    this.encapAt = -1;
    this.forward(net, inner, innerLen, -1 - vtep.index, c, now);
  }

  /**
   * Delivers a frame within its network. `from` is the ingress port index, or -(vtep + 1)
   * for a frame from a tunnel: such a frame never goes back out to the underlay (split
   * horizon), so a remote host's flood is not re-flooded.
   */
  private forward(net: Network, off: number, len: number, from: number, c: Counters, now: number): void {
    const mem = this.memory.bytes;
    const fromTunnel = from < 0;
    if (!isGroupMac(mem, off)) {
      const dest = net.fdb.lookup(readU16(mem, off), readU32(mem, off + 2));
      if (dest !== NOT_FOUND) {
        if (dest === from) return c.drop(Drop.hairpin);
        if (!isRemote(dest)) return this.toPort(this.ports[dest]!, net, off, len, now);
        if (fromTunnel) return c.drop(Drop.hairpin);
        return this.toTunnel(this.vteps[vtepOf(dest)]!, net, off, len, c, now);
      }
    }
    // Broadcast, multicast or unknown unicast: flood within the network.
    const ports = net.ports;
    for (let i = 0; i < ports.length; i++) {
      if (ports[i].index !== from) this.toPort(ports[i], net, off, len, now);
    }
    if (fromTunnel) return;
    const remotes = net.remotes;
    for (let i = 0; i < remotes.length; i++) this.toTunnel(remotes[i], net, off, len, c, now);
  }

  private toPort(port: Port, net: Network, off: number, len: number, now: number): void {
    if (port.failed !== null) return;
    if (port.trunk && net !== port.nativeNetwork) {
      // Insert the tag in a scratch copy: the original may still go out elsewhere untagged.
      if (this.scratchUsed === SCRATCH_SLOTS) this.flush();
      const mem = this.memory.bytes;
      const s = this.memory.offsetOf(this.scratchSlot + this.scratchUsed++) + HEADROOM;
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

  private toTunnel(vtep: Vtep, net: Network, off: number, len: number, c: Counters, now: number): void {
    const u = net.isVxlan ? this.vxlanUnderlay : this.geneveUnderlay;
    if (u === null) return c.drop(Drop['tx-error']);
    const at = off - net.encapLen;
    if (this.encapAt !== at) {
      if (net.isVxlan) writeVxlanHeader(this.memory.bytes, at, net.vni);
      else writeGeneveHeader(this.memory.bytes, at, net.vni);
      this.encapAt = at;
    }
    if (u.txCount === UNDERLAY_TX_QUEUE) this.flushUnderlay(u);
    const k = u.txCount++;
    u.txOffsets[k] = at;
    u.txLengths[k] = len + net.encapLen;
    u.txAddrs[k] = vtep.address;
    u.txPorts[k] = vtep.port;
    u.txVteps[k] = vtep.index;
    if (vtep.tap !== null) {
      vtep.tap.datagram(this.memory.bytes, at, len + net.encapLen, off, 'tx', u.address, u.port, vtep.address, vtep.port, now);
    }
  }

  /** Writes every queued frame. Called at the end of each batch. */
  flush(): void {
    for (let i = 0; i < this.dirtyPorts.length; i++) this.flushPort(this.dirtyPorts[i]);
    this.dirtyPorts.length = 0;
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
        ...p.counters.snapshot(),
      })),
      tunnels: this.vteps.filter((v): v is Vtep => v !== undefined).map((v) => ({
        remote: `${formatAddress(v.address)}:${v.port}`,
        networks: netNames(v),
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
        mtu: n.mtu,
        ports: n.ports.length,
        remotes: n.remotes.length,
        fdb: { entries: n.fdb.size, limit: n.fdb.limit, learnRefused: n.fdb.learnRefused, moves: n.fdb.moves },
        arpAnswered: n.arpAnswered,
        ndAnswered: n.ndAnswered,
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

/** Writes a 20-byte IPv4 header (no options, TTL 64, DF clear) with its checksum. */
function writeIpv4Header(mem: Uint8Array, at: number, totalLen: number, protocol: number, src: number, dst: number): void {
  mem[at] = 0x45;
  mem[at + 1] = 0;
  writeU16(mem, at + 2, totalLen);
  writeU32(mem, at + 4, 0);
  mem[at + 8] = 64;
  mem[at + 9] = protocol;
  writeU16(mem, at + 10, 0);
  writeU32(mem, at + 12, src);
  writeU32(mem, at + 16, dst);
  writeU16(mem, at + 10, finish(sumBytes(mem, at, 20, 0)));
}

/** The all-zero MAC: no station's address, so never a valid source (IEEE 802). */
function isZeroMac(mem: Uint8Array, off: number): boolean {
  return readU16(mem, off) === 0 && readU32(mem, off + 2) === 0;
}
