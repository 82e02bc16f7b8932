/**
 * The Weft console: the controller's API, drawn. It reads what `weft` reads (hosts with
 * what their agents report, networks, subnets, routers, ports, events) every two seconds
 * with the admin token, draws the topology with cytoscape, lists live counters and drop
 * reasons per port and tunnel, and runs `weft trace` (POST /v1/traces), drawing the path on
 * the graph. Served by the controller itself at /ui/ (built by vite at `npm ci`).
 *
 * Made to stay usable at a thousand hosts: everything listed and laid out in natural order
 * (h2 before h10), a search box that finds hosts, ports, networks and routers by name or
 * address, focus on one host or network with its neighbours (click it, or its name in the
 * lists), and a layout computed from the measured sizes of the boxes with their labels, so
 * that no label covers another box (src/console/: the parts that need no browser).
 *
 * The token comes from the address's fragment (#token=..., never sent to a server), or is
 * asked for, and is kept for the tab (sessionStorage) only.
 */
import cytoscape from 'cytoscape';
import { DROP_EXPLANATIONS, isExpectedDrop, type DropReason } from '../src/datapath/counters.js';
import { naturalCompare, naturalSort } from '../src/console/natural.js';
import { search, type Searchable } from '../src/console/search.js';
import { neighbourhood, type GraphElement } from '../src/console/focus.js';
import { arrange, type Size } from '../src/console/layout.js';

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
/** The ports table lists at most this many (of the focus, if any); search finds the rest. */
const PORT_ROWS = 1000;
/** Search results listed under the box. */
const RESULTS_SHOWN = 12;

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
    { selector: 'node.host', style: { shape: 'round-rectangle', 'background-color': '#e8eef8', 'border-color': '#5a7bb5', 'border-width': 2, 'text-valign': 'top', 'text-margin-y': -2, 'font-weight': 'bold', padding: '12px', 'compound-sizing-wrt-labels': 'include', 'min-width': '40px', 'min-height': '24px' } },
    // Ports not drawn: a host is a box with its name, address and count of ports inside.
    { selector: 'node.host.summary', style: { 'text-valign': 'center', 'text-margin-y': 0, width: 84, height: 52, 'font-size': 10 } },
    { selector: 'node.host.down', style: { 'border-color': '#b3261e', 'background-color': '#fbe9e7' } },
    { selector: 'node.port', style: { shape: 'ellipse', 'background-color': '#8fb3e8', width: 26, height: 26, 'text-valign': 'bottom', 'text-margin-y': 3 } },
    { selector: 'node.network', style: { shape: 'barrel', 'background-color': '#c8e6c9', 'border-color': '#2e7d32', 'border-width': 1, width: 90, height: 30 } },
    { selector: 'node.router', style: { shape: 'diamond', 'background-color': '#ffe0b2', 'border-color': '#e65100', 'border-width': 1, width: 40, height: 40, 'text-valign': 'bottom' } },
    { selector: 'edge', style: { width: 1.5, 'line-color': '#9aa5b1', 'curve-style': 'bezier' } },
    // A tunnel says its state by its line (dashed: encrypted, solid: plain; green, grey
    // without a session, orange with drops); its words only when selected, so that no
    // label lies over a box.
    { selector: 'edge.tunnel', style: { width: 3, 'line-style': 'dashed', 'line-color': '#2e7d32', 'font-size': 9, 'text-background-color': '#fff', 'text-background-opacity': 1 } },
    { selector: 'edge.tunnel.plain', style: { 'line-style': 'solid' } },
    { selector: 'edge.tunnel:selected', style: { label: 'data(label)' } },
    { selector: 'edge.tunnel.drops', style: { 'line-color': '#ef6c00' } },
    { selector: 'edge.tunnel.idle', style: { 'line-color': '#b0b7c0' } },
    { selector: '.path', style: { 'border-color': '#6a1b9a', 'border-width': 4, 'line-color': '#6a1b9a', width: 5, 'z-index': 10 } },
    { selector: '.path-drop', style: { 'border-color': '#b3261e', 'border-width': 5, 'background-color': '#ffcdd2' } },
    { selector: ':selected', style: { 'overlay-opacity': 0.15 } },
    { selector: '.match', style: { 'border-color': '#f9a825', 'border-width': 4 } },
    { selector: '.dim', style: { opacity: 0.25 } },
    { selector: '.hidden', style: { display: 'none' } },
  ],
});

