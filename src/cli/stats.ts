/**
 * `weft stats`: what agents' data paths have counted, for people. One host or several (a
 * lab's every host), totals or, between two readings, rates; 100 columns by default, every
 * counter with `wide`. Drops that healthy VMs cause (counters.ts marks them expected) are
 * shown apart, in parentheses, from the ones that are problems.
 */
import type { KernelCounters } from '../datapath/backend.js';
import { DROP_EXPLANATIONS, DROP_REASONS, isExpectedDrop, type DropReason } from '../datapath/counters.js';
import type { DatapathStats } from '../datapath/datapath.js';
import type { TunnelStats } from '../datapath/model.js';
import { printable } from './format.js';
import { getJson } from './unix-http.js';

export type AgentStats = DatapathStats & { host: string; uptimeSeconds: number; pendingPorts: Record<string, string> };

export function fetchStats(socketPath: string): Promise<AgentStats> {
  return getJson<AgentStats>(socketPath, '/v1/stats');
}

/** Width the default output keeps to; `wide` has no limit. */
export const DEFAULT_WIDTH = 100;

export interface RenderOptions {
  /** Every column, no width limit. */
  wide?: boolean;
  /** A line after the tables for each drop reason shown, saying what it means. */
  explain?: boolean;
  /** An earlier reading of the same hosts and the seconds since: rates instead of totals. */
  previous?: { stats: AgentStats[]; seconds: number };
}

interface Traffic { rx: { frames: number; bytes: number }; tx: { frames: number; bytes: number } }

/** Renders the readings of one or more hosts (several: a HOST column in every table). */
export function renderStats(hosts: AgentStats[], opts: RenderOptions = {}): string {
  const many = hosts.length > 1;
  const wide = opts.wide === true;
  const seen = new Set<string>();
  // Remote hosts by underlay address, for naming tunnels.
  const hostOf = new Map<string, string>();
  for (const s of hosts) for (const u of s.underlays) hostOf.set(u.local.split(':')[0], s.host);
  const before = new Map<string, Traffic>();
  for (const s of opts.previous?.stats ?? []) {
    for (const p of s.ports) before.set(`${s.host} port ${p.name}`, p);
    for (const t of s.tunnels) before.set(`${s.host} tunnel ${t.remote}`, t);
    for (const u of s.underlays) before.set(`${s.host} underlay ${u.local}`, u);
  }
  const seconds = opts.previous?.seconds ?? 0;
  const rates = opts.previous !== undefined && seconds > 0;
  const traffic = (key: string, c: Traffic): string[] => {
    if (!rates) return [count(c.rx.frames, c.rx.bytes), count(c.tx.frames, c.tx.bytes)];
    const b = before.get(key) ?? { rx: { frames: 0, bytes: 0 }, tx: { frames: 0, bytes: 0 } };
    return [rate(c.rx.frames - b.rx.frames, c.rx.bytes - b.rx.bytes, seconds), rate(c.tx.frames - b.tx.frames, c.tx.bytes - b.tx.bytes, seconds)];
  };
  const dropText = (d: Partial<Record<string, number>>) => {
    for (const [r, n] of Object.entries(d)) if ((n ?? 0) > 0) seen.add(r);
    return drops(d);
  };
  const hostCol = (h: string) => (many ? [h] : []);
  const H = many ? ['HOST'] : [];
  const [RX, TX] = rates ? ['RX/s', 'TX/s'] : ['RX', 'TX'];
  const width = wide ? Infinity : DEFAULT_WIDTH;

  const out: string[] = hosts.map((s) => `host ${s.host}, up ${duration(s.uptimeSeconds)}`);
  out.push('');
  out.push(fit(width, [...H, 'PORT', 'NETWORK', RX, TX, 'DROPS', ...(wide ? ['MODE', 'KERNEL DROPS', 'CONNECTIONS (REFUSED)'] : [])],
    hosts.flatMap((s) => s.ports.map((p) => [...hostCol(s.host), p.name, p.failed ? `FAILED: ${p.failed}` : p.networks.join(','), ...traffic(`${s.host} port ${p.name}`, p), dropText(p.drops),
      ...(wide ? [p.name.startsWith('uplink:') ? 'uplink' : p.mode, kernel(p.kernel), p.conntrack ? `${p.conntrack.entries}/${p.conntrack.limit} (${p.conntrack.refused})` : '-'] : [])]))));
  for (const s of hosts) for (const [port, why] of Object.entries(s.pendingPorts)) out.push(`${many ? `${s.host}: ` : ''}${port}: not attached: ${why}`);
  if (hosts.some((s) => s.tunnels.length > 0)) {
    out.push('');
    out.push(fit(width, [...H, 'TUNNEL', 'NETWORKS', 'ENCRYPTED', 'SESSION', RX, TX, 'DROPS', ...(wide ? ['ROTATIONS', 'AUTH FAILED', 'REPLAYS'] : [])],
      hosts.flatMap((s) => s.tunnels.map((t) => [...hostCol(s.host), tunnelName(t.remote, hostOf), t.networks.join(','), t.encrypted ? 'yes' : 'NO', session(t.tunnel),
        ...traffic(`${s.host} tunnel ${t.remote}`, t), dropText(t.drops),
        ...(wide ? [t.tunnel ? String(t.tunnel.rotations) : '-', t.tunnel ? String(t.tunnel.authFailures) : '-', t.tunnel ? String(t.tunnel.replays) : '-'] : [])]))));
  }
  if (hosts.some((s) => s.underlays.length > 0)) {
    out.push('');
    out.push(fit(width, [...H, 'UNDERLAY', 'ENCAP', 'MTU', RX, TX, 'DROPS', ...(wide ? ['KERNEL DROPS', 'BACKEND'] : [])],
      hosts.flatMap((s) => s.underlays.map((u) => [...hostCol(s.host), u.local, u.encapsulation, String(u.mtu), ...traffic(`${s.host} underlay ${u.local}`, u), dropText(u.drops),
        ...(wide ? [kernel(u.kernel), u.backend] : [])]))));
  }
  if (hosts.some((s) => s.nats.length > 0)) {
    out.push('');
    out.push(fit(width, [...H, 'EXTERNAL GATEWAY', 'NETWORK', 'ADDRESS', 'CONNECTIONS', 'TRANSLATED OUT/IN', 'NEIGHBORS'],
      hosts.flatMap((s) => s.nats.map((n) => [...hostCol(s.host), n.router, n.network, n.address, `${n.connections}/${n.limit}`, `${n.translatedOut}/${n.translatedIn}`, String(n.neighbors)]))));
  }
  out.push('');
  out.push(fit(width, [...H, 'NETWORK', 'VNI', 'ENCAP', 'ENCRYPTED', 'MTU', 'PORTS', 'REMOTES', 'FDB', 'PINNED', ...(wide ? ['NOT LEARNED (LIMIT)', 'ARP/ND ANSWERED'] : [])],
    hosts.flatMap((s) => s.networks.map((n) => [...hostCol(s.host), n.name, String(n.vni), n.provider ? 'provider' : n.encapsulation, n.provider ? '-' : n.encrypted ? 'yes' : 'NO', String(n.mtu),
      String(n.ports), String(n.remotes), `${n.fdb.entries - n.fdb.static}/${n.fdb.limit}`, String(n.fdb.static), ...(wide ? [String(n.fdb.learnRefused), `${n.arpAnswered}/${n.ndAnswered}`] : [])]))));
  if ([...seen].some(isExpectedDrop)) out.push('', '(in parentheses: drops healthy VMs cause, such as a booting VM\'s multicast listener reports)');
  if (opts.explain) {
    const reasons = DROP_REASONS.filter((r) => seen.has(r));
    out.push('', reasons.length > 0 ? explainReasons(reasons) : 'no drops');
  } else if (seen.size > 0) {
    out.push('', '(weft stats --explain says what each drop reason means)');
  }
  return out.join('\n');
}

