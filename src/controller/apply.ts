/**
 * `POST /v1/apply`: make the intended network match a declarative file, entirely or not at
 * all.
 *
 *   { networks: [{ name: blue, vni: 100 }], subnets: [...], ports: [...], prune: false, dryRun: true }
 *
 * The controller plans (what to create, change and, with `prune`, delete), checks the whole
 * file before anything happens (names unique, every reference resolvable against the file
 * plus what exists), then carries the plan out through the ordinary service rules inside one
 * store transaction (store/transaction.ts): one commit, or none. A dry run does all of that
 * and throws the transaction away, so what it prints is what would happen, refusals
 * included. The plan's digest lets a client say "carry out the plan I showed": if the
 * controller's state moved meanwhile so that the plan differs, the apply is refused (409).
 *
 * Without `prune`, what the file does not name is kept and listed as kept; kinds the file
 * leaves out entirely are not looked at.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { writtenJsonSchema } from '../config/json-schema.js';
import {
  checkPort, floatingIpCreate, networkCreate, portCreate, portFields, portForwardCreate, routerCreate, securityGroupCreate, subnetCreate,
  type FloatingIp, type Host, type Network, type Port, type PortForward, type Router, type SecurityGroup, type Subnet,
} from './model.js';
import { ApiError, NetworkService, type ServiceOptions } from './service.js';
import { Transaction, TransactionConflict } from './store/transaction.js';
import type { Store } from './store/store.js';

export const KINDS = ['securityGroups', 'networks', 'subnets', 'routers', 'ports', 'floatingIps', 'portForwards'] as const;
export type Kind = (typeof KINDS)[number];
/** What the plan calls one resource of each kind. */
export const ONE: Record<Kind, string> = { securityGroups: 'security-group', networks: 'network', subnets: 'subnet', routers: 'router', ports: 'port', floatingIps: 'floating-ip', portForwards: 'port-forward' };

/** A port in a file: its backend and port security may be left out (kept as they are;
 * memory and on when created). */
const filePort = portFields.extend({
  backend: portFields.shape.backend.optional(),
  portSecurity: z.boolean().optional().describe(`${portFields.shape.portSecurity.description} On when the port is created; kept as it is when left out.`),
  allowedAddresses: portFields.shape.allowedAddresses.optional(),
  allowedEtherTypes: portFields.shape.allowedEtherTypes.optional(),
}).superRefine(checkPort);

/** The resources of a file, as `weft apply` reads them; each list's names are unique. */
export const applyResources = z.object({
  networks: z.array(networkCreate).optional().describe('Networks, as `POST /v1/networks` takes them (`weft network create --help`).'),
  subnets: z.array(subnetCreate).optional().describe('IPv4 subnets of the networks, as `POST /v1/subnets` takes them.'),
  routers: z.array(routerCreate).optional().describe('Routers joining subnets, as `POST /v1/routers` takes them.'),
  ports: z.array(filePort).optional().describe('Ports (a VM\'s attachment to a network on a host), as `POST /v1/ports` takes them; `backend` and port security may be left out (kept as they are; memory and on when created).'),
  floatingIps: z.array(floatingIpCreate).optional().describe('Floating addresses of ports, as `POST /v1/floating-ips` takes them; they do not change in place.'),
  portForwards: z.array(portForwardCreate).optional().describe('Ports of a router\'s external address forwarded to a port, as `POST /v1/port-forwards` takes them; they do not change in place.'),
  securityGroups: z.array(securityGroupCreate).optional().describe('Security groups and their rules, as `POST /v1/security-groups` takes them; rules may name groups made in the same file.'),
}).strict().superRefine((doc, ctx) => {
  for (const kind of KINDS) {
    const seen = new Map<string, number>();
    (doc[kind] ?? []).forEach((r, i) => {
      const first = seen.get(r.name);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: [kind, i, 'name'], message: `${r.name} is named already by ${kind}[${first}]` });
      else seen.set(r.name, i);
    });
  }
}).describe('A `weft apply -f FILE` file: the resources the controller should have. Without `--prune`, what the file does not name is kept.');