interface Model { hosts: Host[]; networks: Network[]; subnets: Subnet[]; routers: Router[]; ports: Port[] }
let model: Model = { hosts: [], networks: [], subnets: [], routers: [], ports: [] };
let shape = '';
let selected: string | null = null;
/** The node focused on (only it and its neighbours shown), or null for everything. */
let focus: string | null = null;
/** The graph's elements as last drawn, for focus. */
let drawn: GraphElement[] = [];
/** Classes the console sets on elements besides those draw() gives them, kept across redraws. */
const MARKS = ['path', 'path-drop', 'hidden', 'match', 'dim'];

/** The lists in natural order (h2 before h10), as everything on the page shows them. */
function sortModel(m: Model): Model {
  return { hosts: naturalSort(m.hosts), networks: naturalSort(m.networks), subnets: naturalSort(m.subnets), routers: naturalSort(m.routers), ports: naturalSort(m.ports) };
}

/** The graph's elements for the model; the layout runs again only when the shape changes. */
function draw(m: Model): void {
  const drawPorts = m.hosts.length <= PORTS_DRAWN_UP_TO_HOSTS;
  const byAddress = new Map(m.hosts.map((h) => [h.address, h.name]));
  const hostNames = new Set(m.hosts.map((h) => h.name));
  const portsOn = new Map<string, number>();
  for (const p of m.ports) portsOn.set(p.host, (portsOn.get(p.host) ?? 0) + 1);
  const els: cytoscape.ElementDefinition[] = [];
  for (const h of m.hosts) {
    const ports = portsOn.get(h.name) ?? 0;
    els.push({ data: { id: `host:${h.name}`, label: `${h.name}\n${h.address}${drawPorts ? '' : `\n${ports} ports`}` }, classes: `host${drawPorts ? '' : ' summary'}${h.status?.connected ? '' : ' down'}` });
  }
  for (const n of m.networks) els.push({ data: { id: `net:${n.name}`, label: `${n.name}\n${n.provider ? 'provider' : `VNI ${n.vni}`}` }, classes: 'network' });
  if (drawPorts) {
    for (const p of m.ports) {
      if (!hostNames.has(p.host)) continue;
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
      els.push({ data: { id, source: `host:${h.name}`, target: `host:${other}`, label: t.encrypted ? (idle ? 'no session' : 'encrypted') : 'plain' }, classes: `tunnel${drops > 0 ? ' drops' : ''}${idle ? ' idle' : ''}${t.encrypted ? '' : ' plain'}` });
    }
  }
  const next = els.map((e) => e.data.id).sort().join('|');
  if (next === shape) {
    // Same shape: only labels and classes change, positions stay.
    for (const e of els) {
      const el = cy.getElementById(e.data.id!);
      const marks = MARKS.filter((c) => el.hasClass(c)).map((c) => ` ${c}`).join('');
      el.data(e.data).classes(`${e.classes ?? ''}${marks}`);
    }
    return;
  }
  shape = next;
  drawn = els.map((e) => ({ id: e.data.id!, parent: e.data.parent, source: e.data.source, target: e.data.target }));
  cy.elements().remove();
  cy.add(els);
  if (focus !== null && cy.getElementById(focus).empty()) focus = null;
  applyFocus();
  highlight(false);
}

/** Lays out what is shown (everything, or the focus): each host's ports in rows inside it,
 * then hosts, networks and routers where src/console/layout.ts says, from their sizes as
 * drawn, labels included, so that no label covers another box. Fits the view to it. */
function layout(): void {
  const shown = cy.nodes().not('.hidden');
  const list = (c: cytoscape.CollectionReturnValue) => c.toArray() as cytoscape.NodeSingular[];
  const byName = (a: cytoscape.NodeSingular, b: cytoscape.NodeSingular) => naturalCompare(a.id(), b.id());
  const box = (n: cytoscape.NodeSingular) => n.boundingBox({ includeLabels: true });
  cy.batch(() => {
    for (const host of list(shown.filter('.host'))) {
      const ports = list(host.children().not('.hidden')).sort(byName);
      if (ports.length === 0) continue;
      const cols = Math.ceil(Math.sqrt(ports.length * 1.5));
      const cw = Math.max(...ports.map((p) => box(p).w)) + 10;
      const ch = Math.max(...ports.map((p) => box(p).h)) + 8;
      ports.forEach((p, i) => p.position({ x: (i % cols) * cw, y: Math.floor(i / cols) * ch }));
    }
  });
  const top = list(shown).filter((n) => n.parent().empty());
  const sizes = (sel: string): Size[] => top.filter((n) => n.is(sel)).sort(byName).map((n) => {
    const b = box(n);
    return { id: n.id(), w: b.w, h: b.h };
  });
  const at = arrange(sizes('.host'), [...sizes('.network'), ...sizes('.router')], cy.width() > 0 && cy.height() > 0 ? cy.width() / cy.height() : 1.6);
  cy.batch(() => {
    for (const n of top) {
      const p = at.get(n.id());
      if (!p) continue;
      const b = box(n);
      const by = { x: p.x - (b.x1 + b.x2) / 2, y: p.y - (b.y1 + b.y2) / 2 };
      if (n.isParent()) n.descendants().shift(by);
      else n.shift(by);
    }
  });
  cy.fit(shown, 30);
  showIds();
}

