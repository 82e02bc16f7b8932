#!/usr/bin/env node
/**
 * The weft command line. Every subcommand's errors end in reportAndExit: a sentence and a
 * nonzero exit status, never a stack trace.
 */
import { createWriteStream } from 'node:fs';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { Agent, defaultSocketPath } from '../agent/agent.js';
import { defaultKeyFile, loadOrCreateIdentity, loadOrCreateKey } from '../agent/identity.js';
import { hostStateFrom, loadConfig } from '../agent/config.js';
import { labConsole, labDir, labDown, labExec, labRestart, labUp, listLabs, agentSocket, readLabState } from '../lab/lab.js';
import { loadTopology } from '../lab/topology.js';
import { applyChange, planChange } from '../lab/change.js';
import { dropOutputOnClosedPipe, reportAndExit, UsageError } from './errors.js';
import { SCHEMA_KINDS, schemaText, type SchemaKind } from '../docs/reference.js';
import { explainReasons, fetchStats, renderStats } from './stats.js';
import { getStream } from './unix-http.js';
import { PacketCounter } from '../wire/pcapng.js';
import { checkPrivateFilePath, fileProblem, openPrivateFile } from '../io/private-file.js';
import { lookup } from 'node:dns/promises';
import { Controller } from '../controller/controller.js';
import { physicalNetworks, registerResourceCommands, targetOptions, client } from './resources.js';
import { apply } from './apply.js';
import { stringify } from 'yaml';
import type { ApplyResources } from '../controller/apply.js';
import { jsonText, printable } from './format.js';
import { readFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustLab, noLab } from './api-client.js';
import type { HostState } from '../agent/desired-state.js';
import type { WeftEvent } from '../controller/events.js';
import type { TraceResult } from '../controller/trace.js';

/** A file of the package this CLI is (dist/src/cli/main.js is three folders down). */
function packageFile(...path: string[]): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', ...path);
}

/** The version of the package this CLI is. */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Where `--help` sends a person for a file's keys: its reference page and its schema. */
function fileHelp(kind: SchemaKind, schemaCommand: string): string {
  return `\nThe ${kind} file's keys, each with its default and an example: ${packageFile('docs', `${kind}-file.md`)}\n`
    + `Its JSON Schema: \`${schemaCommand}\` prints it (docs/${kind}.schema.json). With a first line\n`
    + `  # yaml-language-server: $schema=PATH/TO/${kind}.schema.json\n`
    + 'an editor\'s YAML language server checks the file as you write it.';
}

const program = new Command('weft')
  .description('Virtual networks for VMs and containers: an agent per host, overlays between them.')
  .version(packageVersion(), '-V, --version', 'print weft\'s version')
  .showHelpAfterError();