/** One line per reason: its name, whether it is expected, and what it means. */
export function explainReasons(reasons: readonly DropReason[] = DROP_REASONS): string {
  const w = Math.max(...reasons.map((r) => r.length));
  return reasons.map((r) => `${r.padEnd(w)}  ${DROP_EXPLANATIONS[r].expected ? '(expected) ' : ''}${DROP_EXPLANATIONS[r].text}`).join('\n');
}

/** Drops by reason: the problems first, then the expected ones in parentheses. */
export function drops(d: Partial<Record<string, number>>): string {
  const present = Object.entries(d).filter(([, n]) => (n ?? 0) > 0);
  const problems = present.filter(([r]) => !isExpectedDrop(r)).map(([r, n]) => `${r}=${n}`);
  const expected = present.filter(([r]) => isExpectedDrop(r)).map(([r, n]) => `${r}=${n}`);
  const parts = [...problems, ...(expected.length > 0 ? [`(${expected.join(' ')})`] : [])];
  return parts.length > 0 ? parts.join(' ') : '-';
}

/** A table no wider than `width`: the widest column (the drops, in practice) is cut with "…". */
function fit(width: number, headers: string[], given: string[][]): string {
  // What an agent reports (names, errors) is shown with its control characters escaped.
  const rows = given.map((r) => r.map((c) => printable(c ?? '')));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const total = widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
  if (total > width) {
    const widest = widths.indexOf(Math.max(...widths));
    widths[widest] = Math.max(headers[widest].length, widths[widest] - (total - width));
  }
  const cell = (c: string, i: number) => (c.length > widths[i] ? `${c.slice(0, widths[i] - 1)}…` : c.padEnd(widths[i]));
  const line = (cells: string[]) => cells.map(cell).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes in binary units: 910 B, 1.2 KiB, 13 KiB, 4.5 MiB. */
export function bytes(n: number): string {
  let u = 0;
  while (n >= 1024 && u < UNITS.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(n)} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${UNITS[u]}`;
}

/** A count people read at a glance: 950, 12k, 1.2M. */
export function frames(n: number): string {
  if (n < 10_000) return String(Math.round(n));
  if (n < 1_000_000) return `${Math.round(n / 1000)}k`;
  return n < 10_000_000 ? `${(n / 1e6).toFixed(1)}M` : `${Math.round(n / 1e6)}M`;
}

function count(f: number, b: number): string {
  return `${frames(f)} / ${bytes(b)}`;
}

function rate(f: number, b: number, seconds: number): string {
  return `${frames(Math.max(0, f) / seconds)}/s, ${bytes(Math.max(0, b) / seconds)}/s`;
}

function duration(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return s < 172_800 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86_400)}d`;
}

/** A tunnel by its remote host's name when that host is in view, else by its address. */
function tunnelName(remote: string, hostOf: Map<string, string>): string {
  const name = hostOf.get(remote.split(':')[0]);
  return name ? `${name} ${remote}` : remote;
}

/** An encrypted tunnel's session: how old, or why there is none. */
function session(t: TunnelStats | null): string {
  if (t === null) return '-';
  if (t.session === null) return 'none';
  return duration(Math.round(t.session.ageMs / 1000));
}

/** What the kernel dropped before Weft read (rx) and of what Weft wrote (tx). */
function kernel(k: KernelCounters | null): string {
  if (!k) return '-';
  return k.txDropped === undefined ? `rx ${k.rxDropped}` : `rx ${k.rxDropped}, tx ${k.txDropped}`;
}