/** The apply file's JSON Schema (draft-07, which editors' YAML language servers read), as
 * `weft schema apply` prints it and docs/apply.schema.json holds it. */
export function applyFileJsonSchema(): Record<string, unknown> {
  return writtenJsonSchema(applyResources, 'Weft apply file');
}

export const applyRequest = z.object({
  resources: applyResources,
  /** Delete what the file does not name (of the kinds it lists). */
  prune: z.boolean().default(false),
  /** Plan and check everything, change nothing. */
  dryRun: z.boolean().default(false),
  /** Carry out only this plan (the digest a dry run returned). */
  planDigest: z.string().regex(/^[0-9a-f]{64}$/, 'a digest returned by a dry run').optional(),
}).strict();

export type ApplyResources = z.infer<typeof applyResources>;
export type ApplyRequest = z.infer<typeof applyRequest>;

export interface Action {
  verb: 'create' | 'update' | 'delete';
  kind: Kind;
  name: string;
  /** Where the resource is in the file (creates and updates). */
  index?: number;
  body?: unknown;
  /** What a person reads in the plan. */
  text: string;
}

export interface ApplyResult {
  actions: Action[];
  /** What exists and the file does not name, kept because `prune` was not given. */
  kept: Array<{ kind: Kind; name: string }>;
  planDigest: string;
  applied: boolean;
  /** The store revision after the apply (before it, for a dry run or an empty plan). */
  revision: number;
}

