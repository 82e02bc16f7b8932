/**
 * `weft lab`: builds a topology's hosts and VMs on this machine in network namespaces,
 * runs a Weft agent per host, and tears all of it down again.
 *
 * Layout (LAB = the lab's name):
 *   weft-LAB-underlay   a bridge br0: the physical network between hosts
 *   weft-LAB-HOST       a host: eth0 on the underlay; runs `weft agent` (or, with
 *                       datapath: linux, a kernel bridge and VXLAN device per network)
 *   weft-LAB-VM         a VM: eth0 is a TAP device the host's agent attaches to (a veth
 *                       pair on a linux host); trunk VMs get eth0.VID subinterfaces
 * State (pids, logs, agent configs and sockets) lives in /run/weft/lab/LAB.
 *
 * `down` finds what to remove by name as well as from the state file, so it cleans up after
 * a failed `up`, a killed agent or a lost state directory alike.
 */
import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { overlayMtu } from '../datapath/encapsulation.js';
import { formatIpv4, formatMac, parseIpv4, parseMac } from '../wire/bytes.js';
import type { LabHost, LabPlan } from './topology.js';
import type { ApplyResources } from '../controller/apply.js';
import { isLabName, LAB_NAME_RULE, labNetnsPrefix } from './topology.js';
import { own } from '../config/fields.js';
import { writePrivateFile } from '../io/private-file.js';
import { fetchStats } from '../cli/stats.js';
import { ApiClient } from '../controller/client.js';
import { ensureGuestImage, GUEST_CACHE, guestExec, qemuArgv, udhcpcScript, waitGuestReady, type GuestSpec } from './guest.js';

export const LAB_ROOT = '/run/weft/lab';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
const READY_TIMEOUT_MS = 15_000;

export class LabError extends Error {
  readonly code = 'ELAB';
}

export interface LabState {
  name: string;
  plan: LabPlan;
  /** Process ids of the agents (by host) and of the controller (as "controller"). */
  agents: Record<string, number>;
  /** How each of those was started, so that `restart` can start it again. */
  commands?: Record<string, string[]>;
  createdAt: string;
  /** When `lab up` finished building it: a lab without this is half built (or being built). */
  upAt?: string;
}

/**
 * The directory of lab `name`: the one place a lab's paths start from. Every name, from
 * the command line or from a state file, passes the topology's own name rule here, so no
 * name can reach outside LAB_ROOT ("../x") or into another lab's directory.
 */
export function labDir(name: string): string {
  if (!isLabName(name)) throw new LabError(`${JSON.stringify(name)} is not a lab name (${LAB_NAME_RULE})`);
  return join(LAB_ROOT, name);
}

export function agentSocket(lab: string, host: string): string {
  return join(labDir(lab), `${host}.sock`);
}

/** Where the lab's QEMU port sockets are: the controller is told LAB/qemu, and each host's
 * agent keeps its own in LAB/qemu/HOST (an agent binds only in its own directory). */
export function qemuSocketDir(lab: string, host?: string): string {
  return host === undefined ? join(labDir(lab), 'qemu') : join(labDir(lab), 'qemu', host);
}

