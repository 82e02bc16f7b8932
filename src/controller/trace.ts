/**
 * `weft trace` on the controller: POST /v1/traces plans a probe from a VM's port (the
 * controller knows its MAC and address, and the destination's MAC or the router's), asks
 * every connected agent to follow it (the watch hub carries the order and brings back what
 * each recorded), has the source port's agent inject it, and puts the hosts' steps into
 * one path with a verdict.
 *
 * Bounded: one trace at a time, at most TRACES_PER_MINUTE, one probe each; agents follow a
 * trace for TRACE_MS and record at most 64 steps.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ipv4, name } from '../config/fields.js';
import { parseIpv4, parseMac } from '../wire/bytes.js';
import * as compose from '../wire/compose.js';
import { EtherType } from '../wire/ethernet.js';
import { IpProtocol } from '../wire/ipv4.js';
import { TcpFlag, TcpRepr } from '../wire/tcp.js';
import { ROUTER_MAC } from '../datapath/router-mac.js';
import { MARKER, type TraceStep } from '../datapath/trace.js';
import type { TraceOrder } from '../view/host-view.js';
import { ApiError } from './service.js';
import type { ModelCache } from './model-cache.js';

export const traceRequest = z.object({
  /** The port (VM) the probe leaves from. */
  from: name,
  to: ipv4,
  protocol: z.enum(['icmp', 'tcp', 'udp']).default('icmp'),
  /** The destination port (tcp: a SYN to it; udp: a datagram). */
  port: z.number().int().min(1).max(65535).optional(),
  /** Another source address than the port's (what a VM spoofing it would send: port
   * security is then what the trace shows). */
  source: ipv4.optional(),
  /** The IP packet's size in bytes (the probe is padded to it). */
  size: z.number().int().min(64).max(9000).default(64),
}).strict();
export type TraceRequest = z.infer<typeof traceRequest>;

export interface TraceResult {
  id: string;
  from: string;
  to: string;
  protocol: string;
  port: number | null;
  size: number;
  /** Every host's steps, in time order; `ms` from the first. */
  steps: Array<TraceStep & { host: string; ms: number }>;
  /** Hosts that were asked and did not answer in time. */
  silent: string[];
  verdict: string;
  delivered: boolean;
}

/** How long agents follow a trace, and how long the controller waits for them after. */
export const TRACE_MS = 800;
const INJECT_AFTER_MS = 150;
const ANSWER_GRACE_MS = 1500;
const TRACES_PER_MINUTE = 60;

/** What sends orders to agents and brings back what they recorded (the watch hub). */
export interface TraceCarrier {
  connectedHosts(): string[];
  /** Sends each host its order; resolves with each host's steps (hosts that did not answer
   * within `ms` are missing). */
  collect(orders: Map<string, TraceOrder>, ms: number): Promise<Map<string, TraceStep[]>>;
}

export class Traces {
  private running = false;
  private readonly recent: number[] = [];

  constructor(
    private readonly model: ModelCache,
    private readonly carrier: TraceCarrier,
  ) {}