export interface Current {
  networks: Network[];
  subnets: Subnet[];
  routers: Router[];
  ports: Port[];
  floatingIps: FloatingIp[];
  portForwards: PortForward[];
  securityGroups: SecurityGroup[];
  hosts: Host[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
/** Creates in this order, deletes in the reverse: a router needs its subnets, and a subnet
 * cannot go while a router joins it. */
/** Groups come first: ports name them, and their rules name each other. */
const ORDER: Record<Kind, number> = { securityGroups: -1, networks: 0, subnets: 1, routers: 2, ports: 3, floatingIps: 4, portForwards: 5 };

/** How often an apply that lost a race to another writer is planned and tried again. */
const RETRIES = 3;

type Problem = { field: string; message: string };

/**
 * The actions that turn `current` into `desired`, creates first (networks before what sits
 * on them), then updates, then deletes (ports before their networks). Throws a 422 naming
 * every problem: a change that needs a replace, a reference to nothing.
 */
export function plan(current: Current, desired: ApplyResources, prune: boolean): { actions: Action[]; kept: ApplyResult['kept'] } {
  const problems: Problem[] = [];
  const creates: Action[] = [];
  const updates: Action[] = [];
  const deletes: Action[] = [];
  const kept: ApplyResult['kept'] = [];
  const immutable = (kind: Kind, i: number, field: string, from: unknown, to: unknown) => {
    if (to !== undefined && !same(from, to)) {
      problems.push({ field: `${kind}[${i}].${field}`, message: `${field} cannot change in place (${JSON.stringify(from)} -> ${JSON.stringify(to)}); delete it first` });
    }
  };
  const leftOut = (kind: Kind, have: Array<{ name: string }>, named: Array<{ name: string }>) => {
    const names = new Set(named.map((r) => r.name));
    for (const h of have) {
      if (names.has(h.name)) continue;
      if (prune) deletes.push({ verb: 'delete', kind, name: h.name, text: `- ${ONE[kind]} ${h.name}` });
      else kept.push({ kind, name: h.name });
    }
  };

  if (desired.networks) {
    const have = new Map(current.networks.map((n) => [n.name, n]));
    desired.networks.forEach((want, i) => {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'networks', name: want.name, index: i, body: want, text: `+ network ${want.name} (${want.vni !== undefined ? `vni ${want.vni}` : 'vni allocated'}, ${want.encapsulation})` });
        return;
      }
      immutable('networks', i, 'vni', h.vni, want.vni);
      immutable('networks', i, 'encapsulation', h.encapsulation, want.encapsulation);
      immutable('networks', i, 'provider', h.provider ?? null, want.provider ?? null);
      if (want.encryption !== undefined) immutable('networks', i, 'encryption', h.encryption ?? 'none', want.encryption);
      const change: Record<string, unknown> = {};
      const said: string[] = [];
      if ((h.mtu ?? null) !== (want.mtu ?? null)) {
        change.mtu = want.mtu ?? null;
        said.push(`mtu ${h.mtu ?? 'auto'} -> ${want.mtu ?? 'auto'}`);
      }
      if (!same(h.ipv6 ?? null, want.ipv6 ?? null)) {
        change.ipv6 = want.ipv6 ?? null;
        said.push(`ipv6 ${h.ipv6?.prefix ?? 'none'} -> ${want.ipv6?.prefix ?? 'none'}`);
      }
      if (said.length > 0) updates.push({ verb: 'update', kind: 'networks', name: want.name, index: i, body: change, text: `~ network ${want.name}: ${said.join('; ')}` });
    });
    leftOut('networks', current.networks, desired.networks);
  }
  if (desired.subnets) {
    const have = new Map(current.subnets.map((s) => [s.name, s]));
    desired.subnets.forEach((want, i) => {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'subnets', name: want.name, index: i, body: want, text: `+ subnet ${want.name} (${want.cidr} on ${want.network})` });
        return;
      }
      immutable('subnets', i, 'network', h.network, want.network);
      immutable('subnets', i, 'cidr', h.cidr, want.cidr);
      immutable('subnets', i, 'gateway', h.gateway, want.gateway);
      const change: Record<string, unknown> = {};
      if (want.allocation && !same(h.allocation, want.allocation)) change.allocation = want.allocation;
      if (!same(h.dns, want.dns)) change.dns = want.dns;
      if ((h.domain ?? null) !== (want.domain ?? null)) change.domain = want.domain ?? null;
      if ((h.dhcp ?? true) !== want.dhcp) change.dhcp = want.dhcp;
      if (Object.keys(change).length > 0) {
        updates.push({ verb: 'update', kind: 'subnets', name: want.name, index: i, body: change, text: `~ subnet ${want.name}: ${Object.keys(change).join(', ')}` });
      }
    });
    leftOut('subnets', current.subnets, desired.subnets);
  }
  if (desired.routers) {
    const have = new Map(current.routers.map((r) => [r.name, r]));
    desired.routers.forEach((want, i) => {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'routers', name: want.name, index: i, body: want, text: `+ router ${want.name} (${want.subnets.join(', ') || 'no subnets'}${want.routes.length ? `; ${want.routes.length} route(s)` : ''})` });
        return;
      }
      const change: Record<string, unknown> = {};
      if (!same(h.subnets, want.subnets)) change.subnets = want.subnets;
      if (!same(h.routes ?? [], want.routes)) change.routes = want.routes;
      const hg = h.externalGateway;
      const wg = want.externalGateway;
      if (wg === undefined ? hg !== undefined : hg === undefined || hg.network !== wg.network || (wg.ip !== undefined && wg.ip !== hg.ip) || hg.host !== wg.host) {
        change.externalGateway = wg ?? null;
      }
      if (Object.keys(change).length > 0) updates.push({ verb: 'update', kind: 'routers', name: want.name, index: i, body: change, text: `~ router ${want.name}: ${Object.keys(change).join(', ')}` });
    });
    leftOut('routers', current.routers, desired.routers);
  }
  if (desired.ports) {
    const have = new Map(current.ports.map((p) => [p.name, p]));
    desired.ports.forEach((want, i) => {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'ports', name: want.name, index: i, body: want, text: `+ port ${want.name} (${portNetworks(want)} on ${want.host}${want.ips ? `, ${want.ips.join(',')}` : ''})` });
        return;
      }
      immutable('ports', i, 'network', h.network ?? null, want.network ?? null);
      immutable('ports', i, 'vlans', (h.vlans ?? []).map((v) => [v.vid, v.network]), (want.vlans ?? []).map((v) => [v.vid, v.network]));
      immutable('ports', i, 'mac', h.mac, want.mac);
      const change: Record<string, unknown> = {};
      const said: string[] = [];
      if (h.host !== want.host) {
        change.host = want.host;
        said.push(`host ${h.host} -> ${want.host}`);
      }
      if (want.ips && !same(h.ips, want.ips)) {
        change.ips = want.ips;
        said.push(`ips ${h.ips.join(',') || '-'} -> ${want.ips.join(',')}`);
      }
      if (want.backend && !same(h.backend, want.backend)) {
        change.backend = want.backend;
        said.push('backend');
      }
      if (want.portSecurity !== undefined && want.portSecurity !== (h.portSecurity ?? true)) {
        change.portSecurity = want.portSecurity;
        said.push(`port security ${want.portSecurity ? 'on' : 'off'}`);
      }
      if (want.allowedAddresses !== undefined && !same(h.allowedAddresses ?? [], want.allowedAddresses)) {
        change.allowedAddresses = want.allowedAddresses;
        said.push('allowed addresses');
      }
      if (want.allowedEtherTypes !== undefined && !same(h.allowedEtherTypes ?? [], want.allowedEtherTypes)) {
        change.allowedEtherTypes = want.allowedEtherTypes;
        said.push(`allowed EtherTypes ${(h.allowedEtherTypes ?? []).join(',') || '-'} -> ${want.allowedEtherTypes.join(',') || '-'}`);
      }
      if (want.securityGroups !== undefined && !same(h.securityGroups ?? null, want.securityGroups)) {
        change.securityGroups = want.securityGroups;
        said.push(`security groups ${(h.securityGroups ?? []).join(',') || '-'} -> ${want.securityGroups.join(',') || '-'}`);
      }
      if (said.length > 0) updates.push({ verb: 'update', kind: 'ports', name: want.name, index: i, body: change, text: `~ port ${want.name}: ${said.join('; ')}` });
    });
    leftOut('ports', current.ports, desired.ports);
  }
  // Floating addresses and forwards do not change in place: a different one is a new one.
  const whole = <T extends { name: string }>(kind: 'floatingIps' | 'portForwards', have: T[], want: Array<Record<string, unknown> & { name: string }> | undefined, text: (w: Record<string, unknown>) => string) => {
    if (!want) return;
    const byName = new Map(have.map((h) => [h.name, h as unknown as Record<string, unknown>]));
    want.forEach((w, i) => {
      const h = byName.get(w.name);
      if (!h) {
        creates.push({ verb: 'create', kind, name: w.name, index: i, body: w, text: `+ ${ONE[kind]} ${w.name} (${text(w)})` });
        return;
      }
      for (const [field, value] of Object.entries(w)) immutable(kind, i, field, h[field], value);
    });
    leftOut(kind, have, want);
  };
  if (desired.securityGroups) {
    const have = new Map(current.securityGroups.map((g) => [g.name, g]));
    const bare = (rules: Array<Record<string, unknown>>) => rules.map(({ id: _, ...r }) => r);
    desired.securityGroups.forEach((want, i) => {
      const h = have.get(want.name);
      if (!h) {
        // Made bare with the creates, its rules set with the updates: by then every group
        // the file makes exists, so rules may name each other.
        creates.push({ verb: 'create', kind: 'securityGroups', name: want.name, index: i, body: { ...want, rules: [] }, text: `+ security-group ${want.name}` });
        if (want.rules.length > 0) updates.push({ verb: 'update', kind: 'securityGroups', name: want.name, index: i, body: { rules: want.rules }, text: `  its rules: ${want.rules.length}` });
        return;
      }
      if (!same(bare(h.rules), want.rules)) {
        updates.push({ verb: 'update', kind: 'securityGroups', name: want.name, index: i, body: { rules: want.rules }, text: `~ security-group ${want.name}: rules (${h.rules.length} -> ${want.rules.length})` });
      }
    });
    leftOut('securityGroups', current.securityGroups, desired.securityGroups);
  }
  whole('floatingIps', current.floatingIps, desired.floatingIps, (w) => `${w.address ?? 'an address'} of ${w.network} for port ${w.port}`);
  whole('portForwards', current.portForwards, desired.portForwards, (w) => `${w.protocol}/${w.externalPort} of router ${w.router} to port ${w.port}`);
  problems.push(...references(current, desired, new Set(deletes.map((d) => `${d.kind}/${d.name}`))));
  if (problems.length > 0) {
    throw new ApiError(422, 'Unprocessable', problems.map((p) => `${p.field}: ${p.message}`).join('; '), problems);
  }
  creates.sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
  deletes.sort((a, b) => ORDER[b.kind] - ORDER[a.kind]);
  return { actions: [...creates, ...updates, ...deletes], kept };
}

