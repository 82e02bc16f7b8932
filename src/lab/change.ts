/**
 * `weft lab up FILE` on a lab that is up already: the difference between the lab as it was
 * built (its state's plan) and the file, made while the lab runs.
 *
 * What can change live: VMs (added, removed; a changed VM is removed and made again),
 * networks added or removed, and (labs with a controller) subnets, routers, security
 * groups, floating addresses and port forwards, all through one `POST /v1/apply` of the
 * lab's resources. What cannot (hosts, the underlay, the controller, a network's own
 * settings, a linux-datapath host's VMs, QEMU VMs) is refused before anything is touched,
 * in one sentence that names it.
 *
 * The steps, each leaving a state that `weft lab down` cleans up and that a second
 * `lab up FILE` carries on from:
 *   1. plan: the VMs and resources that differ; with a controller, a dry run of the apply
 *   2. removals: their ports deleted at the controller (or their agents' config reloaded),
 *      waited for at their agents; their namespaces removed; the state without them
 *   3. additions: their namespaces, then the apply (or reload); the state says the new plan
 *   4. the agents have attached the new ports; routes and DHCP leases as at build time
 * A namespace of the lab that no state names (left by a step 3 that failed) is removed
 * before its VM is made again.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { formatMac, parseMac } from '../wire/bytes.js';
import { ONE, type ApplyResources, type Kind } from '../controller/apply.js';
import { ApiClientError, type ApiClient } from '../controller/client.js';
import type { LabHost, LabPlan, LabVm } from './topology.js';
import {
  agentConfig, agentConfigFile, buildVm, dhcpClient, labApi, labDir, LabError, labResources, listNetns, processAlive, readLabState,
  removeVm, setDefaultRoute, vmRouted, waitReady, waysIn, writeState, type LabState,
} from './lab.js';

/** The resource kinds a lab makes, in the order their lines are printed. */
const KINDS: Kind[] = ['networks', 'subnets', 'securityGroups', 'routers', 'portForwards'];

/** What differs between the lab as built and the file. */
export interface Difference {
  removed: LabVm[];
  added: LabVm[];
  /** VMs in both, made again: name -> the fields that differ. */
  changed: Map<string, string[]>;
  /** Resources (not ports or floating addresses: those are the VMs') by kind. */
  resources: Array<{ verb: '+' | '-' | '~'; kind: Kind; name: string }>;
}

/** A change of a running lab, planned: what `applyChange` carries out. */
export interface LabChange {
  state: LabState;
  /** The lab as it was built. */
  old: LabPlan;
  /** The file, planned anew; its VMs keep the MACs they were built with. */
  plan: LabPlan;
  difference: Difference;
}

/**
 * What it takes to make running lab `plan.name` match `plan` (its file, planned anew):
 * null when nothing differs. Throws LabError, having touched nothing, at a change that
 * needs a rebuild, saying what changed.
 */
export function planChange(plan: LabPlan): LabChange | null {
  const state = readLabState(plan.name);
  if (!state) throw new LabError(`there is no lab ${plan.name}`);
  if (!state.upAt) throw new LabError(`lab ${plan.name} is not built whole (its lab up failed, or is still running): weft lab down ${plan.name}, then lab up again`);
  const old = revive(state.plan);
  const d = diffPlans(old, plan);
  return d && { state, old, plan, difference: d };
}

/**
 * What differs between lab plan `old` (as built) and `plan` (its file now), or null; throws
 * LabError at a change that needs a rebuild. Gives `plan`'s VMs their MACs: those `old`
 * has keep theirs.
 */
export function diffPlans(old: LabPlan, plan: LabPlan): Difference | null {
  keepMacs(old, plan);
  const rebuild = needsRebuild(old, plan);
  if (rebuild.length > 0) {
    throw new LabError(`lab ${plan.name} is up, and ${rebuild.join(', and ')}, which cannot change while it runs: run weft lab down ${plan.name} first`);
  }
  const d = difference(old, plan);
  return d.removed.length + d.added.length + d.resources.length === 0 ? null : d;
}