program.command('agent')
  .description('run the agent of this host, from a config file or following a controller')
  .option('-c, --config <file>', 'the host\'s YAML config (networks, remote hosts, ports)')
  .option('--controller <url>', 'follow this controller (https://HOST:PORT; http:// on loopback) instead of a config file\'s networks and ports')
  .option('--join-token <token>', 'this host\'s join token (weft host create prints it), needed to enroll the first time: visible to other users in ps, so prefer --join-token-file or WEFT_JOIN_TOKEN')
  .option('--join-token-file <file>', 'read the join token from this file (weft host create --join-token-file writes one; or set WEFT_JOIN_TOKEN)')
  .option('--host <name>', 'this host\'s name (with --controller; default: the hostname)')
  .option('--underlay-address <ip>', 'this host\'s underlay IPv4 address (with --controller; default: the address this host reaches the controller from)')
  .option('--underlay-port <port>', 'the UDP port of VXLAN tunnels', '4789')
  .option('--underlay-geneve-port <port>', 'the UDP port of Geneve tunnels', '6081')
  .option('--underlay-tunnel-port <port>', 'the UDP port of the encrypted tunnels', '4793')
  .option('--underlay-mtu <mtu>', 'the underlay MTU', '1500')
  .option('--key-file <file>', 'this host\'s tunnel key, made there if missing (default /var/lib/weft/agent-HOST/tunnel.key)')
  .addOption(new Option('--rekey-after <seconds>', 'replace tunnel sessions this often (default 120, as WireGuard; lower only to test rotation)').argParser((v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 1 || n > 86_400) throw new UsageError(`--rekey-after: ${v} is not a number of seconds from 1 to 86400`);
    return n;
  }))
  .option('--physical-network <name=interface>', 'this host\'s interface on a physical network, for provider networks (repeatable)', collect, [])
  .option('-s, --socket <path>', 'the control socket (default /run/weft/agent-HOST.sock)')
  .option('--qemu-socket-dir <dir>', 'the only directory QEMU ports\' sockets may be in, made 0700 if missing (default /run/weft/qemu)')
  .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (they are on the control socket too)')
  .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .action(async (opts) => {
    let state: HostState;
    const metricsAt = opts.metricsListen ? /^(.*):(\d+)$/.exec(opts.metricsListen) : null;
    if (opts.metricsListen && !metricsAt) throw new UsageError(`--metrics-listen takes HOST:PORT, not ${JSON.stringify(opts.metricsListen)}`);
    if (opts.config) {
      if (opts.physicalNetwork.length > 0) throw new UsageError(`${opts.config}: give physical networks in the file (physicalNetworks:), not with --physical-network`);
      state = loadConfig(opts.config);
      if (opts.controller && (state.networks.length > 0 || state.ports.length > 0)) {
        throw new UsageError(`${opts.config}: with --controller, the controller says which networks and ports this host has; remove them from the file`);
      }
    } else {
      if (!opts.controller) throw new UsageError('give --config FILE, or --controller URL');
      const address = opts.underlayAddress ?? (await sourceAddressTowards(opts.controller));
      state = loadConfigFromFlags(opts.host ?? hostname().split('.')[0], address, Number(opts.underlayPort), Number(opts.underlayGenevePort), Number(opts.underlayTunnelPort), Number(opts.underlayMtu), physicalNetworks(opts.physicalNetwork));
    }
    // Read before any key is made: a token file that cannot be read leaves no trace.
    const token = opts.controller ? joinToken(opts) : undefined;
    const log = pino({ level: opts.logLevel, base: { host: state.host } }, pino.destination(2));
    const keyFile = opts.keyFile ?? defaultKeyFile(state.host);
    let key;
    try {
      key = loadOrCreateKey(keyFile);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (key.created) log.info({ keyFile }, 'made this host\'s tunnel key');
    // The identity key lives beside the tunnel key: what the host enrolls and signs with.
    const identityFile = join(dirname(keyFile), 'identity.key');
    let identity;
    try {
      identity = opts.controller ? loadOrCreateIdentity(identityFile) : undefined;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (identity?.created) log.info({ identityFile }, 'made this host\'s identity key');
    const agent = new Agent(state, log, opts.socket ?? defaultSocketPath(state.host), undefined, {
      tunnelKey: key.keys, rekeyAfterMs: opts.rekeyAfter ? opts.rekeyAfter * 1000 : undefined, identity,
      caFile: join(dirname(keyFile), 'controller-ca.pem'),
      ...(metricsAt ? { metricsListen: { host: metricsAt[1], port: Number(metricsAt[2]) } } : {}),
      ...(opts.qemuSocketDir ? { qemuSocketDir: opts.qemuSocketDir } : {}),
    });
    await agent.start();
    if (opts.controller) {
      agent.followController(opts.controller, token);
    } else {
      process.on('SIGHUP', () => agent.reload(opts.config));
    }
    const stop = () => void agent.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });

/** The join token, from --join-token-file, --join-token or WEFT_JOIN_TOKEN; needed the first
 * time only (to enroll): a later start signs with the identity key. */
function joinToken(opts: { joinToken?: string; joinTokenFile?: string }): string | undefined {
  if (opts.joinToken && opts.joinTokenFile) throw new UsageError('give --join-token-file or --join-token, not both');
  if (!opts.joinTokenFile) return opts.joinToken || process.env.WEFT_JOIN_TOKEN || undefined;
  let text: string;
  try {
    text = readFileSync(opts.joinTokenFile, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`cannot read the join token file ${opts.joinTokenFile}: ${fileProblem(err)}`);
  }
  if (text === '') throw new UsageError(`the join token file ${opts.joinTokenFile} is empty (weft host create --join-token-file writes one)`);
  return text;
}

/** The local IPv4 address the kernel would use to reach the controller (no packet is sent:
 * connecting a UDP socket only chooses the route). */
async function sourceAddressTowards(url: string): Promise<string> {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new UsageError(`--controller: ${JSON.stringify(url)} is not a URL such as http://10.0.0.1:7411`);
  }
  const sock = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(7411, host, () => resolve());
    });
    return sock.address().address;
  } catch (err) {
    throw new UsageError(`cannot tell which address reaches ${host} (${(err as Error).message}): give --underlay-address`);
  } finally {
    sock.close();
  }
}