/** Runs a command; throws LabError with its stderr when it fails. */
function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new LabError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new LabError(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

const ip = (...args: string[]) => sh('ip', args);
const inNs = (ns: string, ...args: string[]) => sh('ip', ['-n', ns, ...args]);

export function readLabState(name: string): LabState | null {
  const file = join(labDir(name), 'state.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LabState;
  } catch {
    return null;
  }
}

export function writeState(state: LabState): void {
  writeFileSync(join(labDir(state.name), 'state.json'), JSON.stringify(state, null, 2));
}

export function listNetns(): string[] {
  return ip('netns', 'list').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

export function listLabs(): string[] {
  const fromDirs = existsSync(LAB_ROOT) ? readdirSync(LAB_ROOT) : [];
  const fromNs = listNetns().filter((n) => n.startsWith('weft-') && n.endsWith('-underlay')).map((n) => n.slice(5, -'-underlay'.length));
  // Only what a lab can be named: anything else in LAB_ROOT is not a lab's.
  return [...new Set([...fromDirs, ...fromNs])].filter(isLabName).sort();
}

/** Builds the lab. On any failure (or Ctrl-C) it removes what it made and rethrows. */
export async function labUp(plan: LabPlan, log: (line: string) => void = () => {}): Promise<LabState> {
  if (process.getuid?.() !== 0) throw new LabError('the lab needs root: it creates network namespaces and TAP devices');
  if (readLabState(plan.name) || listNetns().some((n) => n.startsWith(labNetnsPrefix(plan.name)))) {
    throw new LabError(`lab ${plan.name} exists already: weft lab down ${plan.name}`);
  }
  const state: LabState = { name: plan.name, plan, agents: {}, createdAt: new Date().toISOString() };
  mkdirSync(labDir(plan.name), { recursive: true });
  writeState(state);
  const onSignal = () => {
    labDown(plan.name);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    buildUnderlay(plan);
    for (const host of plan.hosts) buildHost(plan, host);
    for (const vm of plan.vms.filter((v) => v.kind === 'netns')) buildVm(plan, vm);
    if (plan.outside) {
      buildOutside(plan);
      remember(state, 'outside', outsideArgv(plan));
    }
    if (plan.controller) {
      buildController(plan);
      remember(state, 'controller', controllerArgv(plan));
      await waitController(plan, state);
    }
    // Each host registered first, its join token in the host's own directory for its agent.
    if (plan.controller) await registerHosts(plan);
    for (const host of plan.hosts) {
      if (host.datapath === 'weft') {
        if (!plan.controller) writeFileSync(agentConfigFile(plan, host), stringify(agentConfig(plan, host)));
        remember(state, host.name, agentArgv(plan, host));
      } else {
        buildLinuxDatapath(plan, host);
      }
    }
    const outside = plan.controller ? await provision(plan) : [];
    await waitReady(plan, state);
    await startGuests(plan, state, log);
    for (const vm of plan.vms.filter((v) => v.dhcp && v.kind === 'netns')) await dhcpClient(plan, vm);
    for (const vm of plan.vms) {
      for (const a of vm.attachments) log(`${vm.name.padEnd(12)} ${a.ip.padEnd(18)} ${a.network}${a.vid ? ` (VLAN ${a.vid})` : ''} on ${vm.host.name}`);
    }
    if (plan.outside) log(`${'outside'.padEnd(12)} ${plan.outside.ip.padEnd(18)} a web server on the physical network`);
    for (const line of outside) log(line);
    state.upAt = new Date().toISOString();
    writeState(state);
    return state;
  } catch (err) {
    labDown(plan.name);
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

function buildUnderlay(plan: LabPlan): void {
  const ns = plan.underlayNetns;
  ip('netns', 'add', ns);
  inNs(ns, 'link', 'set', 'lo', 'up');
  inNs(ns, 'link', 'add', 'br0', 'type', 'bridge');
  inNs(ns, 'link', 'set', 'br0', 'mtu', String(plan.underlayMtu), 'up');
  if (plan.physical) {
    // The physical network of provider networks: a second switch, which the hosts reach
    // through an interface of their own (phys0), as a server's second NIC would.
    inNs(ns, 'link', 'add', plan.physical.bridge, 'type', 'bridge');
    inNs(ns, 'link', 'set', plan.physical.bridge, 'up');
  }
}

/** A machine on the physical network: an address on the bridge, and a web server. */
function buildOutside(plan: LabPlan): void {
  const o = plan.outside!;
  ip('netns', 'add', o.netns);
  inNs(o.netns, 'link', 'set', 'lo', 'up');
  inNs(o.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'out', 'netns', plan.underlayNetns);
  inNs(plan.underlayNetns, 'link', 'set', 'out', 'master', plan.physical!.bridge, 'up');
  inNs(o.netns, 'addr', 'add', o.ip, 'dev', 'eth0');
  inNs(o.netns, 'link', 'set', 'eth0', 'up');
  const root = join(labDir(plan.name), 'www');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'index.html'), 'hello from outside\n');
}

function outsideArgv(plan: LabPlan): string[] {
  return ['ip', 'netns', 'exec', plan.outside!.netns, 'busybox', 'httpd', '-f', '-p', '80', '-h', join(labDir(plan.name), 'www')];
}

function buildHost(plan: LabPlan, host: LabHost): void {
  const ns = host.netns;
  ip('netns', 'add', ns);
  inNs(ns, 'link', 'set', 'lo', 'up');
  const peer = `h${host.index}`;
  inNs(ns, 'link', 'add', 'eth0', 'mtu', String(plan.underlayMtu), 'type', 'veth', 'peer', 'name', peer, 'netns', plan.underlayNetns);
  inNs(plan.underlayNetns, 'link', 'set', peer, 'mtu', String(plan.underlayMtu), 'master', 'br0', 'up');
  inNs(ns, 'addr', 'add', `${host.address}/${plan.underlayPrefix}`, 'dev', 'eth0');
  inNs(ns, 'link', 'set', 'eth0', 'up');
  if (plan.physical && host.datapath === 'weft') {
    inNs(ns, 'link', 'add', 'phys0', 'type', 'veth', 'peer', 'name', `p${host.index}`, 'netns', plan.underlayNetns);
    inNs(plan.underlayNetns, 'link', 'set', `p${host.index}`, 'master', plan.physical.bridge, 'up');
    inNs(ns, 'link', 'set', 'phys0', 'up');
  }
  // The kernel's VXLAN leaves its VMs' inner TCP checksums for the NIC to finish; a veth
  // passes them on unfinished, and a userspace VTEP would receive them so. Have the kernel
  // finish them on a linux host's link, as its NIC would. (A Weft host keeps the offload:
  // its UDP segmentation offload needs it, as it would on a real NIC.)
  if (host.datapath === 'linux') sh('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'eth0', 'tx', 'off']);
}

function networkMtu(plan: LabPlan, network: string): number {
  const net = plan.networks.find((n) => n.name === network)!;
  if (net.provider) return net.mtu ?? 1500;
  return Math.min(overlayMtu(plan.underlayMtu, net.encapsulation, net.encrypted), net.mtu ?? Infinity);
}

export function buildVm(plan: LabPlan, vm: LabPlan['vms'][number]): void {
  const ns = vm.netns;
  ip('netns', 'add', ns);
  inNs(ns, 'link', 'set', 'lo', 'up');
  // A DHCP VM starts at Ethernet's 1500 and learns its network's MTU from DHCP (option 26).
  const mtu = vm.mtu ?? (vm.dhcp ? 1500 : Math.min(...vm.attachments.map((a) => networkMtu(plan, a.network))));
  if (vm.host.datapath === 'weft') {
    // A persistent TAP: it outlives an agent restart, and the agent attaches to it by name.
    inNs(ns, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap');
  } else {
    const peer = `v${plan.vms.indexOf(vm)}`;
    inNs(ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', vm.host.netns);
  }
  inNs(ns, 'link', 'set', 'eth0', 'address', vm.mac, 'mtu', String(mtu), 'up');
  const tagged = vm.attachments.filter((a) => a.vid !== null);
  if (tagged.length > 0 && !kernelHasVlans()) buildVdeTrunk(plan, vm, mtu);
  for (const a of vm.attachments) {
    let dev = 'eth0';
    if (a.vid !== null) {
      dev = `eth0.${a.vid}`;
      if (kernelHasVlans()) inNs(ns, 'link', 'add', 'link', 'eth0', 'name', dev, 'type', 'vlan', 'id', String(a.vid));
      inNs(ns, 'link', 'set', dev, 'mtu', String(mtu), 'up');
    }
    if (!vm.dhcp) inNs(ns, 'addr', 'add', a.ip, 'dev', dev);
  }
  if (vm.ip6) inNs(ns, '-6', 'addr', 'add', vm.ip6, 'dev', 'eth0', 'nodad');
}

let vlanSupport: boolean | undefined;
/** Whether this kernel can make 802.1Q VLAN devices (CONFIG_VLAN_8021Q). */
function kernelHasVlans(): boolean {
  if (vlanSupport === undefined) {
    const probe = `weft-probe-${process.pid}`;
    ip('netns', 'add', probe);
    try {
      vlanSupport = spawnSync('ip', ['-n', probe, 'link', 'add', 'link', 'lo', 'name', 'lo.1', 'type', 'vlan', 'id', '1']).status === 0;
    } finally {
      spawnSync('ip', ['netns', 'del', probe]);
    }
  }
  return vlanSupport;
}

/**
 * VLAN subinterfaces for a kernel without 802.1Q support: each eth0.VID is a TAP plugged
 * into a VDE switch (vde2, a userspace switch nobody here wrote) as an access port of VLAN
 * VID; the switch's trunk port is a TAP bridged by the kernel to eth0, the TAP the agent
 * attaches to. The VM's frames still leave it tagged, and its stack still sees them untagged.
 */
function buildVdeTrunk(plan: LabPlan, vm: LabPlan['vms'][number], mtu: number): void {
  const ns = vm.netns;
  if (spawnSync('sh', ['-c', 'command -v vde_switch && command -v vde_plug2tap']).status !== 0) {
    throw new LabError(`VM ${vm.name} needs VLAN subinterfaces, but this kernel has no 802.1Q support and vde2 is not installed (apt-get install vde2)`);
  }
  // Like 802.1Q subinterfaces, each eth0.VID has the VM's MAC (the one the controller knows
  // the port by); eth0 and the bridge get other addresses, or the bridge would keep frames
  // for that MAC to itself.
  const other = (n: number) => formatMac(parseMac(vm.mac) + n * 0x04_0000_0000_00);
  inNs(ns, 'link', 'set', 'eth0', 'address', other(1));
  inNs(ns, 'tuntap', 'add', 'dev', 'trunk0', 'mode', 'tap');
  inNs(ns, 'link', 'add', 'br0', 'type', 'bridge');
  inNs(ns, 'link', 'set', 'br0', 'address', other(2));
  for (const dev of ['eth0', 'trunk0']) inNs(ns, 'link', 'set', dev, 'master', 'br0', 'mtu', String(mtu + 4), 'up');
  inNs(ns, 'link', 'set', 'br0', 'up');
  const tagged = vm.attachments.filter((a) => a.vid !== null);
  const trunkPort = tagged.length + 1;
  const rc = [`port/create ${trunkPort}`];
  tagged.forEach((a, i) => {
    inNs(ns, 'tuntap', 'add', 'dev', `eth0.${a.vid}`, 'mode', 'tap');
    inNs(ns, 'link', 'set', `eth0.${a.vid}`, 'address', vm.mac);
    rc.push(`vlan/create ${a.vid}`, `port/create ${i + 1}`, `port/setvlan ${i + 1} ${a.vid}`, `vlan/addport ${a.vid} ${trunkPort}`);
  });
  const dir = labDir(plan.name);
  const sock = join(dir, `${vm.name}.vde`);
  writeFileSync(join(dir, `${vm.name}.vde.rc`), `${rc.join('\n')}\n`);
  sh('ip', ['netns', 'exec', ns, 'vde_switch', '-s', sock, '-f', join(dir, `${vm.name}.vde.rc`), '-d']);
  tagged.forEach((a, i) => sh('ip', ['netns', 'exec', ns, 'vde_plug2tap', '-s', sock, '-p', String(i + 1), '-d', `eth0.${a.vid}`]));
  sh('ip', ['netns', 'exec', ns, 'vde_plug2tap', '-s', sock, '-p', String(trunkPort), '-d', 'trunk0']);
}

/** The agent config of a Weft host: its networks, their other hosts, and its VMs' TAPs. */
export function agentConfig(plan: LabPlan, host: LabHost): object {
  const vms = plan.vms.filter((v) => v.host === host);
  const networks = plan.networks.filter((n) => n.hosts.includes(host.name));
  return {
    host: host.name,
    underlay: { address: host.address, mtu: plan.underlayMtu },
    networks: networks.map((n) => ({
      name: n.name,
      vni: n.vni,
      encapsulation: n.encapsulation,
      remotes: n.hosts.filter((h) => h !== host.name).map((h) => plan.hosts.find((x) => x.name === h)!.address),
    })),
    ports: vms.map((vm) => {
      const backend = { type: 'tap', device: 'eth0', netns: vm.netns, ...(vm.offload ? {} : { offload: false }) };
      if (vm.attachments.length === 1 && vm.attachments[0].vid === null) {
        return { name: vm.name, network: vm.attachments[0].network, backend };
      }
      return { name: vm.name, trunk: { vlans: Object.fromEntries(vm.attachments.map((a) => [String(a.vid), a.network])) }, backend };
    }),
  };
}

/** Starts a lab process in a namespace, detached, logging to LAB/NAME.log. */
function spawnInLab(lab: string, name: string, argv: string[]): number {
  const logFd = openSync(join(labDir(lab), `${name}.log`), 'a');
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', logFd, logFd] });
  child.unref();
  if (child.pid === undefined) throw new LabError(`could not start ${name}`);
  return child.pid;
}

function remember(state: LabState, name: string, argv: string[]): void {
  state.commands = { ...(state.commands ?? {}), [name]: argv };
  state.agents[name] = spawnInLab(state.name, name, argv);
  writeState(state);
}

/**
 * Kills a lab's agent (by host name) or its controller ("controller") with `signal`, and
 * starts it again as it was started: for trying what a restart does to traffic.
 */
export async function labRestart(lab: string, name: string, signal: NodeJS.Signals = 'SIGKILL', downMs = 0): Promise<number> {
  const state = readLabState(lab);
  // A name the user typed: only the state's own entries (not `constructor`'s).
  const argv = own(state?.commands, name);
  if (!state || !argv) throw new LabError(`lab ${lab} has no agent or controller named ${name}`);
  const pid = own(state.agents, name);
  if (pid !== undefined && processAlive(pid)) {
    process.kill(pid, signal);
    const deadline = Date.now() + 5000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
  remember(state, name, argv);
  return state.agents[name];
}

export function agentConfigFile(plan: LabPlan, host: LabHost): string {
  return join(labDir(plan.name), `${host.name}.yaml`);
}

/** How a host's agent is started: following the lab's controller, or from its config file. */
function agentArgv(plan: LabPlan, host: LabHost): string[] {
  const source = plan.controller
    ? ['--controller', `https://${plan.controller.address}:${CONTROLLER_PORT}`, '--join-token-file', join(hostDir(plan, host), 'join.token'),
      '--host', host.name, '--underlay-address', host.address, '--underlay-mtu', String(plan.underlayMtu),
      ...(plan.physical ? ['--physical-network', `${plan.physical.name}=phys0`] : [])]
    : ['--config', agentConfigFile(plan, host)];
  // Each host's tunnel key lives in the lab's directory, gone with the lab.
  const tunnels = ['--key-file', join(hostDir(plan, host), 'tunnel.key'), ...(plan.rekeyAfter ? ['--rekey-after', String(plan.rekeyAfter)] : [])];
  return ['ip', 'netns', 'exec', host.netns, process.execPath, CLI, 'agent', ...source, ...tunnels, '--socket', agentSocket(plan.name, host.name),
    '--qemu-socket-dir', qemuSocketDir(plan.name, host.name)];
}

export const CONTROLLER_PORT = 7411;

export function controllerSocket(lab: string): string {
  return join(labDir(lab), 'controller.sock');
}

/**
 * The lab controller's web console (and API), on this machine's loopback: the controller
 * listens inside the lab's namespaces, but also on a unix socket, which any namespace can
 * reach; each TCP connection to 127.0.0.1:port is joined to it. Returns the console's
 * address, with the admin token in its fragment (which the browser never sends).
 */
export async function labConsole(lab: string, port: number): Promise<{ server: Server; url: string }> {
  const socket = controllerSocket(lab);
  if (!existsSync(socket)) throw new LabError(`lab ${lab} has no controller (no ${socket})`);
  const token = readFileSync(join(labDir(lab), 'controller', 'admin.token'), 'utf8').trim();
  const server = createServer((client) => {
    const upstream = connect(socket);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const { port: bound } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${bound}/ui/#token=${token}` };
}

/** The controller runs in its own namespace on the underlay; the CLI reaches it over a
 * unix socket in the lab's directory, with the admin token from its data directory. */
function buildController(plan: LabPlan): void {
  const ctl = plan.controller!;
  ip('netns', 'add', ctl.netns);
  inNs(ctl.netns, 'link', 'set', 'lo', 'up');
  inNs(ctl.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ctl', 'netns', plan.underlayNetns);
  inNs(plan.underlayNetns, 'link', 'set', 'ctl', 'master', 'br0', 'up');
  inNs(ctl.netns, 'addr', 'add', `${ctl.address}/${plan.underlayPrefix}`, 'dev', 'eth0');
  inNs(ctl.netns, 'link', 'set', 'eth0', 'up');
}

function controllerArgv(plan: LabPlan): string[] {
  const ctl = plan.controller!;
  return ['ip', 'netns', 'exec', ctl.netns, process.execPath, CLI, 'controller', '--data-dir', join(labDir(plan.name), 'controller'),
    '--listen', `${ctl.address}:${CONTROLLER_PORT}`, '--socket', controllerSocket(plan.name), '--qemu-socket-dir', qemuSocketDir(plan.name)];
}

export function labApi(plan: LabPlan): ApiClient {
  return new ApiClient({ url: `unix:${controllerSocket(plan.name)}`, token: readFileSync(join(labDir(plan.name), 'controller', 'admin.token'), 'utf8').trim() });
}

async function waitController(plan: LabPlan, state: LabState): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!processAlive(state.agents.controller)) throw new LabError(`the controller exited:\n${tail(join(labDir(plan.name), 'controller.log'))}`);
    try {
      await labApi(plan).call('GET', '/healthz');
      return;
    } catch {
      if (Date.now() > deadline) throw new LabError(`the controller did not come up in ${READY_TIMEOUT_MS / 1000}s:\n${tail(join(labDir(plan.name), 'controller.log'))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}


/** Where a DHCP VM's client keeps the DNS servers it was given. */
export function vmResolvConf(lab: string, vm: string): string {
  return join(labDir(lab), `${vm}.resolv.conf`);
}

/** Runs busybox udhcpc in a DHCP VM until it has its lease (it then exits). */
export async function dhcpClient(plan: LabPlan, vm: LabPlan['vms'][number], extra: string[] = []): Promise<string> {
  const script = join(labDir(plan.name), 'udhcpc.sh');
  writeFileSync(script, udhcpcScript('"$WEFT_RESOLV"'), { mode: 0o755 });
  const r = spawnSync('ip', ['netns', 'exec', vm.netns, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-t', '5', '-T', '1', '-s', script, '-O', 'mtu', '-O', 'search', ...extra], {
    encoding: 'utf8', env: { ...process.env, WEFT_RESOLV: vmResolvConf(plan.name, vm.name) }, timeout: 30_000,
  });
  if (r.status !== 0) throw new LabError(`VM ${vm.name} got no DHCP lease: ${(r.stderr || r.stdout || String(r.error ?? '')).trim()}`);
  return r.stderr + r.stdout;
}

/** Creates the lab's hosts, networks, subnets and ports through the controller's API.
 * Every host is registered first, as an administrator would (`weft host create`): a port
 * names a registered host, and hosts with the linux datapath have no agent to join. */
/** Registers the lab's hosts with its controller, and gives each Weft host's agent its
 * join token (single use: the agent enrolls its identity key with it). */
async function registerHosts(plan: LabPlan): Promise<void> {
  const api = labApi(plan);
  for (const host of plan.hosts) {
    const body = { name: host.name, address: host.address, mtu: plan.underlayMtu, ...(plan.physical && host.datapath === 'weft' ? { physicalNetworks: { [plan.physical.name]: 'phys0' } } : {}) };
    const r = await api.call<{ joinToken: string }>('POST', '/v1/hosts', body);
    if (host.datapath !== 'weft') continue;
    mkdirSync(hostDir(plan, host), { recursive: true, mode: 0o700 });
    writePrivateFile(join(hostDir(plan, host), 'join.token'), `${r.joinToken}\n`, { what: 'the join token file' });
  }
}

/** A Weft host's files: its join token, identity and tunnel keys. */
function hostDir(plan: LabPlan, host: LabHost): string {
  return join(labDir(plan.name), 'hosts', host.name);
}

/**
 * Everything the lab makes through its controller, as one apply file (`POST /v1/apply`,
 * the same file `weft apply` reads): its networks, one subnet per network (from its first
 * VM's prefix; the gateway is the prefix's last host address, so that the topology may use
 * the first ones for VMs), routers, security groups, the VMs' ports, floating addresses and
 * port forwards. `lab up` applies it whole; a change to a running lab applies the difference.
 */
export function labResources(plan: LabPlan): ApplyResources {
  const networks: NonNullable<ApplyResources['networks']> = [];
  const subnets: NonNullable<ApplyResources['subnets']> = [];
  for (const net of plan.networks) {
    networks.push({
      name: net.name, vni: net.vni, encapsulation: net.encapsulation, encryption: net.encrypted ? 'noise' : 'none', ...(net.mtu ? { mtu: net.mtu } : {}),
      ...(net.provider ? { provider: { physicalNetwork: plan.physical!.name, ...net.provider } } : {}),
      ...(net.ipv6 ? { ipv6: { prefix: net.ipv6 } } : {}),
    } as NonNullable<ApplyResources['networks']>[number]);
    // A provider network the outside machine is on takes the outside's prefix.
    const vmIps = [...plan.vms.flatMap((vm) => vm.attachments.filter((a) => a.network === net.name).map((a) => a.ip)), ...(net.provider && plan.outside ? [plan.outside.ip] : [])];
    if (vmIps.length === 0) continue;
    const [address, len] = vmIps[0].split('/');
    const size = 2 ** (32 - Number(len));
    const first = parseIpv4(address) - (parseIpv4(address) % size);
    // On a provider network the outside machine is on, it is the gateway (as the physical
    // network's router).
    const outside = net.provider && plan.outside && plan.outside.ip.endsWith(`/${len}`) && parseIpv4(plan.outside.ip.split('/')[0]) - first < size ? plan.outside.ip.split('/')[0] : null;
    const gateway = outside ?? formatIpv4(first + size - 2);
    // Outside addresses go from the top: the router's and floating ones, after the VMs'.
    subnets.push({ name: `${net.name}-v4`, network: net.name, cidr: `${formatIpv4(first)}/${len}`, gateway, allocation: { start: formatIpv4(first + 2), end: formatIpv4(first + size - 3) }, dns: [], dhcp: true });
  }
  const routers = (plan.routers ?? []).map((r) => ({
    name: r.name, subnets: r.networks.map((n) => `${n}-v4`), routes: r.routes ?? [],
    ...(r.externalGateway ? { externalGateway: { network: r.externalGateway, ...(r.gatewayHost ? { host: r.gatewayHost } : {}) } } : {}),
  }));
  const ports = plan.vms.map((vm) => {
    const a = vm.attachments[0];
    const backend = vm.kind === 'qemu' ? { type: 'qemu' as const, socket: guestSpec(plan.name, vm).portSocket }
      : vm.host.datapath === 'weft' ? { type: 'tap' as const, device: 'eth0', netns: vm.netns, ...(vm.offload ? {} : { offload: false }) } : { type: 'memory' as const };
    const where = a.vid === null
      ? { network: a.network, ips: [a.ip.split('/')[0], ...(vm.ip6 ? [vm.ip6.split('/')[0]] : [])] }
      : { vlans: vm.attachments.map((t) => ({ vid: t.vid!, network: t.network, ips: [t.ip.split('/')[0]] })) };
    const allowedAddresses = vm.allowedAddresses.map((x) => {
      const [ip, mac] = x.split('=');
      return { ip, ...(mac ? { mac } : {}) };
    });
    return { name: vm.name, ...where, host: vm.host.name, mac: vm.mac, backend, portSecurity: vm.portSecurity, allowedAddresses, ...(vm.securityGroups ? { securityGroups: vm.securityGroups } : {}), ...(vm.connectionLimit ? { connectionLimit: vm.connectionLimit } : {}) };
  });
  // The way in: floating addresses and port forwards (the controller makes them after their ports).
  const floatingIps = plan.vms.filter((v) => v.floating).map((vm) => {
    const r = plan.routers.find((x) => x.externalGateway && x.networks.includes(vm.attachments[0].network))!;
    return { name: vm.name, network: r.externalGateway!, port: vm.name };
  });
  const portForwards = plan.routers.filter((x) => x.externalGateway).flatMap((r) => r.forwards.map((f) => ({
    name: `${r.name}-${f.protocol}-${f.port}`, router: r.name, protocol: f.protocol, externalPort: f.port, port: f.vm, ...(f.vmPort ? { internalPort: f.vmPort } : {}),
  })));
  return { securityGroups: (plan.securityGroups ?? []) as ApplyResources['securityGroups'], networks, subnets, routers, ports, floatingIps, portForwards } as ApplyResources;
}

/** Creates the lab's networks, subnets, routers, groups and ports through its controller,
 * in one apply; returns the lines that say the ways in (floating addresses, gateways). */
async function provision(plan: LabPlan): Promise<string[]> {
  await labApi(plan).call('POST', '/v1/apply', { resources: labResources(plan) });
  for (const vm of plan.vms) setDefaultRoute(plan, vm);
  return waysIn(plan, plan.vms.filter((v) => v.floating), plan.routers.filter((x) => x.externalGateway));
}

/** The lines that say how `vms`' floating addresses and `routers`' external gateways are
 * reached, as the controller gave them out. */
export async function waysIn(plan: LabPlan, vms: LabPlan['vms'], routers: LabPlan['routers']): Promise<string[]> {
  const api = labApi(plan);
  const lines: string[] = [];
  for (const vm of vms) {
    const f = await api.call<{ address: string; network: string }>('GET', `/v1/floating-ips/${vm.name}`);
    lines.push(`${vm.name.padEnd(12)} ${f.address.padEnd(18)} floating address on ${f.network}`);
  }
  for (const r of routers) {
    const got = await api.call<{ externalGateway: { ip: string } }>('GET', `/v1/routers/${r.name}`);
    lines.push(`${r.name.padEnd(12)} ${got.externalGateway.ip.padEnd(18)} external gateway on ${r.externalGateway}${r.forwards.map((f) => `, ${f.protocol}/${f.port} -> ${f.vm}:${f.vmPort ?? f.port}`).join('')}`);
  }
  return lines;
}

/** The gateway a VM with a static address on a routed network reaches the others through
 * (DHCP VMs learn it), or null: its subnet's last host address. */
function routedGateway(plan: LabPlan, vm: LabPlan['vms'][number]): string | null {
  const a = vm.attachments[0];
  if (vm.dhcp || vm.kind !== 'netns' || a.vid !== null || !(plan.routers ?? []).some((r) => r.networks.includes(a.network))) return null;
  const [address, len] = a.ip.split('/');
  const size = 2 ** (32 - Number(len));
  return formatIpv4(parseIpv4(address) - (parseIpv4(address) % size) + size - 2);
}

/** Gives a VM the default route its network's router calls for, or takes it away when its
 * network has no router (any more); a VM without either is left alone. */
export function setDefaultRoute(plan: LabPlan, vm: LabPlan['vms'][number], had = false): void {
  const gateway = routedGateway(plan, vm);
  if (gateway) inNs(vm.netns, 'route', 'replace', 'default', 'via', gateway, 'dev', 'eth0');
  else if (had) spawnSync('ip', ['-n', vm.netns, 'route', 'del', 'default']);
}

/** Whether a VM's network has a router in `plan` (its default route, or its DHCP lease's,
 * depends on that). */
export function vmRouted(plan: LabPlan, vm: LabPlan['vms'][number]): boolean {
  return (plan.routers ?? []).some((r) => r.networks.includes(vm.attachments[0].network));
}

/** The kernel's own overlay, as a reference peer: a bridge per network, a VXLAN device in
 * it with a flood entry per remote host (head-end replication), and the VMs' veths. */
function buildLinuxDatapath(plan: LabPlan, host: LabHost): void {
  const ns = host.netns;
  for (const net of plan.networks.filter((n) => n.hosts.includes(host.name))) {
    const br = `br${net.vni}`;
    const vx = `vx${net.vni}`;
    inNs(ns, 'link', 'add', br, 'type', 'bridge');
    // Learning on (the kernel default): remote MACs are learned from received frames.
    inNs(ns, 'link', 'add', vx, 'type', 'vxlan', 'id', String(net.vni), 'local', host.address, 'dstport', '4789');
    inNs(ns, 'link', 'set', vx, 'master', br, 'mtu', String(networkMtu(plan, net.name)), 'up');
    inNs(ns, 'link', 'set', br, 'up');
    for (const other of net.hosts.filter((h) => h !== host.name)) {
      const address = plan.hosts.find((h) => h.name === other)!.address;
      sh('bridge', ['-n', ns, 'fdb', 'append', '00:00:00:00:00:00', 'dev', vx, 'dst', address]);
    }
  }
  plan.vms.forEach((vm, i) => {
    if (vm.host !== host) return;
    const net = plan.networks.find((n) => n.name === vm.attachments[0].network)!;
    inNs(ns, 'link', 'set', `v${i}`, 'master', `br${net.vni}`, 'mtu', String(networkMtu(plan, net.name)), 'up');
  });
}

/**
 * Waits until each Weft host's agent has attached the ports of its VMs in `plan` and let go
 * of the ports named in `gone` (VMs taken out of a running lab); `hosts` limits the wait to
 * those hosts. Other ports (made with `weft port create`, say) are not looked at.
 */
export async function waitReady(plan: LabPlan, state: LabState, gone: string[] = [], hosts?: Set<string>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const host of plan.hosts.filter((h) => h.datapath === 'weft' && (hosts?.has(h.name) ?? true))) {
    const want = new Set(plan.vms.filter((v) => v.host.name === host.name).map((v) => v.name));
    let waiting = '';
    for (;;) {
      const pid = state.agents[host.name];
      if (!processAlive(pid)) {
        throw new LabError(`the agent of ${host.name} exited:\n${tail(join(labDir(plan.name), `${host.name}.log`))}`);
      }
      try {
        const s = await fetchStats(agentSocket(plan.name, host.name));
        // Its VMs' ports (an uplink to the physical network comes with provider networks).
        const have = new Set(s.ports.map((p) => p.name));
        const pending = Object.keys(s.pendingPorts);
        const missing = [...want].filter((n) => !have.has(n) || pending.includes(n));
        const left = gone.filter((n) => have.has(n) || pending.includes(n));
        if (missing.length === 0 && left.length === 0) break;
        waiting = [missing.length ? `attach ${missing.join(', ')}` : '', left.length ? `let go of ${left.join(', ')}` : ''].filter(Boolean).join(' and ');
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        throw new LabError(`the agent of ${host.name} did not ${waiting || 'attach its ports'} in ${READY_TIMEOUT_MS / 1000}s:\n${tail(join(labDir(plan.name), `${host.name}.log`))}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not. */
export function processAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function killAndWait(pids: number[]): void {
  const alive = () => pids.filter(processAlive);
  for (const pid of alive()) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  }
  const deadline = Date.now() + 3000;
  while (alive().length > 0 && Date.now() < deadline) spawnSync('sleep', ['0.05']);
  for (const pid of alive()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/**
 * Removes everything of lab `name`: its agents and every process left in its namespaces,
 * the namespaces themselves (and with them every link and TAP in them), and its state.
 * Safe to run again, and on a lab that was only half built.
 */
export function labDown(name: string): { namespaces: number; processes: number } {
  const dir = labDir(name);
  const prefix = labNetnsPrefix(name);
  const namespaces = listNetns().filter((n) => n.startsWith(prefix));
  const state = readLabState(name);
  const pids = new Set<number>(Object.values(state?.agents ?? {}));
  for (const ns of namespaces) {
    const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
    for (const p of (r.stdout ?? '').split('\n').filter(Boolean)) pids.add(Number(p));
  }
  const ours = [...pids].filter((p) => p !== process.pid);
  killAndWait(ours);
  for (const ns of namespaces) spawnSync('ip', ['netns', 'del', ns]);
  rmSync(dir, { recursive: true, force: true });
  return { namespaces: namespaces.length, processes: ours.length };
}

/**
 * Removes a namespace VM of a running lab: every process in its namespace (a trunk's VDE
 * switch), the namespace with its TAP and links, and its files. Its port must be gone
 * from its host's agent first, or the agent would hold a TAP that is going away.
 */
export function removeVm(lab: string, vm: LabPlan['vms'][number]): void {
  const r = spawnSync('ip', ['netns', 'pids', vm.netns], { encoding: 'utf8' });
  killAndWait((r.stdout ?? '').split('\n').filter(Boolean).map(Number).filter((p) => p !== process.pid));
  if (listNetns().includes(vm.netns)) ip('netns', 'del', vm.netns);
  for (const file of [`${vm.name}.vde`, `${vm.name}.vde.rc`, `${vm.name}.resolv.conf`]) rmSync(join(labDir(lab), file), { recursive: true, force: true });
}

/** Where a QEMU VM's sockets and console log are. */
function guestSpec(lab: string, vm: LabPlan['vms'][number]): GuestSpec {
  return { name: vm.name, mac: vm.mac, portSocket: join(qemuSocketDir(lab, vm.host.name), `${vm.name}.net.sock`), consoleSocket: join(labDir(lab), `${vm.name}.console.sock`), consoleLog: join(labDir(lab), `${vm.name}.console.log`) };
}

/** Software emulation boots the guest in a few seconds; a loaded CI machine may take longer. */
const GUEST_READY_MS = 120_000;

/** Boots the lab's QEMU VMs (their ports are attached by now) and waits for each to have
 * its address. QEMU runs in its host's namespace, so the lab's clean-up finds it there. */
async function startGuests(plan: LabPlan, state: LabState, log: (line: string) => void): Promise<void> {
  const guests = plan.vms.filter((v) => v.kind === 'qemu');
  if (guests.length === 0) return;
  const image = ensureGuestImage(GUEST_CACHE, log);
  for (const vm of guests) remember(state, vm.name, ['ip', 'netns', 'exec', vm.host.netns, ...qemuArgv(image, guestSpec(plan.name, vm))]);
  for (const vm of guests) {
    const spec = guestSpec(plan.name, vm);
    const address = await waitGuestReady(spec, () => processAlive(state.agents[vm.name]), GUEST_READY_MS)
      .catch((err: Error) => Promise.reject(new LabError(`${err.message}
${tail(join(labDir(plan.name), `${vm.name}.log`))}`)));
    if (!address) throw new LabError(`QEMU VM ${vm.name} got no address by DHCP:
${tail(spec.consoleLog)}`);
  }
}

/** A command as one line for a guest's shell, each word quoted. */
function shellLine(command: string[]): string {
  return command.map((w) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Runs a command inside a VM (or host) of the lab; resolves to its exit code. A QEMU VM
 * runs it through its serial console (its output comes as stdout, stderr included). */
export async function labExec(lab: string, target: string, command: string[], stdio: 'inherit' | 'pipe' = 'inherit'): Promise<{ code: number; stdout: string; stderr: string }> {
  const guest = readLabState(lab)?.plan.vms.find((v) => v.name === target && v.kind === 'qemu');
  if (guest) {
    const r = await guestExec(guestSpec(lab, guest).consoleSocket, shellLine(command));
    if (stdio === 'inherit') process.stdout.write(r.stdout);
    return r;
  }
  if (!isLabName(target)) throw new LabError(`${JSON.stringify(target)} is not a VM or host name (${LAB_NAME_RULE})`);
  const ns = labNetnsPrefix(lab) + target;
  if (!listNetns().includes(ns)) {
    const known = listNetns().filter((n) => n.startsWith(labNetnsPrefix(lab))).map((n) => n.slice(labNetnsPrefix(lab).length));
    throw new LabError(known.length > 0 ? `lab ${lab} has no VM or host ${target} (it has: ${known.join(', ')})` : `there is no lab ${lab}`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}