/**
 * Carries out a planned change; `log` gets a line per thing done (`- vm red2 on h2`,
 * `+ vm blue3 on h2: 10.10.0.3/24 on blue`). With a controller, the controller checks the
 * whole change (a dry run) before anything is touched.
 */
export async function applyChange(change: LabChange, log: (line: string) => void = () => {}): Promise<void> {
  const unlock = lock(change.plan.name);
  try {
    // Planned before the lock was taken: another change may have run meanwhile.
    if (JSON.stringify(readLabState(change.plan.name)) !== JSON.stringify(change.state)) {
      throw new LabError(`lab ${change.plan.name} changed while this change was planned (another lab up?): nothing done; run lab up again`);
    }
    await carryOut(change.state, change.old, change.plan, change.difference, log);
  } finally {
    unlock();
  }
}

async function carryOut(state: LabState, old: LabPlan, plan: LabPlan, d: Difference, log: (line: string) => void): Promise<void> {
  const api = plan.controller ? labApi(plan) : null;
  const gone = new Set(d.removed.map((v) => v.name));
  // Ports, floating addresses and forwards do not change in place: a changed one goes
  // with the removals and comes back with the additions.
  const oldRes = plan.controller ? labResources(old) : null;
  const newRes = plan.controller ? labResources(plan) : null;
  const replaced = {
    ports: gone,
    floatingIps: changedNames(oldRes?.floatingIps, newRes?.floatingIps),
    portForwards: changedNames(oldRes?.portForwards, newRes?.portForwards),
  };
  let current: ApplyResources | null = null;
  let desired: ApplyResources | null = null;
  if (api) {
    current = await exported(api, plan.name);
    desired = merge(current, oldRes!, newRes!);
    const clash = addressClash(desired, new Set(d.added.map((v) => v.name)));
    if (clash) throw new LabError(`lab ${plan.name} is up, and ${clash}; nothing was changed`);
    // Everything checked by the controller first: the whole change but the new ports
    // (which may take addresses the removed ones give back, and the controller creates
    // before it deletes) and those made again (which it would refuse to change in place).
    const unchecked = new Set([...gone, ...d.added.map((v) => v.name)]);
    await applied(api, plan.name, without(desired, { ...replaced, ports: unchecked }), true);
  }

  // Removals: let go at the agents first, then the namespaces go.
  const mid: LabPlan = { ...old, vms: old.vms.filter((v) => !gone.has(v.name)) };
  if (api && (replaced.ports.size + replaced.floatingIps.size + replaced.portForwards.size > 0)) {
    await applied(api, plan.name, without(current!, replaced), false);
  } else if (!api) {
    reloadAgents(state, mid);
  }
  if (d.removed.length > 0) {
    await waitReady(mid, state, [...gone], new Set(d.removed.map((v) => v.host.name)));
    for (const vm of d.removed) {
      removeVm(plan.name, vm);
      const why = d.changed.get(vm.name);
      log(`- vm ${vm.name} on ${vm.host.name}${why ? ` (changed: ${why.join(', ')}; made again)` : ''}`);
    }
  }
  state.plan = mid;
  writeState(state);

  // Additions: the namespaces (a leftover of a failed change first removed), then the
  // controller's apply or the agents' reload.
  for (const vm of d.added) {
    if (listNetns().includes(vm.netns)) removeVm(plan.name, vm);
    buildVm(plan, vm);
  }
  if (api) await applied(api, plan.name, desired!, false);
  else reloadAgents(state, plan);
  state.plan = plan;
  writeState(state);
  for (const r of d.resources) log(`${r.verb} ${ONE[r.kind]} ${r.name}`);
  await waitReady(plan, state, [], new Set(d.added.map((v) => v.host.name)));

  // An address a new VM took from a removed one is in the other VMs' neighbour caches with
  // the removed VM's MAC until it goes stale; they ask again at once instead.
  const added = new Set(d.added.map((v) => v.name));
  const taken = d.added.flatMap((v) => [...v.attachments.map((a) => a.ip), ...(v.ip6 ? [v.ip6] : [])]).map((a) => a.split('/')[0]);
  for (const vm of plan.vms.filter((v) => v.kind === 'netns' && !added.has(v.name))) {
    for (const address of taken) spawnSync('ip', ['-n', vm.netns, 'neigh', 'flush', 'to', address]);
  }

  // Routes and leases as `lab up` gives them; a kept VM whose network gained or lost its
  // router is given its new way out too.
  for (const vm of plan.vms.filter((v) => v.kind === 'netns')) {
    const before = old.vms.find((v) => v.name === vm.name);
    const isNew = added.has(vm.name);
    if (!isNew && before && vmRouted(old, before) === vmRouted(plan, vm)) continue;
    if (vm.dhcp) await dhcpClient(plan, vm);
    else setDefaultRoute(plan, vm, !isNew);
  }
  for (const vm of d.added) {
    log(`+ vm ${vm.name} on ${vm.host.name}: ${vm.attachments.map((a) => `${a.ip} on ${a.network}${a.vid ? ` (VLAN ${a.vid})` : ''}`).join(', ')}`);
  }
  if (api) {
    const routers = plan.routers.filter((r) => r.externalGateway && d.resources.some((x) => x.kind === 'routers' && x.name === r.name && x.verb !== '-'));
    for (const line of await waysIn(plan, d.added.filter((v) => v.floating), routers)) log(line);
  }
}

