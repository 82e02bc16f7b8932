/**
 * The Weft console: the controller's API, drawn. It reads what `weft` reads (hosts with
 * what their agents report, networks, subnets, routers, ports, events) every two seconds
 * with the admin token, draws the topology with cytoscape, lists live counters and drop
 * reasons per port and tunnel, and runs `weft trace` (POST /v1/traces), drawing the path on
 * the graph. Served by the controller itself at /ui/ (built by vite at `npm ci`).
 *
 * The token comes from the address's fragment (#token=..., never sent to a server), or is
 * asked for, and is kept for the tab (sessionStorage) only.
 */
import cytoscape from 'cytoscape';
import { DROP_EXPLANATIONS, isExpectedDrop, type DropReason } from '../src/datapath/counters.js';

interface Counts { frames: number; bytes: number }
interface PortCounters { name: string; rx: Counts; tx: Counts; drops: Record<string, number> }
interface TunnelCounters extends PortCounters {
  remote: string;
  networks: string[];
  encrypted: boolean;
  tunnel: { session: { ageMs: number } | null; handshakes: number; authFailures: number } | null;
}
interface Host {
  name: string;
  address: string;
  revokedAt?: string;
  status: { connected: boolean; lastSeen: string | null; counters: { ports?: PortCounters[]; tunnels?: TunnelCounters[] } | null } | null;
}
interface Network { name: string; vni: number; encapsulation?: string; provider?: unknown; encryption?: string; mtu?: number }
interface Subnet { name: string; network: string; cidr: string }
interface Router { name: string; subnets: string[]; externalGateway?: { network: string; ip: string; activeHost?: string | null } }
interface Port { name: string; host: string; network?: string; ips: string[]; mac: string; vlans?: Array<{ network: string }> }
interface WeftEvent { id: number; at: string; kind: string; host?: string; message: string }
interface TraceStep { host: string; ms: number; stage: string; verdict: 'pass' | 'drop' | 'deliver' | 'send'; detail: string; port?: string }
interface TraceResult { id: string; steps: TraceStep[]; verdict: string; delivered: boolean; silent: string[] }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
/** Above this many hosts, ports are counted on their host instead of drawn. */
const PORTS_DRAWN_UP_TO_HOSTS = 30;
const POLL_MS = 2000;

let token = new URLSearchParams(location.hash.slice(1)).get('token') ?? sessionStorage.getItem('weft-token') ?? '';
if (location.hash.includes('token=')) history.replaceState(null, '', location.pathname);

class Unauthorized extends Error {}

/** Lists as last read, by path, with the store revision they were at (ETag): a list the
 * store has not changed since comes back 304, neither read nor sent again. */
const lists = new Map<string, { etag: string; data: unknown }>();

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const cached = method === 'GET' ? lists.get(path) : undefined;
  const res = await fetch(path, {
    method,
    cache: 'no-store',
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(cached ? { 'if-none-match': cached.etag } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) throw new Unauthorized('the admin token was refused');
  if (res.status === 304 && cached) return cached.data as T;
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail ?? `${res.status} ${res.statusText}`);
  const etag = res.headers.get('etag');
  if (method === 'GET' && etag) lists.set(path, { etag, data });
  return data as T;
}

