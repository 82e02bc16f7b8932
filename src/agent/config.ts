/**
 * `weft agent --config FILE`: a host's desired state from a YAML file, for running without
 * a controller. Every problem is reported with the file, the field and why:
 *
 *   h1.yaml: networks[1].vni: VNI 100 is used by network blue already
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ENCAPSULATIONS } from '../datapath/encapsulation.js';
import { GENEVE_PORT, TUNNEL_PORT, VXLAN_PORT } from '../wire/udp.js';
import { VNI_MAX } from '../wire/vxlan.js';
import { VID_MAX, VID_MIN } from '../wire/vlan.js';
import { issueLines } from '../config/field-path.js';
import { ifname, ipv4, name, nameRecord, netnsName, underlayAddress, underlayMtu, unixSocketPath } from '../config/fields.js';
import type { HostState, PortState } from './desired-state.js';

export class ConfigError extends Error {
  readonly code = 'ECONFIG';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

const udpPort = z.number().int().min(1).max(65535);

/** A remote host: its address, or address, port and (on an encrypted network) its tunnel
 * public key, as `weft agent --show-key` prints it on that host. */
const publicKey = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'an X25519 public key: 32 bytes in base64');
const remote = z.union([ipv4, z.object({ address: ipv4, port: udpPort.optional(), publicKey: publicKey.optional() }).strict()]);

const backend = z.discriminatedUnion('type', [
  z.object({ type: z.literal('tap'), device: ifname, netns: netnsName.optional(), offload: z.boolean().optional() }).strict(),
  z.object({ type: z.literal('qemu'), socket: unixSocketPath }).strict(),
  z.object({ type: z.literal('memory') }).strict(),
]);

const vid = z.coerce.number().int().min(VID_MIN).max(VID_MAX);

const schema = z.object({
  host: name,
  underlay: z.object({
    address: underlayAddress,
    port: udpPort.default(VXLAN_PORT),
    genevePort: udpPort.default(GENEVE_PORT),
    tunnelPort: udpPort.default(TUNNEL_PORT),
    mtu: underlayMtu.default(1500),
  }).strict()
    .refine((u) => u.port !== u.genevePort, { path: ['genevePort'], message: 'VXLAN and Geneve need a UDP port each' })
    .refine((u) => u.tunnelPort !== u.port && u.tunnelPort !== u.genevePort, { path: ['tunnelPort'], message: 'the encrypted tunnels need a UDP port of their own' }),
  networks: z.array(z.object({
    name,
    vni: z.number().int().min(1).max(VNI_MAX),
    encapsulation: z.enum(ENCAPSULATIONS as [string, ...string[]]).default('vxlan'),
    /** Without a controller, plain unless said: each remote of an encrypted one needs its key. */
    encryption: z.enum(['noise', 'none']).default('none'),
    remotes: z.array(remote).default([]),
  }).strict()).default([]),
  ports: z.array(z.object({
    name,
    network: name.optional(),
    trunk: z.object({
      vlans: nameRecord(z.string(), name).refine((r) => Object.keys(r).every((k) => vid.safeParse(k).success), `VLAN IDs must be ${VID_MIN}..${VID_MAX}`),
      native: name.optional(),
    }).strict().optional(),
    backend,
  }).strict()).default([]),
  /** Physical network -> this host's interface on it: where a controller's provider
   * networks leave this host. */
  physicalNetworks: nameRecord(name, ifname).default({}),
  limits: z.object({
    maxPorts: z.number().int().min(1).max(4096).default(64),
    fdbLimit: z.number().int().min(1).max(1_000_000).default(4096),
    fdbAgingSeconds: z.number().int().min(1).max(86_400).default(300),
  }).strict().default({ maxPorts: 64, fdbLimit: 4096, fdbAgingSeconds: 300 }),
}).strict();