/** The state's plan with each VM's host the host object itself, as planLab makes it. */
function revive(plan: LabPlan): LabPlan {
  const hosts = new Map(plan.hosts.map((h) => [h.name, h]));
  for (const vm of plan.vms) vm.host = hosts.get(vm.host.name) ?? vm.host;
  return plan;
}

/**
 * A VM's MAC comes from its place in the file; a VM that stays keeps the one it was built
 * with (so that removing a VM above it changes nothing of it), and a new VM takes one above
 * every MAC the lab has.
 */
function keepMacs(old: LabPlan, plan: LabPlan): void {
  const had = new Map(old.vms.map((v) => [v.name, v.mac]));
  let next = Math.max(0x025746000000, ...old.vms.map((v) => parseMac(v.mac))) + 1;
  for (const vm of plan.vms) {
    const mac = had.get(vm.name);
    if (mac !== undefined) vm.mac = mac;
  }
  const taken = new Set(plan.vms.filter((v) => had.has(v.name)).map((v) => v.mac));
  for (const vm of plan.vms.filter((v) => !had.has(v.name))) {
    while (taken.has(formatMac(next))) next++;
    vm.mac = formatMac(next++);
  }
}

/** JSON with sorted keys: the same value, the same text. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
    : v));
}

/** What makes a VM what it is, for comparing (its MAC is the lab's choice, not the file's). */
function vmShape(vm: LabVm): Record<string, unknown> {
  const { host, mac: _mac, netns: _netns, name: _name, ...rest } = vm;
  return { ...rest, host: host.name };
}

function vmChanges(a: LabVm, b: LabVm): string[] {
  const x = vmShape(a);
  const y = vmShape(b);
  const fields = [...new Set([...Object.keys(x), ...Object.keys(y)])];
  return fields.filter((f) => canonical(x[f]) !== canonical(y[f])).map((f) => (f === 'attachments' ? 'network/ip' : f));
}

/** A network's settings (its hosts follow from the VMs). */
function networkShape(n: LabPlan['networks'][number]): Record<string, unknown> {
  const { hosts: _hosts, name: _name, ...rest } = n;
  return rest;
}