/** Every network and host a file's subnets and ports name must exist after the apply. */
function references(current: Current, desired: ApplyResources, deleted: Set<string>): Problem[] {
  const problems: Problem[] = [];
  const networks = new Set([
    ...current.networks.map((n) => n.name).filter((n) => !deleted.has(`networks/${n}`)),
    ...(desired.networks ?? []).map((n) => n.name),
  ]);
  const hosts = new Set(current.hosts.map((h) => h.name));
  const network = (kind: Kind, i: number, name: string) => {
    if (networks.has(name)) return;
    const why = deleted.has(`networks/${name}`) ? 'is deleted by this apply' : 'is neither in the file nor on the controller';
    problems.push({ field: `${kind}[${i}].network`, message: `network ${name} ${why}` });
  };
  (desired.subnets ?? []).forEach((s, i) => network('subnets', i, s.network));
  const subnets = new Set([
    ...current.subnets.map((s) => s.name).filter((s) => !deleted.has(`subnets/${s}`)),
    ...(desired.subnets ?? []).map((s) => s.name),
  ]);
  (desired.routers ?? []).forEach((r, i) => r.subnets.forEach((s, k) => {
    if (!subnets.has(s)) problems.push({ field: `routers[${i}].subnets[${k}]`, message: `subnet ${s} ${deleted.has(`subnets/${s}`) ? 'is deleted by this apply' : 'is neither in the file nor on the controller'}` });
  }));
  (desired.ports ?? []).forEach((p, i) => {
    if (p.network !== undefined) network('ports', i, p.network);
    (p.vlans ?? []).forEach((v, k) => {
      if (!networks.has(v.network)) problems.push({ field: `ports[${i}].vlans[${k}].network`, message: `network ${v.network} is neither in the file nor on the controller` });
    });
    if (!hosts.has(p.host)) {
      problems.push({ field: `ports[${i}].host`, message: `there is no host named ${p.host}${hosts.size ? ` (hosts: ${[...hosts].sort().join(', ')})` : ''}; register it with weft host create` });
    }
  });
  return problems;
}

