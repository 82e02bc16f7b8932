/**
 * An agent's counters in the Prometheus exposition format (prom-client), read from the data
 * path at scrape time: nothing is kept or counted twice, and the per-packet path does not
 * know metrics exist. Label sets are bounded by what the host has: its ports, its tunnels
 * (one per remote host and encapsulation), its underlay sockets, its networks, and the
 * fixed list of drop reasons.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Datapath, DatapathStats } from '../datapath/datapath.js';
import { formatIpv4 } from '../wire/bytes.js';

type Labels = Record<string, string>;
type Snapshot = { rx: { frames: number; bytes: number }; tx: { frames: number; bytes: number }; drops: Record<string, number> };

export class AgentMetrics {
  readonly registry = new Registry();
  private stats: DatapathStats | null = null;

  constructor(host: string, private readonly datapath: Datapath) {
    this.registry.setDefaultLabels({ host });
    collectDefaultMetrics({ register: this.registry, prefix: 'weft_agent_' });
    const r = this.registry;
    const stats = () => this.stats!;
    // Frames, bytes and drops of each kind of place, as counters.
    const traffic = (kind: 'port' | 'tunnel' | 'underlay', label: string, rows: () => Array<Snapshot & { key: string }>) => {
      const counter = (what: string, help: string, value: (s: Snapshot) => number) => new Counter({
        name: `weft_${kind}_${what}_total`, help, labelNames: [label], registers: [r],
        collect() {
          this.reset();
          for (const row of rows()) this.inc({ [label]: row.key }, value(row));
        },
      });
      counter('rx_frames', `Frames received on each ${kind}.`, (s) => s.rx.frames);
      counter('rx_bytes', `Bytes received on each ${kind}.`, (s) => s.rx.bytes);
      counter('tx_frames', `Frames sent on each ${kind}.`, (s) => s.tx.frames);
      counter('tx_bytes', `Bytes sent on each ${kind}.`, (s) => s.tx.bytes);
      new Counter({
        name: `weft_${kind}_drops_total`, help: `Frames dropped on each ${kind}, by reason (src/datapath/counters.ts).`, labelNames: [label, 'reason'], registers: [r],
        collect() {
          this.reset();
          for (const row of rows()) for (const [reason, n] of Object.entries(row.drops)) this.inc({ [label]: row.key, reason }, n);
        },
      });
    };
    traffic('port', 'port', () => stats().ports.map((p) => ({ ...p, key: p.name })));
    traffic('tunnel', 'remote', () => stats().tunnels.map((t) => ({ ...t, key: t.remote })));
    traffic('underlay', 'underlay', () => stats().underlays.map((u) => ({ ...u, key: `${u.encapsulation} ${u.local}` })));

    const gauge = (name: string, help: string, labelNames: string[], fill: (set: (labels: Labels, v: number) => void) => void) => new Gauge({
      name, help, labelNames, registers: [r],
      collect() {
        this.reset();
        fill((labels, v) => this.set(labels, v));
      },
    });
    const tunnelCounter = (name: string, help: string, value: (t: NonNullable<DatapathStats['tunnels'][number]['tunnel']>) => number) => new Counter({
      name, help, labelNames: ['remote'], registers: [r],
      collect() {
        this.reset();
        for (const t of stats().tunnels) if (t.tunnel) this.inc({ remote: t.remote }, value(t.tunnel));
      },
    });
    gauge('weft_tunnel_encrypted', 'Whether a tunnel is encrypted (1) or plain VXLAN/Geneve (0).', ['remote'], (set) => {
      for (const t of stats().tunnels) set({ remote: t.remote }, t.encrypted ? 1 : 0);
    });
    gauge('weft_tunnel_session_age_seconds', 'Age of an encrypted tunnel\'s current session.', ['remote'], (set) => {
      for (const t of stats().tunnels) if (t.tunnel?.session) set({ remote: t.remote }, t.tunnel.session.ageMs / 1000);
    });
    tunnelCounter('weft_tunnel_handshakes_total', 'Handshakes completed with each peer.', (t) => t.handshakes);
    tunnelCounter('weft_tunnel_rotations_total', 'Sessions replaced by a newer one, with each peer.', (t) => t.rotations);
    tunnelCounter('weft_tunnel_auth_failures_total', 'Datagrams from each peer\'s sessions that failed authentication.', (t) => t.authFailures);
    tunnelCounter('weft_tunnel_replays_total', 'Replayed datagrams and initiations refused, per peer.', (t) => t.replays);
    tunnelCounter('weft_tunnel_roams_total', 'Times each peer was heard from a new address.', (t) => t.roams);
    gauge('weft_network_fdb_entries', 'MAC addresses in each network\'s forwarding table.', ['network'], (set) => {
      for (const n of stats().networks) set({ network: n.name }, n.fdb.entries);
    });
    gauge('weft_network_fdb_static_entries', 'MAC addresses the controller pinned in each network\'s forwarding table (outside its learning limit).', ['network'], (set) => {
      for (const n of stats().networks) set({ network: n.name }, n.fdb.static);
    });
    gauge('weft_network_fdb_limit', 'The most MAC addresses each network\'s forwarding table learns (pinned ones do not count).', ['network'], (set) => {
      for (const n of stats().networks) set({ network: n.name }, n.fdb.limit);
    });
    gauge('weft_network_ports', 'This host\'s ports on each network.', ['network'], (set) => {
      for (const n of stats().networks) set({ network: n.name }, n.ports);
    });
    gauge('weft_port_connections', 'Connections each port\'s security groups track.', ['port'], (set) => {
      for (const p of stats().ports) if (p.conntrack) set({ port: p.name }, p.conntrack.entries);
    });
    gauge('weft_port_connection_limit', 'The most connections each port\'s security groups track.', ['port'], (set) => {
      for (const p of stats().ports) if (p.conntrack) set({ port: p.name }, p.conntrack.limit);
    });
    new Counter({
      name: 'weft_port_dhcp_messages_total', help: 'DHCP messages from each port, by what was answered.', labelNames: ['port', 'outcome'], registers: [r],
      collect() {
        this.reset();
        for (const p of stats().ports) for (const [outcome, n] of Object.entries(p.dhcp ?? {})) this.inc({ port: p.name, outcome }, n ?? 0);
      },
    });
  }

  /** The exposition text, from one reading of the data path's counters. */
  async text(): Promise<string> {
    this.stats = this.datapath.stats(formatIpv4);
    try {
      return await this.registry.metrics();
    } finally {
      this.stats = null;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
