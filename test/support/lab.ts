/**
 * Helpers for end-to-end tests: build a lab from a topology object, run commands in its
 * VMs, watch a VM's interface with tcpdump, and always tear the lab down: at the end of
 * the test, when it fails, and when the test process is interrupted.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labExec, labUp, agentSocket } from '../../src/lab/lab.js';
import { labNetnsPrefix, planLab } from '../../src/lab/topology.js';
import { fetchStats, type AgentStats } from '../../src/cli/stats.js';
import { waitForCapture } from './wait.js';

const live = new Set<string>();
function downAll(): void {
  for (const name of live) labDown(name);
  live.clear();
}
process.once('SIGINT', () => { downAll(); process.exit(130); });
process.once('SIGTERM', () => { downAll(); process.exit(143); });
process.once('exit', downAll);

export interface Lab {
  name: string;
  /** Runs a command in a VM or host; resolves with its exit code and output. */
  exec(target: string, ...command: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Like exec, but fails the test when the command fails. */
  run(target: string, ...command: string[]): Promise<string>;
  /** Starts a command in a namespace VM or host and returns at once: what it printed so
   * far, and its end (as exec). It ends with the lab at the latest. */
  start(target: string, ...command: string[]): Running;
  stats(host: string): Promise<AgentStats>;
}

export interface Running {
  /** Its standard output so far. */
  output(): string;
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Builds the lab described by `topology`, runs `body`, and removes the lab whatever happens. */
export async function withLab(topology: Record<string, unknown>, body: (lab: Lab) => Promise<void>): Promise<void> {
  const plan = planLab(topology, `${String(topology.name)} (test topology)`);
  labDown(plan.name); // leftovers of an earlier, killed run
  live.add(plan.name);
  try {
    await labUp(plan);
    const lab: Lab = {
      name: plan.name,
      exec: (target, ...command) => labExec(plan.name, target, command, 'pipe'),
      run: async (target, ...command) => {
        const r = await labExec(plan.name, target, command, 'pipe');
        if (r.code !== 0) throw new Error(`${target}: ${command.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}`);
        return r.stdout;
      },
      start: (target, ...command) => {
        const child = spawn('ip', ['netns', 'exec', labNetnsPrefix(plan.name) + target, ...command], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const done = new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
          child.on('error', reject);
          child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
        });
        return { output: () => stdout, done };
      },
      stats: (host) => fetchStats(agentSocket(plan.name, host)),
    };
    await body(lab);
  } finally {
    labDown(plan.name);
    live.delete(plan.name);
  }
}

/** Captures the underlay at a host's eth0 into a pcap file (tcpdump) while `during` runs. */
export async function captureUnderlay(lab: Lab, host: string, filter: string, during: () => Promise<unknown>): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'weft-underlay-')), 'underlay.pcap');
  const child = spawn('ip', ['netns', 'exec', `weft-${lab.name}-${host}`, 'tcpdump', '-i', 'eth0', '-n', '-U', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitForCapture(child, `tcpdump on ${host}`);
    await during();
    // A sleep, not a wait: nothing says the last datagrams of `during` have reached tcpdump.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
  }
  return file;
}

/**
 * Watches a VM's eth0 with tcpdump (an observer independent of Weft) while `during` runs,
 * and returns the lines tcpdump printed for packets matching `filter`. `VM:IFACE` watches
 * another interface (`underlay:phys`: the lab's physical network's switch).
 */
export async function observe(lab: string, vms: string[], filter: string, during: () => Promise<unknown>): Promise<Record<string, string[]>> {
  const watchers = vms.map((vm) => {
    const [target, iface = 'eth0'] = vm.split(':');
    const child = spawn('ip', ['netns', 'exec', `weft-${lab}-${target}`, 'tcpdump', '-i', iface, '-n', '-l', '-e', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    return { vm, child, ready: waitForCapture(child, `tcpdump in ${vm}`), lines: () => out.split('\n').filter(Boolean) };
  });
  try {
    await Promise.all(watchers.map((w) => w.ready));
    await during();
    // A sleep, not a wait: the callers also assert that something did NOT arrive, which no
    // condition can announce; this bounds how long a late packet has to show up.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    for (const w of watchers) w.child.kill('SIGTERM');
  }
  return Object.fromEntries(watchers.map((w) => [w.vm, w.lines()]));
}

/** Parses iperf3 --json output: bits per second at the receiver. */
export function iperfReceiverBps(json: string): number {
  const r = JSON.parse(json) as { end: { sum_received?: { bits_per_second: number }; sum?: { bits_per_second: number } } };
  return (r.end.sum_received ?? r.end.sum)!.bits_per_second;
}

/** Two hosts, blue (VXLAN, 10.10.0.0/24) and red (Geneve, 10.20.0.0/24), a VM of each on
 * each host: the quickstart's shape, for tests that need nothing more particular. */
export function twoNetworks(name: string, extraHosts: string[] = []): Record<string, unknown> {
  return {
    name,
    hosts: [{ name: 'h1' }, { name: 'h2' }, ...extraHosts.map((h) => ({ name: h }))],
    networks: [{ name: 'blue', vni: 100 }, { name: 'red', vni: 200, encapsulation: 'geneve' }],
    vms: [
      { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'red1', host: 'h1', network: 'red', ip: '10.20.0.1/24' },
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24' },
      { name: 'red2', host: 'h2', network: 'red', ip: '10.20.0.2/24' },
    ],
  };
}