/** The parts of a lab that only a rebuild changes, each said as a clause; none: []. */
function needsRebuild(old: LabPlan, plan: LabPlan): string[] {
  const said: string[] = [];
  const hostsSaid: string[] = [];
  const oldHosts = new Map(old.hosts.map((h) => [h.name, h]));
  const newHosts = new Map(plan.hosts.map((h) => [h.name, h]));
  for (const h of plan.hosts) {
    const was = oldHosts.get(h.name);
    if (!was) hostsSaid.push(`${h.name} added`);
    else if (was.datapath !== h.datapath) hostsSaid.push(`${h.name}'s datapath ${was.datapath} -> ${h.datapath}`);
    else if (was.address !== h.address) hostsSaid.push(`${h.name}'s address ${was.address} -> ${h.address}`);
  }
  for (const h of old.hosts) if (!newHosts.has(h.name)) hostsSaid.push(`${h.name} removed`);
  if (hostsSaid.length > 0) said.push(`its hosts changed (${hostsSaid.join(', ')})`);
  const underlay: string[] = [];
  if (old.underlayPrefix !== plan.underlayPrefix || (old.controller && plan.controller && old.controller.address !== plan.controller.address)) underlay.push('subnet');
  if (old.underlayMtu !== plan.underlayMtu) underlay.push(`mtu ${old.underlayMtu} -> ${plan.underlayMtu}`);
  if (underlay.length > 0) said.push(`its underlay changed (${underlay.join(', ')})`);
  if (!old.controller !== !plan.controller) said.push(`its controller changed (${old.controller ? 'on -> off' : 'off -> on'})`);
  if (old.rekeyAfter !== plan.rekeyAfter) said.push(`its rekeyAfter changed (${old.rekeyAfter ?? 'default'} -> ${plan.rekeyAfter ?? 'default'})`);
  if (canonical(old.outside) !== canonical(plan.outside)) said.push(`its outside machine changed (${old.outside?.ip ?? 'none'} -> ${plan.outside?.ip ?? 'none'})`);
  else if (!old.physical !== !plan.physical) said.push(`its physical network changed (${old.physical ? 'no provider network is left on it' : 'a provider network needs one'})`);
  for (const n of plan.networks) {
    const was = old.networks.find((x) => x.name === n.name);
    if (!was) continue;
    const a = networkShape(was);
    const b = networkShape(n);
    const fields = Object.keys({ ...a, ...b }).filter((f) => canonical(a[f]) !== canonical(b[f]));
    const shown = (v: unknown) => (v === undefined ? 'none' : typeof v === 'string' ? v : canonical(v));
    if (fields.length > 0) said.push(`network ${n.name} changed (${fields.map((f) => `${f} ${shown(a[f])} -> ${shown(b[f])}`).join(', ')})`);
  }
  if (plan.controller) {
    const before = new Map((labResources(old).subnets ?? []).map((s) => [s.name, s]));
    for (const s of labResources(plan).subnets ?? []) {
      const was = before.get(s.name);
      if (was && was.cidr !== s.cidr) said.push(`network ${s.network}'s subnet changed (${was.cidr} -> ${s.cidr})`);
    }
  }
  // VMs a rebuild alone makes: QEMU guests, and those of a linux-datapath host (its bridges
  // and VXLAN flood lists are made once, at build time).
  const d = vmDifference(old, plan);
  for (const vm of [...d.removed, ...d.added]) {
    const verb = d.changed.has(vm.name) ? 'changed' : d.added.includes(vm) ? 'added' : 'removed';
    if (vm.kind === 'qemu') said.push(`QEMU VM ${vm.name} would be ${verb} (the lab boots its guests at build time only)`);
    else if (vm.host.datapath === 'linux') said.push(`VM ${vm.name} on host ${vm.host.name} would be ${verb} (a linux-datapath host is built once)`);
  }
  for (const n of plan.networks) {
    const was = old.networks.find((x) => x.name === n.name);
    const linux = [...new Set([...(was?.hosts ?? []), ...n.hosts])].filter((h) => newHosts.get(h)?.datapath === 'linux' || oldHosts.get(h)?.datapath === 'linux');
    if (was && linux.length > 0 && canonical([...was.hosts].sort()) !== canonical([...n.hosts].sort())) {
      said.push(`network ${n.name}'s hosts changed (${was.hosts.join(', ')} -> ${n.hosts.join(', ')}), and host ${linux[0]} runs the linux datapath, whose VXLAN flood list is made once`);
    }
  }
  return [...new Set(said)];
}