/** Validates a parsed document; `file` names it in errors. */
export function hostStateFrom(doc: unknown, file: string): HostState {
  const parsed = schema.safeParse(doc);
  if (!parsed.success) {
    throw new ConfigError(file, issueLines(parsed.error));
  }
  const c = parsed.data;
  const problems: string[] = [];
  const byName = new Map<string, number>();
  const byVni = new Map<number, string>();
  c.networks.forEach((n, i) => {
    if (byName.has(n.name)) problems.push(`networks[${i}].name: network ${n.name} is defined twice`);
    byName.set(n.name, i);
    const other = byVni.get(n.vni);
    if (other !== undefined) problems.push(`networks[${i}].vni: VNI ${n.vni} is used by network ${other} already`);
    byVni.set(n.vni, n.name);
    if (n.encryption === 'noise' && n.encapsulation !== 'vxlan') problems.push(`networks[${i}].encryption: encrypted tunnels carry VXLAN, not ${n.encapsulation}`);
    n.remotes.forEach((r, k) => {
      const address = typeof r === 'string' ? r : r.address;
      if (address === c.underlay.address) problems.push(`networks[${i}].remotes[${k}]: ${address} is this host's own underlay address`);
      const key = typeof r === 'string' ? undefined : r.publicKey;
      if (n.encryption === 'noise' && key === undefined) problems.push(`networks[${i}].remotes[${k}]: an encrypted network's remote host needs its publicKey`);
      if (n.encryption === 'none' && key !== undefined) problems.push(`networks[${i}].remotes[${k}].publicKey: network ${n.name} is not encrypted (encryption: noise to encrypt it)`);
    });
  });
  const portNames = new Set<string>();
  const ports: PortState[] = [];
  c.ports.forEach((p, i) => {
    const at = `ports[${i}]`;
    if (portNames.has(p.name)) problems.push(`${at}.name: port ${p.name} is defined twice`);
    portNames.add(p.name);
    const known = (n: string, field: string) => {
      if (!byName.has(n)) problems.push(`${at}.${field}: no network named ${n} (networks: ${[...byName.keys()].join(', ') || 'none'})`);
    };
    if ((p.network === undefined) === (p.trunk === undefined)) {
      problems.push(`${at}: give either network (an access port) or trunk (a trunk port), not ${p.network ? 'both' : 'neither'}`);
      return;
    }
    if (p.network !== undefined) {
      known(p.network, 'network');
      ports.push({ name: p.name, mode: 'access', network: p.network, backend: p.backend });
    } else {
      const vlans: Record<number, string> = {};
      for (const [v, n] of Object.entries(p.trunk!.vlans)) {
        known(n, `trunk.vlans.${v}`);
        vlans[Number(v)] = n;
      }
      if (p.trunk!.native !== undefined) known(p.trunk!.native, 'trunk.native');
      ports.push({ name: p.name, mode: 'trunk', vlans, nativeNetwork: p.trunk!.native, backend: p.backend });
    }
  });
  if (problems.length > 0) throw new ConfigError(file, problems);
  return {
    host: c.host,
    underlay: c.underlay,
    networks: c.networks.map((n) => ({
      name: n.name,
      vni: n.vni,
      encapsulation: n.encapsulation as HostState['networks'][number]['encapsulation'],
      ...(n.encryption === 'noise' ? { encryption: 'noise' as const } : {}),
      // A remote without a port listens where this host does, for the network's encapsulation.
      remotes: n.remotes.map((r) => {
        const port = n.encryption === 'noise' ? c.underlay.tunnelPort : n.encapsulation === 'geneve' ? c.underlay.genevePort : c.underlay.port;
        return typeof r === 'string' ? { address: r, port } : { address: r.address, port: r.port ?? port, ...(r.publicKey ? { publicKey: r.publicKey } : {}) };
      }),
    })),
    ports,
    nat: [],
    securityGroups: {},
    addressSets: {},
    physicalNetworks: c.physicalNetworks,
    limits: c.limits,
  };
}

/** Reads a YAML file into plain data. Throws ConfigError for an unreadable file or bad YAML
 * (duplicate keys included), naming the file and the line. */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read it: ${(err as Error).message}`]);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => `line ${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`));
  }
  return doc.toJS();
}

/** Reads and validates a config file. Throws ConfigError naming the file and each problem. */
export function loadConfig(file: string): HostState {
  return hostStateFrom(readYamlFile(file), file);
}