/** A host state with no networks yet, from flags; validated like a config file. */
function loadConfigFromFlags(host: string, address: string, port: number, genevePort: number, tunnelPort: number, mtu: number, physicalNetworks: Record<string, string>): HostState {
  return hostStateFrom({ host, underlay: { address, port, genevePort, tunnelPort, mtu }, physicalNetworks }, 'the command line');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}


program.command('controller')
  .description('run the controller: the REST API, the store, and the agents\' watch streams')
  .option('-d, --data-dir <dir>', 'where the store (weft.db) and the tokens live', '/var/lib/weft')
  .option('-l, --listen <host:port>', 'the API\'s TCP address', '0.0.0.0:7411')
  .option('-s, --socket <path>', 'also serve the API on this unix socket')
  .option('--allow-loopback-underlay', 'accept agents whose underlay address is a loopback address (all agents on this machine, as in tests)')
  .option('--tls', 'TLS on a loopback --listen too (it is always on for any other address)')
  .option('--no-tls', 'plain HTTP on a loopback --listen (the default there; refused for any other address)')
  .option('--tls-cert <file>', 'the serving certificate chain (PEM, ending with its authority) instead of the one made in DATA_DIR/tls')
  .option('--tls-key <file>', 'its key (PEM)')
  .option('--qemu-socket-dir <dir>', 'where the agents keep QEMU sockets: a port\'s QEMU socket must be inside it (default /run/weft/qemu)')
  .addOption(new Option('--log-level <level>', 'log level').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .action(async (opts) => {
    const m = /^(.*):(\d+)$/.exec(opts.listen);
    if (!m) throw new UsageError(`--listen takes HOST:PORT, not ${JSON.stringify(opts.listen)}`);
    if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new UsageError('--tls-cert and --tls-key go together');
    const log = pino({ level: opts.logLevel }, pino.destination(2));
    // commander sets tls to true by default because of --no-tls: only an explicit flag counts.
    const tlsFlag = process.argv.includes('--tls') ? true : process.argv.includes('--no-tls') ? false : undefined;
    const controller = new Controller({ dataDir: opts.dataDir, listen: { host: m[1], port: Number(m[2]) }, socket: opts.socket, loopbackUnderlay: Boolean(opts.allowLoopbackUnderlay), tls: tlsFlag, tlsCert: opts.tlsCert, tlsKey: opts.tlsKey, qemuSocketDir: opts.qemuSocketDir, log });
    await controller.start();
    const stop = () => void controller.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });

registerResourceCommands(program);

targetOptions(program.command('events'))
  .description('what happened lately: resources created and deleted, hosts enrolled or revoked, agents coming and going, ports up or failing, gateways moving')
  .option('-f, --follow', 'keep printing new events as they happen')
  .option('--since <id>', 'only events after this one', '0')
  .action(async (opts) => {
    const api = client(opts);
    let last = Number(opts.since);
    if (!Number.isInteger(last) || last < 0) throw new UsageError(`--since takes an event id, not ${JSON.stringify(opts.since)}`);
    for (;;) {
      const events = await api.call<WeftEvent[]>('GET', `/v1/events?since=${last}`);
      // A controller that restarted numbers its events from 1 again: start over with it.
      if (events.length > 0 && events[0].id <= last) last = 0;
      for (const e of events) {
        console.log(printable(`${e.at}  ${e.kind.padEnd(20)} ${(e.host ?? '-').padEnd(12)} ${e.message}`));
        last = e.id;
      }
      if (!opts.follow) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  });

targetOptions(program.command('trace'))
  .description('follow a probe from a VM to an address through every stage of every host on its way: what each did, and where it ended')
  .requiredOption('--from <vm>', 'the port (VM) the probe leaves from, as if the VM sent it')
  .requiredOption('--to <address>', 'an IPv4 address')
  .option('--proto <protocol>', 'icmp (an echo request), tcp (a SYN) or udp', 'icmp')
  .option('--port <port>', 'the destination port for tcp (80) or udp (33434)')
  .option('--size <bytes>', 'the IP packet\'s size', '64')
  .option('--source <address>', 'send from another address than the VM\'s (as a VM spoofing it would)')
  .option('--json', 'print the result as JSON')
  .action(async (opts) => {
    const size = Number(opts.size);
    const port = opts.port === undefined ? undefined : Number(opts.port);
    if (!['icmp', 'tcp', 'udp'].includes(opts.proto)) throw new UsageError(`--proto takes icmp, tcp or udp, not ${JSON.stringify(opts.proto)}`);
    if (!Number.isInteger(size)) throw new UsageError(`--size takes a number of bytes, not ${JSON.stringify(opts.size)}`);
    if (port !== undefined && !Number.isInteger(port)) throw new UsageError(`--port takes a port number, not ${JSON.stringify(opts.port)}`);
    const r = await client(opts).call<TraceResult>('POST', '/v1/traces', { from: opts.from, to: opts.to, protocol: opts.proto, size, ...(port !== undefined ? { port } : {}), ...(opts.source ? { source: opts.source } : {}) });
    if (opts.json) return console.log(jsonText(r));
    console.log(printable(`trace ${r.id}: ${r.protocol}${r.port !== null ? `/${r.port}` : ''} from ${r.from} to ${r.to}, ${r.size} bytes`));
    const width = Math.max(4, ...r.steps.map((s) => s.host.length));
    for (const s of r.steps) {
      const mark = s.verdict === 'drop' ? 'DROP ' : s.verdict === 'deliver' ? '  => ' : s.verdict === 'send' ? '  -> ' : '     ';
      console.log(printable(`  ${s.host.padEnd(width)} ${`+${s.ms.toFixed(3)}`.padStart(9)} ms  ${mark}${s.stage.padEnd(16)} ${s.detail}`));
    }
    if (r.silent.length > 0) console.log(printable(`  (no answer in time from ${r.silent.join(', ')})`));
    console.log(printable(`verdict: ${r.verdict}`));
    if (!r.delivered) process.exitCode = 1;
  });

targetOptions(program.command('apply'))
  .description('make the controller match a YAML file of networks, subnets and ports: prints the plan, then carries it out entirely or not at all')
  .requiredOption('-f, --file <file>', 'the file ("-" for standard input; weft export writes one)')
  .option('--dry-run', 'print the plan (every rule checked) and change nothing')
  .option('--prune', 'also delete what the file does not name (of the kinds it lists)')
  .addHelpText('after', fileHelp('apply', 'weft schema apply'))
  .action(async (opts) => {
    await apply(client(opts), opts.file, { dryRun: Boolean(opts.dryRun), prune: Boolean(opts.prune) }, (line) => console.log(printable(line)), (line) => console.error(printable(line)));
  });

program.command('schema')
  .argument('<kind>', `the kind of file: ${SCHEMA_KINDS.join(' or ')}`)
  .description('print the JSON Schema of lab files (lab) or weft apply files (apply), as docs/KIND.schema.json holds it')
  .action((kind: string) => {
    if (!(SCHEMA_KINDS as readonly string[]).includes(kind)) throw new UsageError(`weft schema: ${JSON.stringify(kind)} is no kind of file; give ${SCHEMA_KINDS.join(' or ')}`);
    process.stdout.write(schemaText(kind as SchemaKind));
  });

targetOptions(program.command('export'))
  .description('print what the controller holds (all but hosts) as a file weft apply takes back with nothing to change')
  .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
  .action(async (opts) => {
    const { revision, ...resources } = await client(opts).call<ApplyResources & { revision: number }>('GET', '/v1/export');
    if (opts.output === 'json') return console.log(jsonText(resources));
    process.stdout.write(`# weft export at revision ${revision}: weft apply -f FILE takes it back. Hosts are not in it: weft host create registers them.\n${stringify(resources)}`);
  });

/** The control socket named by --socket, or by --lab and --host. */
function socketOf(opts: { socket?: string; lab?: string; host?: string }): string {
  if (opts.socket) return opts.socket;
  if (opts.lab && opts.host) {
    const hosts = mustLab(opts.lab).plan.hosts.map((h) => h.name);
    if (!hosts.includes(opts.host)) throw new UsageError(`lab ${opts.lab} has no host ${opts.host} (hosts: ${hosts.join(', ')})`);
    return agentSocket(opts.lab, opts.host);
  }
  if (opts.host) return defaultSocketPath(opts.host);
  throw new UsageError('say which agent: --socket PATH, --host HOST, or --lab LAB --host HOST');
}

const agentOptions = (cmd: Command) => cmd
  .option('-s, --socket <path>', 'the agent\'s control socket')
  .option('--host <host>', 'the agent of this host (its default socket, or in --lab)')
  .option('--lab <lab>', 'an agent of this lab');

agentOptions(program.command('stats'))
  .description('show agents\' counters: ports, tunnels, underlay, networks (with --lab and no --host: every host of the lab)')
  .addOption(new Option('-o, --output <format>', 'output format: table (fits 100 columns), wide (every column), json').choices(['table', 'wide', 'json']).default('table'))
  .option('--explain', 'say what each drop reason shown means (without an agent: every reason)')
  .option('-w, --watch', 'refresh in place, with rates over the last interval instead of totals; Ctrl-C stops')
  .option('-i, --interval <seconds>', 'with --watch: seconds between readings', '2')
  .action(async (opts) => {
    if (opts.explain && !opts.socket && !opts.host && !opts.lab) return console.log(explainReasons());
    const interval = Number(opts.interval);
    if (!Number.isFinite(interval) || interval < 0.1 || interval > 3600) throw new UsageError(`--interval takes seconds from 0.1 to 3600, not ${JSON.stringify(opts.interval)}`);
    const everyHost = opts.lab && !opts.host && !opts.socket;
    const sockets = everyHost ? labSockets(opts.lab) : [socketOf(opts)];
    const read = () => Promise.all(sockets.map(fetchStats));
    let stats = await read();
    if (opts.output === 'json') return console.log(JSON.stringify(everyHost ? stats : stats[0], null, 2));
    const render = { wide: opts.output === 'wide', explain: Boolean(opts.explain) };
    if (!opts.watch) return console.log(renderStats(stats, render));
    process.once('SIGINT', () => process.exit(0));
    process.stdout.write(`\x1b[H\x1b[J${renderStats(stats, render)}\n\n(totals; rates in ${interval}s)\n`);
    for (;;) {
      const at = Date.now();
      await new Promise((r) => setTimeout(r, interval * 1000));
      const next = await read();
      // Home, clear to the end: the new reading replaces the old one in place.
      process.stdout.write(`\x1b[H\x1b[J${renderStats(next, { ...render, previous: { stats, seconds: (Date.now() - at) / 1000 } })}\n`
        + `\nevery ${interval}s, rates over the last interval (${new Date().toISOString().slice(11, 19)} UTC; Ctrl-C stops)\n`);
      stats = next;
    }
  });

/** The control sockets of every host of a lab. */
function labSockets(name: string): string[] {
  const state = readLabState(name);
  if (!state) throw new UsageError(`no lab ${name} on this machine (weft lab list shows the labs)`);
  return state.plan.hosts.map((h) => agentSocket(name, h.name));
}

agentOptions(program.command('capture'))
  .description('write a pcapng of a port\'s frames, or of tunnel traffic (inner frames, an interface per network, or outer packets)')
  .option('-p, --port <name>', 'capture this port')
  .option('-t, --tunnel <host>', 'capture tunnels to this remote host: its name (in --lab, or as the resolver knows it), its underlay address, or "all"')
  .addOption(new Option('--layer <layer>', 'for tunnels: the inner frames or the outer UDP packets').choices(['inner', 'outer']).default('inner'))
  .option('-f, --filter <expression>', 'only frames matching it: [src|dst] host ADDR, [src|dst] net CIDR, [src|dst] port N, icmp, icmp6, tcp, udp, arp, ip, ip6, with and, or, not, ( )')
  .option('-c, --count <n>', 'stop after n frames', '0')
  .option('-d, --duration <seconds>', 'stop after this many seconds')
  .requiredOption('-w, --write <file>', 'the pcapng file to write ("-" for standard output)')
  .action(async (opts) => {
    if (!opts.port === !opts.tunnel) throw new UsageError('give --port NAME or --tunnel HOST');
    if (!/^\d+$/.test(opts.count)) throw new UsageError(`--count takes a number of frames, not ${JSON.stringify(opts.count)}`);
    if (opts.duration !== undefined && !(Number(opts.duration) > 0)) throw new UsageError(`--duration takes a number of seconds, not ${JSON.stringify(opts.duration)}`);
    const tunnel = opts.tunnel ? await tunnelAddress(opts.tunnel, opts.lab) : undefined;
    const query = new URLSearchParams({ ...(opts.port ? { port: opts.port } : { tunnel: tunnel! }), layer: opts.layer, count: opts.count, ...(opts.filter ? { filter: opts.filter } : {}) });
    if (opts.write !== '-') checkCaptureFile(opts.write);
    const res = await getStream(socketOf(opts), `/v1/capture?${query}`);
    if ((res.statusCode ?? 500) >= 400) {
      let body = '';
      for await (const c of res) body += c;
      // The agent's refusal: of what was typed (a filter it cannot read, 400) a usage error,
      // else (no such port) a sentence with exit 1.
      const said = (JSON.parse(body) as { error: string }).error;
      throw res.statusCode === 400 ? new UsageError(said) : new Error(said);
    }
    let out: NodeJS.WritableStream;
    try {
      // Frames as the VMs sent them (decrypted, for a tunnel's inner layer): for root alone.
      out = opts.write === '-' ? process.stdout : createWriteStream('', { fd: openPrivateFile(opts.write, { what: 'the capture file' }) });
    } catch (err) {
      res.destroy();
      throw new UsageError((err as Error).message);
    }
    const frames = new PacketCounter();
    res.on('data', (chunk: Buffer) => frames.push(chunk));
    let timer: NodeJS.Timeout | undefined;
    if (opts.duration) timer = setTimeout(() => res.destroy(), Number(opts.duration) * 1000);
    process.once('SIGINT', () => res.destroy());
    await new Promise<void>((resolve) => {
      res.pipe(out);
      res.on('close', () => {
        clearTimeout(timer);
        if (out !== process.stdout) out.end(resolve);
        else resolve();
      });
    });
    // On standard error, so that a pcapng on standard output stays whole.
    console.error(`${frames.packets} frame${frames.packets === 1 ? '' : 's'} written to ${opts.write === '-' ? 'standard output' : opts.write}`);
  });

/** Refuses a capture file that could not be written before asking the agent for frames. */
function checkCaptureFile(file: string): void {
  try {
    checkPrivateFilePath(file, { what: 'the capture file' });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A remote host as the agent knows its tunnels: by underlay address. A name is looked up in
 * the lab, else by the system's resolver. */
async function tunnelAddress(host: string, labName?: string): Promise<string> {
  if (host === 'all' || /^\d+\.\d+\.\d+\.\d+$/.test(host)) return host;
  if (labName) {
    const state = readLabState(labName);
    const h = state?.plan.hosts.find((x) => x.name === host);
    if (h) return h.address;
    if (state) throw new UsageError(`--tunnel: lab ${labName} has no host ${host} (it has ${state.plan.hosts.map((x) => x.name).join(', ')})`);
  }
  try {
    return (await lookup(host, { family: 4 })).address;
  } catch {
    throw new UsageError(`--tunnel: no host ${JSON.stringify(host)}: give its name in --lab, a name the resolver knows, its underlay IPv4 address, or "all"`);
  }
}

const lab = program.command('lab').description('build multi-host topologies on this machine in network namespaces');

lab.command('up')
  .argument('<file>', 'a lab file (examples/quickstart.yaml is one)')
  .option('--no-check', 'skip the ping across each network once the lab is up')
  .description('build the lab: an underlay, hosts running agents, VMs on networks; a lab that is up is changed to match the file (VMs, networks, routers, groups)')
  .addHelpText('after', fileHelp('lab', 'weft lab schema'))
  .action(async (file: string, opts: { check: boolean }) => {
    const plan = loadTopology(file);
    // A lab that is up already is changed to match the file, as far as that can be live.
    const running = readLabState(plan.name) !== null;
    if (running) {
      const change = planChange(plan);
      if (!change) return console.log(`lab ${plan.name} is up; nothing to change`);
      console.log(`lab ${plan.name} is up; changing it to match ${file}`);
      await applyChange(change, (line) => console.log(`  ${line}`));
    } else {
      console.log(`building lab ${plan.name}: ${plan.hosts.length} hosts, ${plan.networks.length} networks, ${plan.vms.length} VMs`);
      await labUp(plan, (line) => console.log(`  ${line}`));
    }
    console.log(`lab ${plan.name} is up`);
    if (opts.check) {
      const failed = await checkLab(plan);
      if (failed > 0) process.exitCode = 1;
    }
    if (!running) console.log(`next: weft lab exec ${plan.name} VM -- COMMAND, weft stats --lab ${plan.name} --host HOST, weft lab down ${plan.name}`);
  });

/**
 * Pings from the first VM of each network to every other VM on it; across each router, from
 * the first VM of its first network to the last VM of its last; and from the first VM behind
 * a router with an external gateway to the outside machine (a web page). Returns the
 * failures.
 */
async function checkLab(plan: ReturnType<typeof loadTopology>): Promise<number> {
  let failed = 0;
  const report = (what: string, ok: boolean, detail: string) => {
    console.log(`  ${what}: ${ok ? detail : 'FAILED'}`);
    if (!ok) failed++;
  };
  for (const net of plan.networks) {
    const members = plan.vms.flatMap((vm) => vm.attachments.filter((a) => a.network === net.name).map((a) => ({ vm, a })));
    const [first, ...others] = members;
    for (const other of others) {
      const address = other.a.ip.split('/')[0];
      const src = first.a.vid === null ? [] : ['-I', `eth0.${first.a.vid}`];
      const r = await labExec(plan.name, first.vm.name, ['ping', '-c', '1', '-W', '2', ...src, address], 'pipe');
      report(`ping ${first.vm.name} (${first.vm.host.name}) -> ${other.vm.name} (${other.vm.host.name}, ${address}) on ${net.name}`, r.code === 0, /time=([\d.]+ ms)/.exec(r.stdout)?.[1] ?? '');
    }
  }
  for (const r of plan.routers) {
    const from = plan.vms.find((vm) => vm.attachments[0].network === r.networks[0] && vm.attachments[0].vid === null);
    const to = [...plan.vms].reverse().find((vm) => vm.attachments[0].network === r.networks[r.networks.length - 1] && vm.attachments[0].vid === null);
    if (from && to && r.networks.length > 1) {
      const address = to.attachments[0].ip.split('/')[0];
      const p = await labExec(plan.name, from.name, ['ping', '-c', '1', '-W', '2', address], 'pipe');
      report(`ping ${from.name} (${from.host.name}) -> ${to.name} (${to.host.name}, ${address}) through router ${r.name}`, p.code === 0, /time=([\d.]+ ms)/.exec(p.stdout)?.[1] ?? '');
    }
    if (from && r.externalGateway && plan.outside) {
      const address = plan.outside.ip.split('/')[0];
      const w = await labExec(plan.name, from.name, ['timeout', '5', 'busybox', 'wget', '-q', '-O', '-', `http://${address}/`], 'pipe');
      report(`fetch ${from.name} (${from.host.name}) -> http://${address}/ (outside, through ${r.name}'s external gateway)`, w.code === 0, JSON.stringify(w.stdout.trim()));
    }
  }
  return failed;
}

lab.command('down')
  .argument('<lab>', 'the lab\'s name')
  .description('remove every namespace, link, process and file of the lab')
  .action((name: string) => {
    labDir(name); // a name that is no lab name at all ("../x") is refused first, as such
    // A name that is no lab here is a mistake to say, not a clean-up that found nothing.
    if (!listLabs().includes(name)) throw new UsageError(noLab(name));
    const r = labDown(name);
    console.log(`lab ${name} removed: ${r.namespaces} namespaces, ${r.processes} processes`);
  });

lab.command('exec')
  .argument('<lab>')
  .argument('<vm>', 'a VM (or host) of the lab')
  .argument('<command...>', 'the command, after --')
  .description('run a command inside a VM of the lab')
  .action(async (name: string, vm: string, command: string[]) => {
    const r = await labExec(name, vm, command);
    process.exitCode = r.code;
  });

lab.command('restart')
  .argument('<lab>')
  .argument('<name>', 'a host (its agent) or "controller"')
  .option('--down <ms>', 'stay down this long before starting again', '0')
  .option('--signal <signal>', 'how to stop it', 'SIGKILL')
  .description('kill an agent or the controller and start it again, to see what a restart does')
  .action(async (name: string, what: string, opts: { down: string; signal: string }) => {
    const pid = await labRestart(name, what, opts.signal as NodeJS.Signals, Number(opts.down));
    console.log(`${what} restarted (pid ${pid})`);
  });

lab.command('console')
  .argument('<lab>')
  .option('--port <port>', 'the local port to serve it on (0: any free one)', '7480')
  .description('serve the lab controller\'s web console on this machine\'s loopback, and print its address (with the admin token); Ctrl-C stops')
  .action(async (name: string, opts: { port: string }) => {
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port takes a port number, not ${JSON.stringify(opts.port)}`);
    const { url } = await labConsole(name, port);
    console.log(`the web console of lab ${name}: ${url}`);
    console.log('(only on this machine\'s loopback; Ctrl-C stops it)');
  });

lab.command('schema')
  .description('print the lab file\'s JSON Schema (weft schema lab), as docs/lab.schema.json holds it')
  .action(() => {
    process.stdout.write(schemaText('lab'));
  });

lab.command('list')
  .description('list the labs on this machine')
  .action(() => {
    for (const name of listLabs()) {
      const s = readLabState(name);
      console.log(s ? `${name}\t${s.plan.hosts.length} hosts, ${s.plan.vms.length} VMs, since ${s.createdAt}` : `${name}\t(incomplete: weft lab down ${name})`);
    }
  });

dropOutputOnClosedPipe();
program.parseAsync(process.argv).catch(reportAndExit);
