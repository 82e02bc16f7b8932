/**
 * `weft apply -f FILE`: make the controller match a declarative YAML file.
 *
 *   networks: [{ name: blue, vni: 100 }]
 *   subnets:  [{ name: blue-v4, network: blue, cidr: 10.10.0.0/24 }]
 *   ports:    [{ name: vm1, network: blue, host: h1, ips: [10.10.0.5] }]
 *
 * For each kind the file lists, what the file does not name is deleted; kinds it leaves out
 * are left alone. The plan is printed before anything changes. Creates go networks first,
 * deletes ports first, so each step is valid on its own.
 */
import { z } from 'zod';
import { networkCreate, portCreate, subnetCreate, type Network, type Port, type Subnet } from '../controller/model.js';
import { ConfigError, readYamlFile } from '../agent/config.js';
import type { ApiClient } from './api-client.js';

const fileSchema = z.object({
  networks: z.array(networkCreate).optional(),
  subnets: z.array(subnetCreate).optional(),
  ports: z.array(portCreate.extend({ backend: portCreate.shape.backend.optional() })).optional(),
}).strict();

export type ApplyFile = z.infer<typeof fileSchema>;
type Kind = 'networks' | 'subnets' | 'ports';

export interface Action {
  verb: 'create' | 'update' | 'delete';
  kind: Kind;
  name: string;
  body?: unknown;
  /** What a person reads in the plan. */
  text: string;
}

export function readApplyFile(file: string): ApplyFile {
  const parsed = fileSchema.safeParse(readYamlFile(file));
  if (!parsed.success) {
    throw new ConfigError(file, parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(top level)'}: ${i.message}`));
  }
  return parsed.data;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The actions that turn `current` into `desired`; throws for changes that need a replace. */
export function plan(current: { networks: Network[]; subnets: Subnet[]; ports: Port[] }, desired: ApplyFile, file: string): Action[] {
  const problems: string[] = [];
  const creates: Action[] = [];
  const updates: Action[] = [];
  const deletes: Action[] = [];
  const immutable = (kind: string, name: string, field: string, from: unknown, to: unknown) => {
    if (to !== undefined && !same(from, to)) problems.push(`${kind} ${name}: ${field} cannot change in place (${JSON.stringify(from)} -> ${JSON.stringify(to)}); delete it first`);
  };

  if (desired.networks) {
    const have = new Map(current.networks.map((n) => [n.name, n]));
    for (const want of desired.networks) {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'networks', name: want.name, body: want, text: `+ network ${want.name} (${want.vni !== undefined ? `vni ${want.vni}` : 'vni allocated'}, ${want.encapsulation})` });
        continue;
      }
      immutable('network', want.name, 'vni', h.vni, want.vni);
      immutable('network', want.name, 'encapsulation', h.encapsulation, want.encapsulation);
      if ((h.mtu ?? null) !== (want.mtu ?? null)) updates.push({ verb: 'update', kind: 'networks', name: want.name, body: { mtu: want.mtu ?? null }, text: `~ network ${want.name}: mtu ${h.mtu ?? 'auto'} -> ${want.mtu ?? 'auto'}` });
    }
    const named = new Set(desired.networks.map((n) => n.name));
    for (const h of current.networks) if (!named.has(h.name)) deletes.push({ verb: 'delete', kind: 'networks', name: h.name, text: `- network ${h.name}` });
  }
  if (desired.subnets) {
    const have = new Map(current.subnets.map((s) => [s.name, s]));
    for (const want of desired.subnets) {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'subnets', name: want.name, body: want, text: `+ subnet ${want.name} (${want.cidr} on ${want.network})` });
        continue;
      }
      immutable('subnet', want.name, 'network', h.network, want.network);
      immutable('subnet', want.name, 'cidr', h.cidr, want.cidr);
      immutable('subnet', want.name, 'gateway', h.gateway, want.gateway);
      const change: Record<string, unknown> = {};
      if (want.allocation && !same(h.allocation, want.allocation)) change.allocation = want.allocation;
      if (!same(h.dns, want.dns)) change.dns = want.dns;
      if (Object.keys(change).length > 0) updates.push({ verb: 'update', kind: 'subnets', name: want.name, body: change, text: `~ subnet ${want.name}: ${Object.keys(change).join(', ')}` });
    }
    const named = new Set(desired.subnets.map((s) => s.name));
    for (const h of current.subnets) if (!named.has(h.name)) deletes.push({ verb: 'delete', kind: 'subnets', name: h.name, text: `- subnet ${h.name}` });
  }
  if (desired.ports) {
    const have = new Map(current.ports.map((p) => [p.name, p]));
    for (const want of desired.ports) {
      const h = have.get(want.name);
      if (!h) {
        creates.push({ verb: 'create', kind: 'ports', name: want.name, body: want, text: `+ port ${want.name} (${want.network} on ${want.host}${want.ips ? `, ${want.ips.join(',')}` : ''})` });
        continue;
      }
      immutable('port', want.name, 'network', h.network, want.network);
      immutable('port', want.name, 'mac', h.mac, want.mac);
      const change: Record<string, unknown> = {};
      const said: string[] = [];
      if (h.host !== want.host) { change.host = want.host; said.push(`host ${h.host} -> ${want.host}`); }
      if (want.ips && !same(h.ips, want.ips)) { change.ips = want.ips; said.push(`ips ${h.ips.join(',') || '-'} -> ${want.ips.join(',')}`); }
      if (want.backend && !same(h.backend, want.backend)) { change.backend = want.backend; said.push('backend'); }
      if (said.length > 0) updates.push({ verb: 'update', kind: 'ports', name: want.name, body: change, text: `~ port ${want.name}: ${said.join('; ')}` });
    }
    const named = new Set(desired.ports.map((p) => p.name));
    for (const h of current.ports) if (!named.has(h.name)) deletes.push({ verb: 'delete', kind: 'ports', name: h.name, text: `- port ${h.name}` });
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  const order: Record<Kind, number> = { networks: 0, subnets: 1, ports: 2 };
  creates.sort((a, b) => order[a.kind] - order[b.kind]);
  deletes.sort((a, b) => order[b.kind] - order[a.kind]);
  return [...creates, ...updates, ...deletes];
}

export async function apply(client: ApiClient, file: string, dryRun: boolean, say: (line: string) => void): Promise<number> {
  const desired = readApplyFile(file);
  const [networks, subnets, ports] = await Promise.all([
    client.call<Network[]>('GET', '/v1/networks'), client.call<Subnet[]>('GET', '/v1/subnets'), client.call<Port[]>('GET', '/v1/ports'),
  ]);
  const actions = plan({ networks, subnets, ports }, desired, file);
  if (actions.length === 0) {
    say('nothing to change');
    return 0;
  }
  say(`plan: ${actions.length} change(s)`);
  for (const a of actions) say(`  ${a.text}`);
  if (dryRun) return actions.length;
  for (const a of actions) {
    const path = `/v1/${a.kind}${a.verb === 'create' ? '' : `/${encodeURIComponent(a.name)}`}`;
    await client.call(a.verb === 'create' ? 'POST' : a.verb === 'update' ? 'PATCH' : 'DELETE', path, a.body);
  }
  say('applied');
  return actions.length;
}
