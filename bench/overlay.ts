/**
 * npm run bench: throughput and packet rate between two VMs on different hosts, over
 *   - Weft (a userspace agent per host, VXLAN), switched within one network (with the
 *     TAPs' offloads, and without them: one frame at a time, labelled), routed
 *     between two networks by Weft's distributed router (a controller lab), and through
 *     source NAT to a machine outside (the router's external gateway on h2: the VM on h1
 *     crosses the underlay to it, then leaves on the physical network),
 *   - Weft with port security and 1,000 security-group rules on both ports, next to the same
 *     controller lab with port security off (the rules match new connections last; what an
 *     established flow costs must not depend on them),
 *   - the Linux kernel's VXLAN device in a bridge, with the offloads a real NIC gives it
 *     (checksum and segmentation offload on the underlay link): the kernel at its best here,
 *   - the same kernel path with transmit checksum offload off on the underlay link, which
 *     also turns segmentation offload off (a handicapped reference, labelled as such),
 *   - the bare underlay (host to host, no overlay), offloads on,
 *   - Weft's encrypted tunnels (Noise IK, ChaCha20-Poly1305) next to the same controller
 *     lab unencrypted, and the encrypted overlays users compare them with: wireguard-go and
 *     nebula (bench/encrypted-peers.ts), host to host over their tunnel interfaces,
 * all in the same run on the same machine, printed side by side with ratios. The routed,
 * NAT and security-group labs are unencrypted, to compare with the plain switched path.
 *
 * TCP: one iperf3 stream. Packet rate: iperf3 UDP with 18-byte payloads (64-byte Ethernet
 * frames on the wire, FCS included), unlimited rate; what the receiver got per second. Each
 * figure is one run of each. A path that cannot be measured (a peer not installed, a lab
 * that fails) is said so and left out; the others are still measured and printed.
 * Options: --seconds N (TCP per measurement, default 8; UDP half that, at least 3);
 * --only PATH,... (weft, notrace, plain, routed, snat, groups (with its unsecured pair),
 * sealed, linux (the kernel, the bare underlay and the encrypted peers)); --tracing N: only
 * Weft with and without the data path's check for a trace's probe, in turn, N times each.
 */
import { readFileSync } from 'node:fs';
import { labDown, labExec, labUp, type LabState } from '../src/lab/lab.js';
import { planLab } from '../src/lab/topology.js';
import { nebula as nebulaPeer, wireguardGo, type EncryptedPeer } from './encrypted-peers.js';

const option = (name: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : undefined);
const seconds = Number(option('seconds') || 0) || 8;
const udpSeconds = Math.max(3, seconds / 2);
const only = option('only')?.split(',');
const PATHS = ['weft', 'notrace', 'plain', 'routed', 'snat', 'groups', 'sealed', 'linux'] as const;
for (const p of only ?? []) {
  if (!(PATHS as readonly string[]).includes(p)) {
    console.error(`bench: --only: there is no path ${p} (there are: ${PATHS.join(', ')})`);
    process.exit(2);
  }
}
const wanted = (path: (typeof PATHS)[number]) => !only || only.includes(path);
const CLOCK_TICKS = 100;

interface Result {
  tcpBps: number;
  udpPps: number;
  /** CPU seconds per second of each agent during the TCP run (weft only). */
  agentCpu?: number[];
}

