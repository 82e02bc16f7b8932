/** `weft stats`: what an agent's data path has counted. */
import type { KernelCounters } from '../datapath/backend.js';
import type { DatapathStats } from '../datapath/datapath.js';
import type { TunnelStats } from '../datapath/model.js';
import { drops, printable, table } from './format.js';
import { getJson } from './unix-http.js';

export type AgentStats = DatapathStats & { host: string; uptimeSeconds: number; pendingPorts: Record<string, string> };

export function fetchStats(socketPath: string): Promise<AgentStats> {
  return getJson<AgentStats>(socketPath, '/v1/stats');
}

export function renderStats(s: AgentStats): string {
  const out: string[] = [`host ${s.host}, up ${s.uptimeSeconds}s`, ''];
  out.push(table(
    ['PORT', 'MODE', 'NETWORKS', 'RX FRAMES', 'RX BYTES', 'TX FRAMES', 'TX BYTES', 'DROPS', 'KERNEL DROPS', 'CONNECTIONS (REFUSED)'],
    s.ports.map((p) => [p.name, p.failed ? `FAILED: ${p.failed}` : p.mode, p.networks.join(','), String(p.rx.frames), String(p.rx.bytes), String(p.tx.frames), String(p.tx.bytes), drops(p.drops), kernel(p.kernel),
      p.conntrack ? `${p.conntrack.entries}/${p.conntrack.limit} (${p.conntrack.refused})` : '-']),
  ));
  for (const [port, why] of Object.entries(s.pendingPorts)) out.push(printable(`${port}: not attached: ${why}`));
  out.push('');
  out.push(table(
    ['TUNNEL', 'NETWORKS', 'ENCRYPTED', 'SESSION AGE', 'ROTATIONS', 'AUTH FAILED', 'REPLAYS', 'RX FRAMES', 'RX BYTES', 'TX FRAMES', 'TX BYTES', 'DROPS'],
    s.tunnels.map((t) => [t.remote, t.networks.join(','), t.encrypted ? 'yes' : 'NO', session(t.tunnel), t.tunnel ? String(t.tunnel.rotations) : '-',
      t.tunnel ? String(t.tunnel.authFailures) : '-', t.tunnel ? String(t.tunnel.replays) : '-',
      String(t.rx.frames), String(t.rx.bytes), String(t.tx.frames), String(t.tx.bytes), drops(t.drops)]),
  ));
  if (s.underlays.length > 0) {
    out.push('');
    out.push(table(['UNDERLAY', 'ENCAP', 'MTU', 'RX FRAMES', 'RX BYTES', 'TX FRAMES', 'TX BYTES', 'DROPS', 'KERNEL DROPS'],
      s.underlays.map((u) => [u.local, u.encapsulation, String(u.mtu), String(u.rx.frames), String(u.rx.bytes), String(u.tx.frames), String(u.tx.bytes), drops(u.drops), kernel(u.kernel)])));
    for (const u of s.underlays) out.push(`(${u.backend})`);
  }
  if (s.nats.length > 0) {
    out.push('');
    out.push(table(['EXTERNAL GATEWAY', 'NETWORK', 'ADDRESS', 'CONNECTIONS', 'TRANSLATED OUT/IN', 'NEIGHBORS'],
      s.nats.map((n) => [n.router, n.network, n.address, `${n.connections}/${n.limit}`, `${n.translatedOut}/${n.translatedIn}`, String(n.neighbors)])));
  }
  out.push('');
  out.push(table(['NETWORK', 'VNI', 'ENCAP', 'ENCRYPTED', 'MTU', 'PORTS', 'REMOTES', 'FDB', 'NOT LEARNED (LIMIT)', 'ARP/ND ANSWERED'],
    s.networks.map((n) => [n.name, String(n.vni), n.encapsulation, n.encrypted ? 'yes' : 'NO', String(n.mtu), String(n.ports), String(n.remotes), `${n.fdb.entries}/${n.fdb.limit}`, String(n.fdb.learnRefused), `${n.arpAnswered}/${n.ndAnswered}`])));
  return out.join('\n');
}

/** An encrypted tunnel's session: how old, or why there is none. */
function session(t: TunnelStats | null): string {
  if (t === null) return '-';
  if (t.session === null) return 'none';
  return `${Math.round(t.session.ageMs / 1000)}s`;
}

/** What the kernel dropped before Weft read (rx) and of what Weft wrote (tx). */
function kernel(k: KernelCounters | null): string {
  if (!k) return '-';
  return k.txDropped === undefined ? `rx ${k.rxDropped}` : `rx ${k.rxDropped}, tx ${k.txDropped}`;
}
