/**
 * `weft agent`: one per host. Builds the data path, opens the underlay socket, makes the
 * data path match the desired state, and serves the local control API. SIGHUP reloads the
 * config file; a bad reload is logged and the running state kept.
 */
import type { Server } from 'node:http';
import { rmSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { Datapath } from '../datapath/datapath.js';
import { MemoryFabric } from '../datapath/memory.js';
import { TapPort } from '../io/tap.js';
import { QemuStreamPort } from '../io/qemu-stream.js';
import { UdpUnderlay } from '../io/udp-underlay.js';
import { PacketPort } from '../io/packet.js';
import { parseIpv4 } from '../wire/bytes.js';
import { loadConfig } from './config.js';
import { serveControl, serveMetrics } from './control.js';
import { AgentMetrics } from './metrics.js';
import { hostStateFromView, type HostState } from './desired-state.js';
import { Reconciler, type BackendOpener, type ReconcileResult } from './reconciler.js';
import { ControllerSource } from './controller-source.js';
import { formatIpv4 } from '../wire/bytes.js';
import { MAX_ARMED_MS, type TraceStep } from '../datapath/trace.js';
import type { TraceOrder } from '../view/host-view.js';
import { Tunnels } from '../tunnel/tunnels.js';
import type { KeyPair } from '../tunnel/noise.js';
import { UnderlayAddress } from './underlay-address.js';
import { DEFAULT_QEMU_SOCKET_DIR } from '../config/qemu-socket.js';

export function defaultSocketPath(host: string): string {
  return `/run/weft/agent-${host}.sock`;
}

/** Opens real backends: TAP devices (given the port's MAC), uplinks, and QEMU guests' sockets, these only in
 * `qemuSocketDir` (a port asking for one elsewhere stays unattached, with the reason). In-memory
 * ports get a fabric of their own. */
export function backendOpener(qemuSocketDir: string = DEFAULT_QEMU_SOCKET_DIR): BackendOpener {
  return (_port, backend, mac) => {
    if (backend.type === 'tap') return TapPort.open(backend.device, backend.netns, { offload: backend.offload, mac });
    if (backend.type === 'qemu') return QemuStreamPort.open(backend.socket, qemuSocketDir);
    if (backend.type === 'uplink') return PacketPort.open(backend.interface);
    return new MemoryFabric().port('memory');
  };
}

const RETRY_MS = 2000;
const AGE_MS = 1000;
/** How often the underlay address is looked at (its change is what a roaming host's peers
 * wait for: packets to the old address are lost until then). */
const ADDRESS_MS = 250;

export interface AgentOptions {
  /** This host's tunnel key pair: without one, the agent has no encrypted networks. */
  tunnelKey?: KeyPair | null;
  /** Replace tunnel sessions this often (default: 120 s, as WireGuard). */
  rekeyAfterMs?: number;
  /** This host's identity key: what the agent enrolls and signs with (a controller only). */
  identity?: { key: KeyObject; publicKey: string };
  /** Where an https:// controller's certificate authority is kept once pinned. */
  caFile?: string;
  /** Serve /metrics on this TCP address too (the control socket always has it). */
  metricsListen?: { host: string; port: number };
  /** The only directory QEMU ports' sockets may be in (default /run/weft/qemu). */
  qemuSocketDir?: string;
}

export class Agent {
  readonly datapath: Datapath;
  private readonly reconciler: Reconciler;
  private server: Server | null = null;
  private metricsServer: Server | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly startedAt = Date.now();
  private source: ControllerSource | null = null;
  private lastPending = '{}';
  private tunnels: Tunnels | null = null;
  private underlayAddress: UnderlayAddress | null = null;

  constructor(
    private state: HostState,
    private readonly log: Logger,
    private readonly socketPath: string,
    opener: BackendOpener | undefined = undefined,
    private readonly opts: AgentOptions = {},
  ) {
    this.datapath = new Datapath({
      underlayMtu: state.underlay.mtu,
      maxPorts: state.limits.maxPorts,
      fdbLimit: state.limits.fdbLimit,
      fdbAgingMs: state.limits.fdbAgingSeconds * 1000,
      // WEFT_TRACING=off: for `npm run bench` to measure what following traces costs.
      tracing: process.env.WEFT_TRACING !== 'off',
    });
    this.reconciler = new Reconciler(this.datapath, opener ?? backendOpener(opts.qemuSocketDir), Date.now);
  }

  async start(): Promise<void> {
    const { address, port, genevePort } = this.state.underlay;
    const local = parseIpv4(address);
    this.datapath.attachUnderlay(UdpUnderlay.open(local, port), local, port, 'vxlan');
    this.datapath.attachUnderlay(UdpUnderlay.open(local, genevePort), local, genevePort, 'geneve');
    const key = this.opts.tunnelKey;
    if (key) {
      const { tunnelPort, mtu } = this.state.underlay;
      this.tunnels = new Tunnels({ privateKey: key.privateKey, maxPlaintext: mtu, rekeyAfterMs: this.opts.rekeyAfterMs });
      // Bound to every address: the tunnels carry on when this host's address changes.
      this.datapath.attachTunnels(UdpUnderlay.open(0, tunnelPort), local, tunnelPort, this.tunnels);
      this.underlayAddress = new UnderlayAddress(address);
    }
    this.datapath.startUnderlay(Date.now);
    this.apply(this.state);
    const metrics = new AgentMetrics(this.state.host, this.datapath);
    this.server = await serveControl({
      host: this.state.host,
      datapath: this.datapath,
      pendingPorts: () => this.reconciler.pendingPorts(),
      startedAt: this.startedAt,
      metrics,
      watch: () => this.source?.watchStats,
    }, this.socketPath);
    const ml = this.opts.metricsListen;
    if (ml) this.metricsServer = await serveMetrics(metrics, ml.host, ml.port);
    this.timers.push(setInterval(() => this.datapath.age(Date.now()), AGE_MS));
    if (this.underlayAddress) this.timers.push(setInterval(() => this.followAddress(), ADDRESS_MS));
    this.timers.push(setInterval(() => {
      if (Object.keys(this.reconciler.pendingPorts()).length > 0) this.apply(this.state);
    }, RETRY_MS));
    for (const t of this.timers) t.unref();
    this.log.info({ underlay: address, vxlanPort: port, genevePort, ...(this.tunnels ? { tunnelPort: this.state.underlay.tunnelPort, tunnelKey: this.tunnels.publicKey.toString('base64') } : {}), socket: this.socketPath }, 'agent ready');
  }

  /** When this host's underlay address changed (DHCP, a laptop moving), tells the controller,
   * so peers that have not heard from this host since learn where it is. The tunnels need no
   * telling: a peer follows the first authenticated datagram from the new address. */
  private followAddress(): void {
    const moved = this.underlayAddress?.check();
    if (!moved) return;
    this.log.warn({ underlay: moved }, 'this host\'s underlay address changed; encrypted tunnels follow it, plain VXLAN and Geneve sockets stay on the old one until a restart');
    this.tunnels?.announce();
    this.datapath.flush();
    this.source?.moved(moved);
  }

  /** Makes the data path match `state` and logs what changed, and what could not be
   * installed (the result's `failed`). */
  apply(state: HostState): ReconcileResult {
    this.state = state;
    const r = this.reconciler.apply(state);
    if (r.added.length + r.removed.length + r.changed.length > 0) {
      this.log.info({ added: r.added, removed: r.removed, changed: r.changed }, 'reconciled');
    }
    if (r.failed.length > 0) this.log.error({ failed: r.failed }, 'part of the desired state cannot be installed; the rest is, and it is tried again on every apply');
    // Retries run every few seconds: say so when the pending ports or their reasons change.
    const pending = JSON.stringify(r.pending);
    if (pending !== this.lastPending) {
      for (const [port, why] of Object.entries(r.pending)) this.log.warn({ port, why }, 'port not attached yet; retrying');
      this.lastPending = pending;
    }
    return r;
  }

  /**
   * Follows a controller instead of a config file: the controller's views replace the
   * networks and ports of the state this agent started with.
   */
  followController(url: string, token?: string): ControllerSource {
    const started = this.state;
    const identity = this.opts.identity;
    if (!identity) throw new Error('following a controller needs the host\'s identity key');
    const { host, underlay, physicalNetworks } = started;
    this.source = new ControllerSource({
      url,
      token,
      identity,
      caFile: this.opts.caFile,
      host: {
        name: host, address: underlay.address, port: underlay.port, genevePort: underlay.genevePort, mtu: underlay.mtu, physicalNetworks,
        tunnelPort: underlay.tunnelPort, ...(this.tunnels ? { tunnelKey: this.tunnels.publicKey.toString('base64') } : {}),
      },
      log: this.log,
      apply: (view, revision) => {
        this.log.debug({ revision }, 'view from the controller');
        // A view not installed whole is a failed view (the controller's `view.failed`).
        const r = this.apply(hostStateFromView(view, started));
        if (r.failed.length > 0) throw new Error(r.failed.join('; '));
      },
      status: () => {
        const stats = this.datapath.stats(formatIpv4);
        const ports: Record<string, { attached: boolean; error?: string }> = Object.create(null);
        for (const p of stats.ports) ports[p.name] = p.failed ? { attached: false, error: p.failed } : { attached: true };
        for (const [name, why] of Object.entries(this.reconciler.pendingPorts())) ports[name] = { attached: false, error: why };
        return { ports, counters: { ports: stats.ports.map(({ name, rx, tx, drops }) => ({ name, rx, tx, drops })), tunnels: stats.tunnels, watch: this.source?.watchStats } };
      },
      trace: (order) => this.trace(order),
    });
    this.source.start();
    return this.source;
  }

  /** Follows a trace for order.ms: arms the data path, injects the probe if its port is
   * here, and returns what the stages recorded. */
  private async trace(order: TraceOrder): Promise<TraceStep[]> {
    const ms = Math.min(order.ms, MAX_ARMED_MS);
    this.datapath.armTrace({ id: order.id, src: parseIpv4(order.match.src), dst: parseIpv4(order.match.dst), protocol: order.match.protocol }, ms);
    const wait = (t: number) => new Promise((r) => setTimeout(r, t));
    try {
      if (order.inject) {
        await wait(Math.min(order.inject.afterMs, ms));
        this.datapath.inject(order.inject.port, Buffer.from(order.inject.frame, 'base64'), Date.now());
      }
      await wait(ms - (order.inject ? Math.min(order.inject.afterMs, ms) : 0));
      return this.datapath.traceSteps(order.id);
    } finally {
      // Disarmed also when the injection failed (no such port here): nothing stays armed.
      this.datapath.traceSteps(order.id);
    }
  }

  /** Re-reads the config file (SIGHUP). */
  reload(file: string): void {
    try {
      const next = loadConfig(file);
      if (JSON.stringify(next.underlay) !== JSON.stringify(this.state.underlay) || next.host !== this.state.host) {
        this.log.error('host or underlay changed in the config: restart the agent to apply that; nothing reloaded');
        return;
      }
      this.apply(next);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'reload failed; keeping the running state');
    }
  }

  async stop(): Promise<void> {
    this.source?.stop();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
    rmSync(this.socketPath, { force: true });
    this.datapath.close();
    this.log.info('agent stopped');
  }
}