/** How the plan names a port's networks: `blue`, or `trunk 10:blue,20:red`. */
function portNetworks(p: { network?: string; vlans?: Array<{ vid: number; network: string }> }): string {
  if (!p.vlans) return p.network ?? '-';
  return `trunk ${p.vlans.map((v) => `${v.vid}:${v.network}`).join(',')}${p.network ? ` native ${p.network}` : ''}`;
}

export function planDigest(actions: Action[]): string {
  return createHash('sha256').update(JSON.stringify(actions.map((a) => [a.verb, a.kind, a.name, a.body ?? null]))).digest('hex');
}

/**
 * What the controller holds, as an apply file (`weft export`): each resource with the fields
 * a file gives, and none of what the controller adds (a rule's id, a gateway's MAC), so that
 * applying it plans nothing. Hosts are not in it: they are registered (`weft host create`).
 */
export function exportResources(current: Current): ApplyResources {
  const opt = <K extends string, V>(key: K, value: V | undefined) => (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;
  return {
    networks: current.networks.map((n) => ({
      name: n.name, vni: n.vni, encapsulation: n.encapsulation, ...opt('encryption', n.encryption), ...opt('mtu', n.mtu), ...opt('provider', n.provider), ...opt('ipv6', n.ipv6),
    })),
    subnets: current.subnets.map((s) => ({
      name: s.name, network: s.network, cidr: s.cidr, gateway: s.gateway, allocation: s.allocation, dns: s.dns, ...opt('domain', s.domain), dhcp: s.dhcp ?? true,
    })),
    routers: current.routers.map((r) => ({
      name: r.name, subnets: r.subnets, routes: r.routes ?? [],
      ...opt('externalGateway', r.externalGateway && { network: r.externalGateway.network, ip: r.externalGateway.ip, ...opt('host', r.externalGateway.host) }),
    })),
    securityGroups: current.securityGroups.map((g) => ({
      name: g.name, ...opt('description', g.description), rules: g.rules.map(({ id: _id, ...rule }) => rule),
    })),
    ports: current.ports.map((p) => ({
      name: p.name, ...opt('network', p.network), ...opt('vlans', p.vlans), host: p.host, mac: p.mac,
      // A trunk without a native network has its addresses in its VLANs only.
      ...(p.network === undefined ? {} : { ips: p.ips }),
      backend: p.backend, portSecurity: p.portSecurity ?? true, allowedAddresses: p.allowedAddresses ?? [],
      ...opt('securityGroups', p.securityGroups), ...opt('connectionLimit', p.connectionLimit),
    })),
    floatingIps: current.floatingIps.map((f) => ({ name: f.name, network: f.network, address: f.address, port: f.port })),
    portForwards: current.portForwards.map((f) => ({ name: f.name, router: f.router, protocol: f.protocol, externalPort: f.externalPort, port: f.port, internalPort: f.internalPort })),
  };
}

async function readCurrent(service: NetworkService, turn: () => Promise<void> = async () => {}): Promise<Current> {
  const list = async <T>(kind: Parameters<NetworkService['list']>[0]) => {
    const all = await service.list<T>(kind);
    await turn();
    return all;
  };
  return {
    networks: await list<Network>('networks'),
    subnets: await list<Subnet>('subnets'),
    routers: await list<Router>('routers'),
    ports: await list<Port>('ports'),
    floatingIps: await list<FloatingIp>('floating-ips'),
    portForwards: await list<PortForward>('port-forwards'),
    securityGroups: await list<SecurityGroup>('security-groups'),
    hosts: await list<Host>('hosts'),
  };
}

/** How long an apply works before it lets the controller answer others (ours). */
const TURN_MS = 10;

/**
 * A function to call between steps of a long piece of work: once TURN_MS have passed since
 * the last turn, it waits for the event loop to run what is waiting (requests, watch pings),
 * so that a `weft apply` of thousands of ports never holds the controller for long.
 */
export function turns(ms = TURN_MS): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < ms) return;
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