function vmDifference(old: LabPlan, plan: LabPlan): Pick<Difference, 'removed' | 'added' | 'changed'> {
  const changed = new Map<string, string[]>();
  const removed: LabVm[] = [];
  const added: LabVm[] = [];
  for (const vm of old.vms) {
    const now = plan.vms.find((v) => v.name === vm.name);
    if (!now) removed.push(vm);
    else {
      const fields = vmChanges(vm, now);
      if (fields.length > 0) {
        changed.set(vm.name, fields);
        removed.push(vm);
      }
    }
  }
  for (const vm of plan.vms) if (!old.vms.some((v) => v.name === vm.name) || changed.has(vm.name)) added.push(vm);
  return { removed, added, changed };
}

function difference(old: LabPlan, plan: LabPlan): Difference {
  // (An agent's config follows from the VMs and networks: it changes only with them.)
  const d: Difference = { ...vmDifference(old, plan), resources: [] };
  if (plan.controller) {
    const a = labResources(old);
    const b = labResources(plan);
    for (const kind of KINDS) {
      const before = new Map((a[kind] ?? []).map((r) => [r.name, canonical(r)]));
      const after = new Map((b[kind] ?? []).map((r) => [r.name, canonical(r)]));
      for (const [name, text] of after) {
        if (!before.has(name)) d.resources.push({ verb: '+', kind, name });
        else if (before.get(name) !== text) d.resources.push({ verb: '~', kind, name });
      }
      for (const name of before.keys()) if (!after.has(name)) d.resources.push({ verb: '-', kind, name });
    }
  } else {
    for (const n of plan.networks) if (!old.networks.some((x) => x.name === n.name)) d.resources.push({ verb: '+', kind: 'networks', name: n.name });
    for (const n of old.networks) if (!plan.networks.some((x) => x.name === n.name)) d.resources.push({ verb: '-', kind: 'networks', name: n.name });
  }
  return d;
}

function configText(plan: LabPlan, host: LabHost): string {
  return stringify(agentConfig(plan, host));
}

function readConfig(plan: LabPlan, host: LabHost): string {
  try {
    return readFileSync(agentConfigFile(plan, host), 'utf8');
  } catch {
    return '';
  }
}

/** Labs without a controller: each Weft host's agent config written as `plan` has it, and
 * the agents whose config changed told to read it again (SIGHUP). */
function reloadAgents(state: LabState, plan: LabPlan): void {
  for (const host of plan.hosts.filter((h) => h.datapath === 'weft')) {
    const text = configText(plan, host);
    if (text === readConfig(plan, host)) continue;
    const pid = state.agents[host.name];
    if (!processAlive(pid)) throw new LabError(`the agent of ${host.name} is not running (weft lab restart ${plan.name} ${host.name})`);
    writeFileSync(agentConfigFile(plan, host), text);
    process.kill(pid, 'SIGHUP');
  }
}

function changedNames(a: Array<{ name: string }> | undefined, b: Array<{ name: string }> | undefined): Set<string> {
  const after = new Map((b ?? []).map((r) => [r.name, canonical(r)]));
  return new Set((a ?? []).filter((r) => after.has(r.name) && after.get(r.name) !== canonical(r)).map((r) => r.name));
}

/** What the controller holds now, as an apply file. */
async function exported(api: ApiClient, lab: string): Promise<ApplyResources> {
  try {
    const { revision: _revision, ...resources } = await api.call<ApplyResources & { revision: number }>('GET', '/v1/export');
    return resources;
  } catch (err) {
    if (err instanceof ApiClientError && err.status !== 0) throw err;
    throw new LabError(`lab ${lab}'s controller does not answer (${(err as Error).message}); weft lab restart ${lab} controller starts it again; nothing was changed`);
  }
}

/**
 * The controller's resources as they should be: what the lab did not make kept as it is
 * (a port made with `weft port create`, the default group), what the lab made and the file
 * still has unchanged kept as the controller holds it (so that it plans nothing), the rest
 * as the file has it; what the lab made and the file no longer has is left out (pruned).
 */