function topology(name: string, datapath: 'weft' | 'linux', offload = true) {
  return planLab({
    name,
    hosts: [{ name: 'h1', datapath }, { name: 'h2', datapath }],
    networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan' }],
    vms: [
      { name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/24', ...(offload ? {} : { offload: false }) },
      { name: 'vm2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', ...(offload ? {} : { offload: false }) },
    ],
  }, 'benchmark');
}

async function run(lab: string, target: string, ...cmd: string[]): Promise<string> {
  const r = await labExec(lab, target, cmd, 'pipe');
  if (r.code !== 0) throw new Error(`${target}: ${cmd.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
}

/** Starts a one-shot iperf3 server in `server` and waits until it listens. */
async function iperfServer(lab: string, server: string): Promise<void> {
  await run(lab, server, 'iperf3', '-s', '-D', '-1');
  for (const deadline = Date.now() + 10_000; (await run(lab, server, 'ss', '-Hltn', 'sport = :5201')).trim() === '';) {
    if (Date.now() > deadline) throw new Error(`iperf3 in ${server} is not listening`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function measure(lab: string, client: string, server: string, address: string, agents: number[] = []): Promise<Result> {
  await iperfServer(lab, server);
  const cpu0 = agents.map(cpuSeconds);
  const t0 = Date.now();
  const tcp = JSON.parse(await run(lab, client, 'iperf3', '-c', address, '-t', String(seconds), '-J'));
  const elapsed = (Date.now() - t0) / 1000;
  const agentCpu = agents.map((pid, i) => (cpuSeconds(pid) - cpu0[i]) / elapsed);
  await iperfServer(lab, server);
  const udp = JSON.parse(await run(lab, client, 'iperf3', '-c', address, '-u', '-b', '0', '-l', '18', '-t', String(udpSeconds), '-J'));
  const s = udp.end.sum_received ?? udp.end.sum;
  const received = (s.packets ?? 0) - (s.lost_packets ?? 0);
  return { tcpBps: tcp.end.sum_received.bits_per_second, udpPps: received / s.seconds, agentCpu: agents.length > 0 ? agentCpu : undefined };
}

/** Two networks joined by a router; vm1 (h1, blue) and vm2 (h2, red) talk through it. */
function routedTopology(name: string) {
  return planLab({
    name,
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan', encryption: 'none' }, { name: 'red', vni: 200, encapsulation: 'vxlan', encryption: 'none' }],
    routers: [{ name: 'r1', networks: ['blue', 'red'] }],
    vms: [
      { name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'vm2', host: 'h2', network: 'red', ip: '10.20.0.2/24' },
    ],
  }, 'benchmark');
}

/** vm1 (h1) reaches the outside machine through r1's external gateway, held by h2. */
function snatTopology(name: string) {
  return planLab({
    name,
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan', encryption: 'none' }, { name: 'public', vni: 900, provider: {} }],
    outside: { ip: '203.0.113.1/24' },
    routers: [{ name: 'r1', networks: ['blue'], externalGateway: 'public', gatewayHost: 'h2' }],
    vms: [{ name: 'vm1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' }],
  }, 'benchmark');
}

/** vm1 and vm2 on blue in a controller lab: port security off, or on with ten groups of
 * 100 rules each on both ports, the one that lets the other VM in coming last; blue plain,
 * or encrypted. */
function groupsTopology(name: string, rules: boolean, encrypted = false) {
  const groups = Array.from({ length: 10 }, (_, g) => ({
    name: `g${g}`,
    rules: Array.from({ length: 100 }, (_, r) => (g === 9 && r === 99
      ? { direction: 'ingress', remote: { cidr: '10.10.0.0/24' } }
      : { direction: 'ingress', protocol: 'tcp', ports: { min: 1000 + g * 100 + r, max: 1000 + g * 100 + r }, remote: { cidr: '198.51.100.0/24' } })),
  }));
  groups[0].rules[0] = { direction: 'egress' } as (typeof groups)[number]['rules'][number];
  const vm = (n: number, host: string) => ({ name: `vm${n}`, host, network: 'blue', ip: `10.10.0.${n}/24`, ...(rules ? { securityGroups: groups.map((g) => g.name) } : { portSecurity: false }) });
  return planLab({
    name,
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan', encryption: encrypted ? 'noise' : 'none' }],
    ...(rules ? { securityGroups: groups } : {}),
    vms: [vm(1, 'h1'), vm(2, 'h2')],
  }, 'benchmark');
}

async function withBenchLab<T>(name: string, datapath: 'weft' | 'weft-no-offload' | 'linux' | 'routed' | 'snat' | 'open' | 'groups' | 'sealed', body: (state: LabState) => Promise<T>): Promise<T> {
  const plan = datapath === 'routed' ? routedTopology(name) : datapath === 'snat' ? snatTopology(name)
    : datapath === 'open' || datapath === 'groups' || datapath === 'sealed' ? groupsTopology(name, datapath === 'groups', datapath === 'sealed')
      : datapath === 'weft-no-offload' ? topology(name, 'weft', false) : topology(name, datapath);
  labDown(name);
  const state = await labUp(plan);
  try {
    return await body(state);
  } finally {
    labDown(name);
  }
}

const gbit = (bps: number) => (bps / 1e9).toFixed(2);

/** A Markdown table of `base` and each other path that was measured, with base's ratio to
 * each (none when base itself was not measured). */
function ratioTable(what: string, name: string, base: { label: string; r: Result | undefined }, others: Array<readonly [string, Result | undefined]>): void {
  const rows = [[base.label, base.r] as const, ...others].filter((row): row is readonly [string, Result] => row[1] !== undefined);
  if (rows.length === 0) return;
  console.log(`| ${what} | TCP, 1 stream, ${seconds} s | 64-byte packets (UDP, ${udpSeconds} s) | ${name} vs this (TCP / packets) |`);
  console.log('|---|---|---|---|');
  for (const [label, r] of rows) {
    const ratio = base.r ? `${(base.r.tcpBps / r.tcpBps).toFixed(2)} / ${(base.r.udpPps / r.udpPps).toFixed(2)}` : `(${name} not measured)`;
    console.log(`| ${label} | ${gbit(r.tcpBps)} Gbit/s | ${kpps(r.udpPps)} kpps | ${ratio} |`);
  }
  console.log('');
}
const kpps = (pps: number) => (pps / 1e3).toFixed(0);

/** Turns transmit checksum offload (and with it segmentation offload) on or off on a lab
 * host's underlay link. */
async function underlayOffload(lab: string, on: boolean): Promise<void> {
  for (const host of ['h1', 'h2']) await run(lab, host, 'ethtool', '-K', 'eth0', 'tx', on ? 'on' : 'off');
}

/** The switched two-host lab: Weft's own path between vm1 and vm2. */
const switched = (lab: string) => withBenchLab(lab, 'weft', (s) => measure(s.name, 'vm1', 'vm2', '10.10.0.2', Object.values(s.agents)));

/** The same with its agents' data paths never checking frames for a trace's probe
 * (WEFT_TRACING=off): beside `switched`, what `weft trace` costs when no trace runs. */
async function untraced(): Promise<Result> {
  process.env.WEFT_TRACING = 'off';
  try {
    return await switched('benchnotrace');
  } finally {
    delete process.env.WEFT_TRACING;
  }
}

/** --tracing N: only what following traces costs, the two labs in turn, N times each. */
async function tracingOnly(runs: number): Promise<void> {
  const on: Result[] = [];
  const off: Result[] = [];
  for (let i = 0; i < runs; i++) {
    on.push(await switched('benchtrace'));
    off.push(await untraced());
    console.log(`run ${i + 1}: tracing compiled in ${gbit(on[i].tcpBps)} Gbit/s, ${kpps(on[i].udpPps)} kpps; never checked ${gbit(off[i].tcpBps)} Gbit/s, ${kpps(off[i].udpPps)} kpps`);
  }
  const mean = (rs: Result[], k: 'tcpBps' | 'udpPps') => rs.reduce((a, r) => a + r[k], 0) / rs.length;
  console.log(`mean of ${runs}: TCP ${(mean(on, 'tcpBps') / mean(off, 'tcpBps')).toFixed(2)}, 64-byte packets ${(mean(on, 'udpPps') / mean(off, 'udpPps')).toFixed(2)} (with the check / without)`);
}

/** What could not be measured, and why: said as it happens and again at the end. */
const notMeasured: string[] = [];
let failures = 0;

/** Measures one path; a failure is reported and leaves the path out, not the run. */
async function attempt(label: string, f: () => Promise<Result>): Promise<Result | undefined> {
  try {
    const r = await f();
    console.log(`${label.padEnd(34)} tcp ${gbit(r.tcpBps)} Gbit/s  udp64 ${kpps(r.udpPps)} kpps`);
    return r;
  } catch (err) {
    failures++;
    notMeasured.push(`${label}: failed: ${(err as Error).message.trim()}`);
    console.log(`${label.padEnd(34)} failed: ${(err as Error).message.trim()}`);
    return undefined;
  }
}

/** One of the encrypted peers, host to host over the linux lab's underlay, if installed. */
async function peer(lab: string, p: EncryptedPeer): Promise<Result | undefined> {
  if (p.missing) {
    notMeasured.push(`${p.name}: skipped, ${p.missing}`);
    console.log(`${p.name.padEnd(34)} skipped: ${p.missing}`);
    return undefined;
  }
  return attempt(p.label, () => p.run(lab, (address) => measure(lab, 'h1', 'h2', address)));
}

const cpuLine = (what: string, r: Result | undefined) => {
  if (!r?.agentCpu) return;
  console.log(`${what}: ${r.agentCpu.map((c) => `${(c * 100).toFixed(0)}%`).join(', ')} of a core`
    + ` (${r.agentCpu.map((c) => (c / (r.tcpBps / 1e9)).toFixed(2)).join(', ')} core-seconds per Gbit)`);
};

async function main(): Promise<void> {
  const cores = readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length;
  console.log(`one run per path: iperf3 TCP for ${seconds} s (one stream), then UDP 64-byte packets for ${udpSeconds} s; ${cores} cores,`
    + ' shared by both hosts\' agents, iperf3 and the kernel (on a loaded machine the figures vary between runs: compare within a run)');
  const tracingRuns = process.argv.indexOf('--tracing');
  if (tracingRuns > 0) return tracingOnly(Number(process.argv[tracingRuns + 1]) || 3);
  const weft = wanted('weft') ? await attempt('weft', () => switched('benchweft')) : undefined;
  const noTrace = wanted('notrace') ? await attempt('weft, no tracing', untraced) : undefined;
  const plain = wanted('plain') ? await attempt('weft, no offloads', () => withBenchLab('benchplain', 'weft-no-offload', (s) => measure(s.name, 'vm1', 'vm2', '10.10.0.2', Object.values(s.agents)))) : undefined;
  const routed = wanted('routed') ? await attempt('weft routed', () => withBenchLab('benchroute', 'routed', (s) => measure(s.name, 'vm1', 'vm2', '10.20.0.2', Object.entries(s.agents).filter(([k]) => k !== 'controller').map(([, pid]) => pid)))) : undefined;
  const snat = wanted('snat') ? await attempt('weft snat', () => withBenchLab('benchsnat', 'snat', (s) => measure(s.name, 'vm1', 'outside', '203.0.113.1', ['h1', 'h2'].map((h) => s.agents[h])))) : undefined;
  const agentsOf = (s: LabState) => ['h1', 'h2'].map((h) => s.agents[h]);
  const groupsToo = wanted('groups') || wanted('sealed');
  const open = groupsToo ? await attempt('weft no groups', () => withBenchLab('benchopen', 'open', (s) => measure(s.name, 'vm1', 'vm2', '10.10.0.2', agentsOf(s)))) : undefined;
  const groups = wanted('groups') ? await attempt('weft 1,000 rules', () => withBenchLab('benchgroups', 'groups', (s) => measure(s.name, 'vm1', 'vm2', '10.10.0.2', agentsOf(s)))) : undefined;
  const sealed = wanted('sealed') ? await attempt('weft encrypted', () => withBenchLab('benchsealed', 'sealed', (s) => measure(s.name, 'vm1', 'vm2', '10.10.0.2', agentsOf(s)))) : undefined;
  const peers = [wireguardGo(), nebulaPeer()];
  let linux: Result | undefined;
  let handicapped: Result | undefined;
  let underlay: Result | undefined;
  const peerResults = new Map<EncryptedPeer, Result | undefined>();
  if (wanted('linux')) {
    try {
      await withBenchLab('benchlinux', 'linux', async (s) => {
        // The lab builds a linux host with transmit checksum offload off (so that a Weft peer
        // gets finished checksums); between two kernels that is needless, and a real NIC has it.
        handicapped = await attempt('linux (tx csum off)', () => measure(s.name, 'vm1', 'vm2', '10.10.0.2'));
        await underlayOffload(s.name, true);
        linux = await attempt('linux (offloads)', () => measure(s.name, 'vm1', 'vm2', '10.10.0.2'));
        underlay = await attempt('underlay', () => measure(s.name, 'h1', 'h2', '10.99.0.2'));
        for (const p of peers) peerResults.set(p, await peer(s.name, p));
      });
    } catch (err) {
      failures++;
      notMeasured.push(`the linux lab: ${(err as Error).message.trim()}`);
      console.log(`the linux lab failed: ${(err as Error).message.trim()}`);
    }
  }
  console.log('');
  ratioTable('path', 'Weft', { label: 'Weft (userspace, VXLAN)', r: weft }, [
    ['Weft, its data paths never checking for a trace\'s probe (what tracing costs)', noTrace],
    ['Weft, TAP offloads off (one frame at a time, as before issue 10)', plain],
    ['Weft, routed between two networks (the switched path vs this)', routed],
    ['Weft, through source NAT to the outside (the switched path vs this)', snat],
    ['Linux kernel VXLAN, offloads on (the reference)', linux],
    ['Linux kernel VXLAN, tx checksum offload off (handicapped)', handicapped],
    ['bare underlay (veth), offloads on', underlay],
  ]);
  if (groups && open) {
    console.log(`Security groups: port security and 1,000 rules on both ports carried ${gbit(groups.tcpBps)} Gbit/s and ${kpps(groups.udpPps)} kpps`
      + ` against ${gbit(open.tcpBps)} Gbit/s and ${kpps(open.udpPps)} kpps with port security off: ${(groups.tcpBps / open.tcpBps).toFixed(2)} / ${(groups.udpPps / open.udpPps).toFixed(2)}.`);
    console.log('');
  }
  ratioTable('encrypted path', 'Weft encrypted', { label: 'Weft, encrypted (VM to VM)', r: sealed }, [
    ['Weft, the same lab unencrypted (the cost of encryption)', open],
    ...peers.map((p) => [p.label, peerResults.get(p)] as const),
    ['bare underlay (veth), offloads on', underlay],
  ]);
  if (weft && linux) {
    console.log(`Against the kernel at its best: TCP ${(weft.tcpBps / linux.tcpBps).toFixed(2)}× (goal ≥ 0.4), 64-byte packets ${(weft.udpPps / linux.udpPps).toFixed(2)}× (goal ≥ 0.5)`);
    console.log('');
  }
  cpuLine('Weft agents\' CPU during the TCP run', weft);
  cpuLine('Without offloads', plain);
  cpuLine('Encrypted', sealed);
  if (notMeasured.length > 0) {
    console.log('');
    console.log('Not measured:');
    for (const line of notMeasured) console.log(`  ${line}`);
  }
  // A peer not installed is a choice of the machine's; a measurement that failed is not.
  if (failures > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(1);
});