/** Shows only `id` and its neighbours (src/console/focus.ts), or everything for null, and
 * lays out what is shown. */
function setFocus(id: string | null): void {
  focus = id !== null && cy.getElementById(id).nonempty() ? id : null;
  applyFocus();
  tables(model);
}

function applyFocus(): void {
  const keep = focus === null ? null : neighbourhood(drawn, focus);
  cy.batch(() => {
    for (const e of cy.elements().toArray()) e.toggleClass('hidden', keep !== null && !keep.has(e.id()));
  });
  $('focus-info').textContent = focus === null ? '' : `${describe(focus)} and its neighbours`;
  $('unfocus').hidden = focus === null;
  layout();
}

/** `host:h1` as a person says it: host h1. */
function describe(id: string): string {
  const [kind, name] = [id.slice(0, id.indexOf(':')), id.slice(id.indexOf(':') + 1)];
  return `${({ net: 'network', tun: 'tunnel' } as Record<string, string>)[kind] ?? kind} ${name}`;
}

/** Everything the search box can find, with the node that shows it. */
function searchables(m: Model): Searchable[] {
  const drawPorts = m.hosts.length <= PORTS_DRAWN_UP_TO_HOSTS;
  return [
    ...m.hosts.map((h): Searchable => ({ id: `host:${h.name}`, kind: 'host', name: h.name, also: [h.address], shownAs: `host:${h.name}` })),
    ...m.networks.map((n): Searchable => ({ id: `net:${n.name}`, kind: 'network', name: n.name, also: m.subnets.filter((s) => s.network === n.name).map((s) => s.cidr), shownAs: `net:${n.name}` })),
    ...m.routers.map((r): Searchable => ({ id: `router:${r.name}`, kind: 'router', name: r.name, also: r.externalGateway ? [r.externalGateway.ip] : [], shownAs: `router:${r.name}` })),
    ...m.ports.map((p): Searchable => ({ id: `port:${p.name}`, kind: 'port', name: p.name, also: [...p.ips, p.mac], shownAs: drawPorts ? `port:${p.name}` : `host:${p.host}` })),
  ];
}

let lastQuery = '';
/** Marks what the search box finds and dims the rest; a new query also selects the first
 * found and centres the graph on it (a redraw only marks again, the view stays). */
function highlight(fresh: boolean): void {
  const query = $<HTMLInputElement>('search').value;
  const found = search(searchables(model), query);
  const list = $('search-results');
  const graph = $('graph');
  cy.batch(() => cy.elements().removeClass('match dim'));
  if (query.trim() === '') {
    list.replaceChildren();
    list.hidden = true;
    $('search-count').textContent = '';
    graph.dataset.matches = '';
    lastQuery = '';
    return;
  }
  $('search-count').textContent = found.length === 0 ? 'nothing found' : `${fmt(found.length)} found`;
  list.hidden = found.length === 0;
  list.replaceChildren(...found.slice(0, RESULTS_SHOWN).map((f, i) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.show = f.id;
    b.textContent = `${f.kind} ${f.name}${f.shownAs !== f.id ? ` (on ${f.shownAs.slice('host:'.length)})` : ''}`;
    if (i === 0) b.className = 'first';
    li.append(b);
    return li;
  }));
  let nodes = cy.collection();
  for (const id of new Set(found.map((f) => f.shownAs))) nodes = nodes.union(cy.getElementById(id));
  graph.dataset.matches = nodes.map((n) => n.id()).sort(naturalCompare).join(' ');
  if (nodes.empty()) return;
  cy.batch(() => {
    cy.elements().not(nodes.union(nodes.ancestors())).addClass('dim');
    nodes.addClass('match');
  });
  if (fresh && query !== lastQuery) show(found[0].id, found[0].shownAs);
  lastQuery = query;
}