function merge(current: ApplyResources, old: ApplyResources, next: ApplyResources): ApplyResources {
  const out: Record<string, Array<{ name: string }>> = {};
  for (const kind of Object.keys(next) as Kind[]) {
    const have = new Map((current[kind] ?? []).map((r) => [r.name, r]));
    const made = new Map((old[kind] ?? []).map((r) => [r.name, canonical(r)]));
    const wanted = new Set((next[kind] ?? []).map((r) => r.name));
    const theirs = (current[kind] ?? []).filter((r) => !made.has(r.name) && !wanted.has(r.name));
    const ours = (next[kind] ?? []).map((r) => (made.get(r.name) === canonical(r) && have.has(r.name) ? have.get(r.name)! : r));
    out[kind] = [...theirs, ...ours];
  }
  return out as unknown as ApplyResources;
}

/** The addresses a port has, as network/address. */
function portAddresses(p: NonNullable<ApplyResources['ports']>[number]): string[] {
  return [...(p.network ? (p.ips ?? []).map((ip) => `${p.network}/${ip}`) : []), ...(p.vlans ?? []).flatMap((v) => (v.ips ?? []).map((ip) => `${v.network}/${ip}`))];
}

/**
 * A new VM's address that another port keeps: said as a clause, or null. The controller's
 * dry run cannot see it (it leaves the new ports out: they may take what removed ones give
 * back, and it creates before it deletes), so it is looked for here, before anything is done.
 */
function addressClash(desired: ApplyResources, added: Set<string>): string | null {
  const owner = new Map<string, string>();
  for (const p of desired.ports ?? []) if (!added.has(p.name)) for (const a of portAddresses(p)) owner.set(a, p.name);
  for (const p of (desired.ports ?? []).filter((x) => added.has(x.name))) {
    for (const a of portAddresses(p)) {
      const other = owner.get(a);
      if (other !== undefined) return `VM ${p.name}'s address ${a.slice(a.indexOf('/') + 1)} on ${a.slice(0, a.indexOf('/'))} is port ${other}'s`;
    }
  }
  return null;
}

/** `res` without the named ports, floating addresses and forwards (nor those of the ports). */
function without(res: ApplyResources, drop: { ports: Set<string>; floatingIps: Set<string>; portForwards: Set<string> }): ApplyResources {
  return {
    ...res,
    ports: (res.ports ?? []).filter((p) => !drop.ports.has(p.name)),
    floatingIps: (res.floatingIps ?? []).filter((f) => !drop.floatingIps.has(f.name) && !drop.ports.has(f.port)),
    portForwards: (res.portForwards ?? []).filter((f) => !drop.portForwards.has(f.name) && !drop.ports.has(f.port)),
  };
}

/** Applies `resources` with prune (everything else the controller holds of those kinds
 * goes); a refusal becomes a LabError that says what was (not) changed. */
async function applied(api: ApiClient, lab: string, resources: ApplyResources, dryRun: boolean): Promise<void> {
  try {
    await api.call('POST', '/v1/apply', { resources, prune: true, dryRun });
  } catch (err) {
    if (!(err instanceof ApiClientError)) throw err;
    // The controller's own sentence, without its "nothing was changed" (said here for the lab).
    const why = err.message.split('\n')[0].replace(/; nothing was changed$/, '');
    throw new LabError(dryRun
      ? `lab ${lab} is up, and its controller refuses the change (${why}); nothing was changed`
      : `lab ${lab}: its controller refused the change halfway (${why}); weft lab up FILE tries again, weft lab down ${lab} removes all of it`);
  }
}

/** One change of a lab at a time: LAB/change.lock holds the pid of the one under way. */
function lock(lab: string): () => void {
  const file = join(labDir(lab), 'change.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (processAlive(pid)) throw new LabError(`lab ${lab} is being changed by another weft lab up (pid ${pid}); wait for it`);
      rmSync(file, { force: true }); // left by one that was killed
    }
  }
}