  async run(req: TraceRequest): Promise<TraceResult> {
    const port = this.model.ports.get(req.from);
    if (!port) throw new ApiError(404, 'Not Found', `no port ${req.from}`);
    if (port.network === undefined) throw new ApiError(422, 'Unprocessable Entity', `port ${req.from} is a trunk without an untagged network: trace from an access port`);
    const src = req.source ?? port.ips.find((a) => !a.includes(':'));
    if (src === undefined) throw new ApiError(422, 'Unprocessable Entity', `port ${req.from} has no IPv4 address to send a probe from`);
    const hosts = this.carrier.connectedHosts();
    if (!hosts.includes(port.host)) throw new ApiError(409, 'Conflict', `the agent of ${port.host}, where ${req.from} is, is not connected`);
    if (this.running) throw new ApiError(409, 'Conflict', 'a trace is running: one at a time');
    const now = Date.now();
    while (this.recent.length > 0 && now - this.recent[0] > 60_000) this.recent.shift();
    if (this.recent.length >= TRACES_PER_MINUTE) throw new ApiError(429, 'Too Many Requests', `at most ${TRACES_PER_MINUTE} traces a minute`);
    this.recent.push(now);
    this.running = true;
    try {
      const id = randomBytes(4).toString('hex');
      const { frame, dstPort } = this.probe(id, port.network, port.mac, src, req);
      const protocol = req.protocol === 'icmp' ? IpProtocol.Icmp : req.protocol === 'tcp' ? IpProtocol.Tcp : IpProtocol.Udp;
      const orders = new Map<string, TraceOrder>();
      for (const host of hosts) {
        orders.set(host, {
          id, ms: TRACE_MS, match: { src, dst: req.to, protocol },
          ...(host === port.host ? { inject: { port: req.from, frame: Buffer.from(frame).toString('base64'), afterMs: INJECT_AFTER_MS } } : {}),
        });
      }
      const answers = await this.carrier.collect(orders, TRACE_MS + ANSWER_GRACE_MS);
      const steps = [...answers].flatMap(([host, list]) => list.map((s) => ({ ...s, host })));
      steps.sort((a, b) => a.at - b.at);
      const t0 = steps[0]?.at ?? 0;
      const result = steps.map((s) => ({ ...s, ms: Math.round((s.at - t0) * 1000) / 1000 }));
      return { id, from: req.from, to: req.to, protocol: req.protocol, port: dstPort, size: req.size, steps: result, silent: hosts.filter((h) => !answers.has(h)), ...verdict(result) };
    } finally {
      this.running = false;
    }
  }

  /** The probe: what the VM itself would send, to the destination's MAC if it is on the
   * same network, else to the router; its payload the marker and the id, padded. */
  private probe(id: string, network: string, mac: string, src: string, req: TraceRequest): { frame: Uint8Array; dstPort: number | null } {
    let dstMac = ROUTER_MAC;
    for (const p of this.model.ports.values()) if (p.network === network && p.ips.includes(req.to)) dstMac = parseMac(p.mac);
    const s = parseIpv4(src);
    const d = parseIpv4(req.to);
    const marker = new TextEncoder().encode(`${MARKER}${id}`);
    const headers = 20 + (req.protocol === 'icmp' ? 8 : req.protocol === 'udp' ? 8 : 20);
    const payload = new Uint8Array(Math.max(marker.length, req.size - headers));
    payload.set(marker);
    let ip: Uint8Array;
    let dstPort: number | null = null;
    if (req.protocol === 'icmp') {
      ip = compose.icmpEchoV4(s, d, 0x7765, 1, payload);
    } else if (req.protocol === 'udp') {
      dstPort = req.port ?? 33434;
      ip = compose.udpV4(s, d, 40000 + (parseInt(id.slice(0, 4), 16) % 20000), dstPort, payload);
    } else {
      dstPort = req.port ?? 80;
      ip = compose.tcpV4(s, d, new TcpRepr(40000 + (parseInt(id.slice(0, 4), 16) % 20000), dstPort, parseInt(id, 16) >>> 0, 0, TcpFlag.Syn, 64240, new Uint8Array(0), payload));
    }
    return { frame: compose.ethernet(dstMac, parseMac(mac), EtherType.Ipv4, ip), dstPort };
  }
}

/** The path's verdict: the first drop, else where it was delivered. */
function verdict(steps: Array<TraceStep & { host: string }>): { verdict: string; delivered: boolean } {
  const drop = steps.find((s) => s.verdict === 'drop');
  if (drop) return { verdict: `dropped on ${drop.host}: ${drop.stage}, ${drop.detail}`, delivered: false };
  const delivered = steps.filter((s) => s.verdict === 'deliver');
  const where = (s: TraceStep & { host: string }) => {
    const port = s.port ?? '?';
    return port.startsWith('uplink:') ? `out of ${s.host}'s uplink to physical network ${port.slice('uplink:'.length)}` : `to ${port} on ${s.host}`;
  };
  if (delivered.length > 0) return { verdict: `delivered ${delivered.map(where).join(', ')}`, delivered: true };
  if (steps.length === 0) return { verdict: 'no host saw the probe', delivered: false };
  const last = steps[steps.length - 1];
  return { verdict: `lost after ${last.host}: ${last.stage} (${last.detail}), and no host saw it arrive`, delivered: false };
}