const cy = cytoscape({
  container: $('graph'),
  wheelSensitivity: 0.3,
  minZoom: 0.05,
  maxZoom: 1.3,
  style: [
    { selector: 'node', style: { label: 'data(label)', 'font-size': 11, 'text-wrap': 'wrap', 'text-valign': 'center', color: '#1b2330' } },
    { selector: 'node.host', style: { shape: 'round-rectangle', 'background-color': '#e8eef8', 'border-color': '#5a7bb5', 'border-width': 2, 'text-valign': 'top', 'font-weight': 'bold', padding: '12px' } },
    { selector: 'node.host.down', style: { 'border-color': '#b3261e', 'background-color': '#fbe9e7' } },
    { selector: 'node.port', style: { shape: 'ellipse', 'background-color': '#8fb3e8', width: 26, height: 26, 'text-valign': 'bottom', 'text-margin-y': 3 } },
    { selector: 'node.network', style: { shape: 'barrel', 'background-color': '#c8e6c9', 'border-color': '#2e7d32', 'border-width': 1, width: 90, height: 30 } },
    { selector: 'node.router', style: { shape: 'diamond', 'background-color': '#ffe0b2', 'border-color': '#e65100', 'border-width': 1, width: 40, height: 40, 'text-valign': 'bottom' } },
    { selector: 'edge', style: { width: 1.5, 'line-color': '#9aa5b1', 'curve-style': 'bezier' } },
    { selector: 'edge.tunnel', style: { width: 3, 'line-style': 'dashed', 'line-color': '#2e7d32', label: 'data(label)', 'font-size': 9, 'text-background-color': '#fff', 'text-background-opacity': 1 } },
    { selector: 'edge.tunnel.drops', style: { 'line-color': '#ef6c00' } },
    { selector: 'edge.tunnel.idle', style: { 'line-color': '#b0b7c0' } },
    { selector: '.path', style: { 'border-color': '#6a1b9a', 'border-width': 4, 'line-color': '#6a1b9a', width: 5, 'z-index': 10 } },
    { selector: '.path-drop', style: { 'border-color': '#b3261e', 'border-width': 5, 'background-color': '#ffcdd2' } },
    { selector: ':selected', style: { 'overlay-opacity': 0.15 } },
  ],
});

interface Model { hosts: Host[]; networks: Network[]; subnets: Subnet[]; routers: Router[]; ports: Port[] }
let model: Model = { hosts: [], networks: [], subnets: [], routers: [], ports: [] };
let shape = '';
let selected: string | null = null;