export class Applier {
  constructor(
    private readonly store: Store,
    private readonly serviceOptions: ServiceOptions = {},
  ) {}

  /** Everything as an apply file, as it was at one revision (read again when a change
   * landed while it was read). */
  async export(): Promise<ApplyResources & { revision: number }> {
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const revision = await this.store.revision();
      const current = await readCurrent(new NetworkService(this.store, this.serviceOptions));
      if ((await this.store.revision()) === revision) return { ...exportResources(current), revision };
    }
    throw new ApiError(409, 'Conflict', 'the controller\'s state kept changing during the export; try again');
  }

  async apply(req: ApplyRequest): Promise<ApplyResult> {
    for (let attempt = 0; ; attempt++) {
      const turn = turns();
      const tx = await Transaction.begin(this.store);
      const service = new NetworkService(tx, this.serviceOptions);
      const current = await readCurrent(service, turn);
      const { actions, kept } = plan(current, req.resources, req.prune);
      await turn();
      const digest = planDigest(actions);
      if (req.planDigest !== undefined && req.planDigest !== digest) {
        throw new ApiError(409, 'Conflict', 'the controller changed since this plan was made, and the plan would now differ; plan again');
      }
      for (const a of actions) {
        await this.carryOut(service, a);
        await turn();
      }
      if (req.dryRun || actions.length === 0) return { actions, kept, planDigest: digest, applied: false, revision: tx.baseRevision };
      try {
        return { actions, kept, planDigest: digest, applied: true, revision: await tx.finish() };
      } catch (err) {
        if (!(err instanceof TransactionConflict) || attempt + 1 >= RETRIES) {
          if (err instanceof TransactionConflict) throw new ApiError(409, 'Conflict', `the controller's state kept changing during the apply (${err.key}); try again`);
          throw err;
        }
        // Another writer got there first: plan again on what is there now.
      }
    }
  }

  /** One action through the service's own rules; a refusal names the resource and field. */
  private async carryOut(s: NetworkService, a: Action): Promise<void> {
    try {
      if (a.kind === 'networks') {
        if (a.verb === 'create') await s.createNetwork(networkCreate.parse(a.body));
        else if (a.verb === 'update') await s.updateNetwork(a.name, a.body as never);
        else await s.deleteNetwork(a.name);
      } else if (a.kind === 'subnets') {
        if (a.verb === 'create') await s.createSubnet(subnetCreate.parse(a.body));
        else if (a.verb === 'update') await s.updateSubnet(a.name, a.body as never);
        else await s.deleteSubnet(a.name);
      } else if (a.kind === 'routers') {
        if (a.verb === 'create') await s.createRouter(routerCreate.parse(a.body));
        else if (a.verb === 'update') await s.updateRouter(a.name, a.body as never);
        else await s.deleteRouter(a.name);
      } else if (a.kind === 'securityGroups') {
        if (a.verb === 'create') await s.createSecurityGroup(securityGroupCreate.parse(a.body));
        else if (a.verb === 'update') await s.setSecurityGroupRules(a.name, (a.body as { rules: never }).rules);
        else await s.deleteSecurityGroup(a.name);
      } else if (a.kind === 'floatingIps') {
        if (a.verb === 'create') await s.createFloatingIp(floatingIpCreate.parse(a.body));
        else await s.deleteFloatingIp(a.name);
      } else if (a.kind === 'portForwards') {
        if (a.verb === 'create') await s.createPortForward(portForwardCreate.parse(a.body));
        else await s.deletePortForward(a.name);
      } else if (a.verb === 'create') {
        await s.createPort(portCreate.parse(a.body));
      } else if (a.verb === 'update') {
        await s.updatePort(a.name, a.body as never);
      } else {
        await s.deletePort(a.name);
      }
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const at = a.index === undefined ? `${a.kind}/${a.name}` : `${a.kind}[${a.index}]`;
      throw new ApiError(err.status, err.title, `${ONE[a.kind]} ${a.name}: ${err.message}; nothing was changed`,
        err.errors.length ? err.errors.map((e) => ({ field: `${at}.${e.field}`, message: e.message })) : [{ field: at, message: err.message }]);
    }
  }
}