/** Selects `id` (its details in the side panel) and centres the graph on the node that
 * shows it, leaving a focus that hides it. */
function show(id: string, shownAs = id): void {
  let node = cy.getElementById(shownAs);
  if (node.nonempty() && node.hasClass('hidden')) {
    setFocus(null);
    node = cy.getElementById(shownAs);
  }
  select(id);
  if (node.empty()) return;
  cy.$(':selected').unselect();
  node.select();
  cy.zoom(Math.max(cy.zoom(), 0.9));
  cy.center(node);
}

function select(id: string | null): void {
  selected = id;
  $('graph').dataset.selected = id ?? '';
  detail(selected, model);
}

/** What the graph shows, as the page's DOM says it (the graph itself is a canvas): the
 * ids of its nodes and edges, and of those on a trace's path. For tests, and for anyone
 * reading the page without the picture. */
function showIds(): void {
  const graph = $('graph');
  graph.dataset.nodes = cy.nodes().map((n) => n.id()).sort(naturalCompare).join(' ');
  graph.dataset.edges = cy.edges().map((e) => e.id()).sort(naturalCompare).join(' ');
  graph.dataset.shown = cy.elements().not('.hidden').map((e) => e.id()).sort(naturalCompare).join(' ');
  graph.dataset.focus = focus ?? '';
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

/** A name that focuses the graph on what it names when clicked. */
function focusButton(id: string, name: string): HTMLTableCellElement {
  const td = cell('');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'name';
  b.dataset.focus = id;
  b.textContent = name;
  b.title = `show only ${describe(id)} and its neighbours`;
  td.append(b);
  return td;
}

function tables(m: Model): void {
  const counters = new Map<string, PortCounters>();
  for (const h of m.hosts) for (const p of h.status?.counters?.ports ?? []) counters.set(p.name, p);
  const portsOn = new Map<string, number>();
  const hostsOn = new Map<string, Set<string>>();
  for (const p of m.ports) {
    portsOn.set(p.host, (portsOn.get(p.host) ?? 0) + 1);
    for (const n of [p.network, ...(p.vlans ?? []).map((v) => v.network)]) {
      if (!n) continue;
      portsOn.set(`net:${n}`, (portsOn.get(`net:${n}`) ?? 0) + 1);
      if (!hostsOn.has(n)) hostsOn.set(n, new Set());
      hostsOn.get(n)!.add(p.host);
    }
  }
  $('hosts').querySelector('tbody')!.replaceChildren(...m.hosts.map((h) => {
    const tr = document.createElement('tr');
    tr.dataset.host = h.name;
    if (focus === `host:${h.name}`) tr.className = 'focused';
    tr.append(focusButton(`host:${h.name}`, h.name), cell(h.address), cell(h.revokedAt ? 'revoked' : h.status?.connected ? 'connected' : 'not connected', h.status?.connected ? '' : 'bad'),
      cell(fmt(portsOn.get(h.name) ?? 0), 'num'));
    return tr;
  }));
  $('networks').querySelector('tbody')!.replaceChildren(...m.networks.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.network = n.name;
    if (focus === `net:${n.name}`) tr.className = 'focused';
    tr.append(focusButton(`net:${n.name}`, n.name), cell(n.provider ? 'provider' : `VNI ${n.vni}`), cell(fmt(hostsOn.get(n.name)?.size ?? 0), 'num'), cell(fmt(portsOn.get(`net:${n.name}`) ?? 0), 'num'));
    return tr;
  }));
  // The ports of the focus (the host's, the network's, or those of the hosts shown), or all.
  const shownHosts = focus === null ? null : new Set(cy.nodes('.host').not('.hidden').map((n) => n.id().slice('host:'.length)));
  const focusNet = focus?.startsWith('net:') ? focus.slice('net:'.length) : null;
  const listed = m.ports.filter((p) => shownHosts === null || (focusNet !== null
    ? p.network === focusNet || (p.vlans ?? []).some((v) => v.network === focusNet)
    : focus === `port:${p.name}` || (focus!.startsWith('host:') ? `host:${p.host}` === focus : shownHosts.has(p.host))));
  $('ports-count').textContent = `${listed.length > PORT_ROWS ? `the first ${fmt(PORT_ROWS)} of ` : ''}${fmt(listed.length)}${focus === null ? '' : ` of ${describe(focus)}`}${listed.length > PORT_ROWS ? ' (search or focus to find others)' : ''}`;
  const body = $('ports').querySelector('tbody')!;
  body.replaceChildren(...listed.slice(0, PORT_ROWS).map((p) => {
    const c = counters.get(p.name);
    const tr = document.createElement('tr');
    tr.dataset.port = p.name;
    tr.append(cell(p.name), cell(p.host), cell(p.network ?? (p.vlans ?? []).map((v) => v.network).join(', ')),
      cell(c ? fmt(c.rx.frames) : '—', 'num rx-frames'), cell(c ? fmt(c.tx.frames) : '—', 'num tx-frames'), dropsCell(c ? c.drops : null));
    return tr;
  }));
  const byAddress = new Map(m.hosts.map((h) => [h.address, h.name]));
  const rows: HTMLTableRowElement[] = [];
  const remoteName = (t: TunnelCounters) => byAddress.get(t.remote.split(':')[0]) ?? t.remote;
  for (const h of m.hosts) {
    for (const t of naturalSort(h.status?.counters?.tunnels ?? [], remoteName)) {
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
  } else if (kind === 'tun') {
    const [a, b] = name.split(':');
    const addresses = new Map(m.hosts.map((h) => [h.name, h.address]));
    title.textContent = `tunnel ${a} – ${b}`;
    pre.textContent = [[a, b], [b, a]].map(([from, to]) => {
      const t = m.hosts.find((h) => h.name === from)?.status?.counters?.tunnels?.find((x) => x.remote.split(':')[0] === addresses.get(to));
      return t ? `${from} to ${to}: ${t.encrypted ? (t.tunnel?.session ? `encrypted, session ${Math.round(t.tunnel.session.ageMs / 1000)} s old` : 'encrypted, no session') : 'plain'}; rx ${fmt(t.rx.frames)}, tx ${fmt(t.tx.frames)}, drops: ${dropsText(t.drops)}`
        : `${from} to ${to}: not reported`;
    }).join('\n');
  } else {
    title.textContent = `${kind} ${name}`;
  }
  box.replaceChildren(pre);
}