/** The graph's elements for the model; the layout runs again only when the shape changes. */
function draw(m: Model): void {
  const drawPorts = m.hosts.length <= PORTS_DRAWN_UP_TO_HOSTS;
  const byAddress = new Map(m.hosts.map((h) => [h.address, h.name]));
  const els: cytoscape.ElementDefinition[] = [];
  for (const h of m.hosts) {
    const ports = m.ports.filter((p) => p.host === h.name).length;
    els.push({ data: { id: `host:${h.name}`, label: `${h.name}\n${h.address}${drawPorts ? '' : `\n${ports} ports`}` }, classes: `host${h.status?.connected ? '' : ' down'}` });
  }
  for (const n of m.networks) els.push({ data: { id: `net:${n.name}`, label: `${n.name}\n${n.provider ? 'provider' : `VNI ${n.vni}`}` }, classes: 'network' });
  if (drawPorts) {
    for (const p of m.ports) {
      if (!m.hosts.some((h) => h.name === p.host)) continue;
      els.push({ data: { id: `port:${p.name}`, parent: `host:${p.host}`, label: `${p.name}\n${p.ips[0] ?? ''}` }, classes: 'port' });
      for (const n of [p.network, ...(p.vlans ?? []).map((v) => v.network)]) {
        if (n) els.push({ data: { id: `att:${p.name}:${n}`, source: `port:${p.name}`, target: `net:${n}` } });
      }
    }
  } else {
    // Hosts joined to the networks their ports are on.
    const pairs = new Set(m.ports.map((p) => `${p.host}\u0000${p.network}`));
    for (const pair of pairs) {
      const [host, net] = pair.split('\u0000');
      if (net !== 'undefined') els.push({ data: { id: `att:${host}:${net}`, source: `host:${host}`, target: `net:${net}` } });
    }
  }
  for (const r of m.routers) {
    els.push({ data: { id: `router:${r.name}`, label: r.name }, classes: 'router' });
    const nets = new Set(r.subnets.map((s) => m.subnets.find((x) => x.name === s)?.network).filter((n): n is string => !!n));
    if (r.externalGateway) nets.add(r.externalGateway.network);
    for (const n of nets) els.push({ data: { id: `rt:${r.name}:${n}`, source: `router:${r.name}`, target: `net:${n}` } });
  }
  // Tunnels between hosts, once per pair, from what the agents report.
  const seen = new Set<string>();
  for (const h of m.hosts) {
    for (const t of h.status?.counters?.tunnels ?? []) {
      const other = byAddress.get(t.remote.split(':')[0]);
      if (!other || other === h.name) continue;
      const id = `tun:${[h.name, other].sort().join(':')}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const drops = Object.entries(t.drops).filter(([r]) => !isExpectedDrop(r)).reduce((a, [, n]) => a + n, 0);
      const idle = t.encrypted && t.tunnel?.session == null;
      els.push({ data: { id, source: `host:${h.name}`, target: `host:${other}`, label: t.encrypted ? (idle ? 'no session' : 'encrypted') : 'plain' }, classes: `tunnel${drops > 0 ? ' drops' : ''}${idle ? ' idle' : ''}` });
    }
  }
  const next = els.map((e) => e.data.id).sort().join('|');
  if (next === shape) {
    // Same shape: only labels and classes change, positions stay.
    for (const e of els) {
      const el = cy.getElementById(e.data.id!);
      const path = el.hasClass('path') ? ' path' : '';
      const drop = el.hasClass('path-drop') ? ' path-drop' : '';
      el.data(e.data).classes(`${e.classes ?? ''}${path}${drop}`);
    }
    return;
  }
  shape = next;
  cy.elements().remove();
  cy.add(els);
  const big = m.hosts.length > PORTS_DRAWN_UP_TO_HOSTS;
  cy.layout(big ? { name: 'grid', avoidOverlap: true } : { name: 'cose', animate: false, nodeRepulsion: () => 9000, idealEdgeLength: () => 80, padding: 20 }).run();
  showIds();
}

/** What the graph shows, as the page's DOM says it (the graph itself is a canvas): the
 * ids of its nodes and edges, and of those on a trace's path. For tests, and for anyone
 * reading the page without the picture. */
function showIds(): void {
  const graph = $('graph');
  graph.dataset.nodes = cy.nodes().map((n) => n.id()).sort().join(' ');
  graph.dataset.edges = cy.edges().map((e) => e.id()).sort().join(' ');
  graph.dataset.path = cy.elements('.path').map((e) => e.id()).sort().join(' ');
  graph.dataset.dropped = cy.elements('.path-drop').map((e) => e.id()).sort().join(' ');
}

const fmt = (n: number) => n.toLocaleString('en');
const dropsText = (d: Record<string, number>) => Object.entries(d).map(([r, n]) => `${r} ${fmt(n)}${isExpectedDrop(r) ? ' (expected)' : ''}`).join(', ') || '—';

/** Drops by reason, each with its explanation as a tooltip; expected ones (what healthy VMs
 * do, such as a booting VM's listener reports) are grey, the problems red. */
function dropsCell(d: Record<string, number> | null): HTMLTableCellElement {
  const td = cell(d === null || Object.keys(d).length === 0 ? '—' : '', 'drops');
  const entries = Object.entries(d ?? {}).sort(([a], [b]) => Number(isExpectedDrop(a)) - Number(isExpectedDrop(b)));
  entries.forEach(([r, n], i) => {
    const span = document.createElement('span');
    span.textContent = `${r} ${fmt(n)}`;
    span.className = isExpectedDrop(r) ? 'expected' : 'problem';
    span.dataset.reason = r;
    span.title = `${DROP_EXPLANATIONS[r as DropReason]?.text ?? 'a drop reason this console does not know'}${isExpectedDrop(r) ? ' (expected)' : ''}`;
    td.append(...(i > 0 ? [', '] : []), span);
  });
  return td;
}

function cell(text: string, className = ''): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function tables(m: Model): void {
  const counters = new Map<string, PortCounters>();
  for (const h of m.hosts) for (const p of h.status?.counters?.ports ?? []) counters.set(p.name, p);
  const body = $('ports').querySelector('tbody')!;
  body.replaceChildren(...m.ports.map((p) => {
    const c = counters.get(p.name);
    const tr = document.createElement('tr');
    tr.dataset.port = p.name;
    tr.append(cell(p.name), cell(p.host), cell(p.network ?? (p.vlans ?? []).map((v) => v.network).join(', ')),
      cell(c ? fmt(c.rx.frames) : '—', 'num rx-frames'), cell(c ? fmt(c.tx.frames) : '—', 'num tx-frames'), dropsCell(c ? c.drops : null));
    return tr;
  }));
  const byAddress = new Map(m.hosts.map((h) => [h.address, h.name]));
  const rows: HTMLTableRowElement[] = [];
  for (const h of m.hosts) {
    for (const t of h.status?.counters?.tunnels ?? []) {
      const tr = document.createElement('tr');
      tr.dataset.tunnel = `${h.name}>${byAddress.get(t.remote.split(':')[0]) ?? t.remote}`;
      const age = t.tunnel?.session ? `${Math.round(t.tunnel.session.ageMs / 1000)} s` : t.encrypted ? 'none' : '—';
      tr.append(cell(h.name), cell(byAddress.get(t.remote.split(':')[0]) ?? t.remote), cell(t.encrypted ? 'yes' : 'no'), cell(age),
        cell(fmt(t.rx.frames), 'num'), cell(fmt(t.tx.frames), 'num'), dropsCell(t.drops));
      rows.push(tr);
    }
  }
  $('tunnels').querySelector('tbody')!.replaceChildren(...rows);
  const from = $<HTMLSelectElement>('trace-from');
  const names = m.ports.filter((p) => p.network && p.ips.some((a) => !a.includes(':'))).map((p) => p.name);
  if ([...from.options].map((o) => o.value).join() !== names.join()) {
    const keep = from.value;
    from.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(keep)) from.value = keep;
  }
  $('summary').textContent = `${m.hosts.length} hosts, ${m.networks.length} networks, ${m.routers.length} routers, ${m.ports.length} ports`;
}

function detail(id: string | null, m: Model): void {
  const title = $('detail-title');
  const box = $('detail');
  if (id === null) return;
  const [kind, name] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
  const pre = document.createElement('pre');
  if (kind === 'host') {
    const h = m.hosts.find((x) => x.name === name);
    title.textContent = `host ${name}`;
    pre.textContent = h ? `${h.address}, agent ${h.status?.connected ? 'connected' : 'not connected'}${h.revokedAt ? ', REVOKED' : ''}\nlast report ${h.status?.lastSeen ?? 'never'}\n`
      + (h.status?.counters?.tunnels ?? []).map((t) => `tunnel to ${t.remote}: rx ${fmt(t.rx.frames)}, tx ${fmt(t.tx.frames)}, drops: ${dropsText(t.drops)}`).join('\n') : '';
  } else if (kind === 'port') {
    const p = m.ports.find((x) => x.name === name);
    const c = m.hosts.flatMap((h) => h.status?.counters?.ports ?? []).find((x) => x.name === name);
    title.textContent = `port ${name}`;
    pre.textContent = p ? `on ${p.host}, ${p.network ?? 'trunk'}, ${p.mac}, ${p.ips.join(' ')}\n` + (c ? `rx ${fmt(c.rx.frames)} frames, ${fmt(c.rx.bytes)} bytes\ntx ${fmt(c.tx.frames)} frames, ${fmt(c.tx.bytes)} bytes\ndrops: ${dropsText(c.drops)}` : 'no counters reported') : '';
  } else if (kind === 'net') {
    const n = m.networks.find((x) => x.name === name);
    title.textContent = `network ${name}`;
    pre.textContent = n ? `${n.provider ? 'provider network' : `${n.encapsulation} VNI ${n.vni}`}${n.encryption === 'noise' ? ', encrypted' : ''}\nports: ${m.ports.filter((p) => p.network === name).map((p) => p.name).join(', ') || 'none'}\nsubnets: ${m.subnets.filter((s) => s.network === name).map((s) => s.cidr).join(', ') || 'none'}` : '';
  } else {
    title.textContent = `${kind} ${name}`;
  }
  box.replaceChildren(pre);
}

cy.on('tap', 'node', (e) => {
  selected = e.target.id();
  detail(selected, model);
});

let lastEvent = 0;
async function poll(): Promise<void> {
  try {
    const [hosts, networks, subnets, routers, ports] = await Promise.all([
      api<Host[]>('GET', '/v1/hosts'), api<Network[]>('GET', '/v1/networks'), api<Subnet[]>('GET', '/v1/subnets'), api<Router[]>('GET', '/v1/routers'), api<Port[]>('GET', '/v1/ports'),
    ]);
    model = { hosts, networks, subnets, routers, ports };
    draw(model);
    tables(model);
    detail(selected, model);
    const events = await api<WeftEvent[]>('GET', `/v1/events?since=${lastEvent}`);
    if (events.length > 0 && events[0].id <= lastEvent) lastEvent = 0; // the controller restarted
    const list = $('events');
    for (const e of events) {
      const li = document.createElement('li');
      li.textContent = `${e.at.slice(11, 19)} ${e.kind}${e.host ? ` (${e.host})` : ''}: ${e.message}`;
      list.prepend(li);
      lastEvent = e.id;
    }
    while (list.children.length > 200) list.lastElementChild!.remove();
    $('status').textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
    $('status').className = '';
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin();
    $('status').textContent = `cannot reach the controller: ${(err as Error).message}`;
    $('status').className = 'bad';
  }
}

/** Marks a trace's path on the graph: the source port, each host it crossed, the tunnels
 * between them and where it was delivered; the host that dropped it in red. */
function drawPath(from: string, r: TraceResult): void {
  cy.elements().removeClass('path path-drop');
  const hosts = [...new Set(r.steps.map((s) => s.host))];
  cy.getElementById(`port:${from}`).addClass('path');
  for (let i = 0; i < hosts.length; i++) {
    cy.getElementById(`host:${hosts[i]}`).addClass('path');
    if (i > 0) cy.getElementById(`tun:${[hosts[i - 1], hosts[i]].sort().join(':')}`).addClass('path');
  }
  for (const s of r.steps) {
    if (s.verdict === 'deliver' && s.port) cy.getElementById(`port:${s.port}`).addClass('path');
    if (s.verdict === 'drop') cy.getElementById(`host:${s.host}`).addClass('path-drop');
  }
  showIds();
}

$('trace').addEventListener('submit', async (e) => {
  e.preventDefault();
  const from = $<HTMLSelectElement>('trace-from').value;
  const port = $<HTMLInputElement>('trace-port').value;
  const verdict = $('trace-verdict');
  verdict.textContent = 'tracing…';
  verdict.className = '';
  try {
    const r = await api<TraceResult>('POST', '/v1/traces', {
      from, to: $<HTMLInputElement>('trace-to').value.trim(), protocol: $<HTMLSelectElement>('trace-proto').value,
      size: Number($<HTMLInputElement>('trace-size').value || 64), ...(port ? { port: Number(port) } : {}),
    });
    verdict.textContent = r.verdict;
    verdict.className = r.delivered ? 'delivered' : 'dropped';
    $('trace-steps').replaceChildren(...r.steps.map((s) => {
      const li = document.createElement('li');
      li.textContent = `${s.host} +${s.ms.toFixed(3)} ms ${s.stage}: ${s.detail}`;
      if (s.verdict === 'drop') li.className = 'drop';
      return li;
    }));
    drawPath(from, r);
  } catch (err) {
    verdict.textContent = (err as Error).message;
    verdict.className = 'dropped';
  }
});

function showLogin(): void {
  $('app').hidden = true;
  $('login').hidden = false;
  $('status').textContent = 'the admin token is needed';
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $<HTMLInputElement>('token').value.trim();
  sessionStorage.setItem('weft-token', token);
  start();
});

function start(): void {
  sessionStorage.setItem('weft-token', token);
  $('login').hidden = true;
  $('app').hidden = false;
  cy.resize();
  void poll();
}

// A token given in the fragment later (a link followed on an open page) is taken too.
window.addEventListener('hashchange', () => {
  const given = new URLSearchParams(location.hash.slice(1)).get('token');
  if (!given) return;
  token = given;
  history.replaceState(null, '', location.pathname);
  start();
});

if (token) start();
else showLogin();
setInterval(() => {
  if (!$('app').hidden) void poll();
}, POLL_MS);