// A click on a host or network focuses on it (again: everything); on anything, its details.
cy.on('tap', 'node, edge', (e) => {
  const id: string = e.target.id();
  select(id);
  if (id.startsWith('host:') || id.startsWith('net:') || id.startsWith('router:')) setFocus(focus === id ? null : id);
});

$('unfocus').addEventListener('click', () => setFocus(null));
for (const table of ['hosts', 'networks']) {
  $(table).addEventListener('click', (e) => {
    const id = (e.target as HTMLElement).closest<HTMLElement>('button[data-focus]')?.dataset.focus;
    if (!id) return;
    setFocus(id);
    select(id);
  });
}
$('search').addEventListener('input', () => highlight(true));
$('search').addEventListener('keydown', (e) => {
  const input = e.target as HTMLInputElement;
  if (e.key === 'Escape') {
    // Escape clears the search; with nothing to clear, it leaves the focus.
    if (input.value === '') setFocus(null);
    input.value = '';
    highlight(true);
  } else if (e.key === 'Enter') {
    // Enter focuses on the first found.
    const first = search(searchables(model), input.value)[0];
    if (first) {
      input.value = '';
      highlight(true);
      setFocus(first.shownAs);
      show(first.id, first.shownAs);
    }
  }
});
$('search-results').addEventListener('click', (e) => {
  const id = (e.target as HTMLElement).closest<HTMLElement>('button[data-show]')?.dataset.show;
  const item = id ? searchables(model).find((f) => f.id === id) : undefined;
  if (item) show(item.id, item.shownAs);
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && focus !== null && (e.target as HTMLElement).tagName !== 'INPUT') setFocus(null);
  if (e.key === '/' && (e.target as HTMLElement).tagName !== 'INPUT') {
    e.preventDefault();
    $('search').focus();
  }
});
// The bar above the graph changes height (focus, search): cytoscape must know its size, or
// clicks land beside what they aim at.
new ResizeObserver(() => cy.resize()).observe($('graph'));
// For the browser test and for a person at the developer tools: the graph itself.
(window as unknown as { weft: { cy: cytoscape.Core } }).weft = { cy };

let lastEvent = 0;
async function poll(): Promise<void> {
  try {
    const [hosts, networks, subnets, routers, ports] = await Promise.all([
      api<Host[]>('GET', '/v1/hosts'), api<Network[]>('GET', '/v1/networks'), api<Subnet[]>('GET', '/v1/subnets'), api<Router[]>('GET', '/v1/routers'), api<Port[]>('GET', '/v1/ports'),
    ]);
    model = sortModel({ hosts, networks, subnets, routers, ports });
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
  if (focus !== null) setFocus(null);
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
