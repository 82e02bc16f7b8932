/**
 * A lab topology file: hosts, networks and VMs to build on one Linux machine.
 *
 *   name: quickstart
 *   hosts: [{ name: h1 }, { name: h2, datapath: linux }]
 *   networks: [{ name: blue, vni: 100, encapsulation: vxlan }]
 *   vms:
 *     - { name: blue1, host: h1, network: blue, ip: 10.10.0.1/24 }
 *     - { name: both, host: h1, trunk: { 10: { network: blue, ip: 10.10.0.9/24 } } }
 *
 * A host's datapath is `weft` (an agent) or `linux` (a kernel bridge with a VXLAN device:
 * the reference peer for interoperability and benchmarks).
 */
import { z } from 'zod';
import { ConfigError, readYamlFile } from '../agent/config.js';
import { ENCAPSULATIONS, type Encapsulation } from '../datapath/encapsulation.js';
import { formatIpv4, formatMac, parseIpv4 } from '../wire/bytes.js';
import { VID_MAX, VID_MIN } from '../wire/vlan.js';
import { VNI_MAX } from '../wire/vxlan.js';
import { nameRecord } from '../config/fields.js';

/** The rule for every name in a topology, the lab's own included: short enough for the
 * interface and namespace names built from it, and never a path ("/", "..") either. */
export const LAB_NAME_RULE = 'a lowercase name: a letter, then letters, digits or "-", at most 12 characters';
const LAB_NAME = /^[a-z][a-z0-9-]{0,11}$/;
const name = z.string().regex(LAB_NAME, LAB_NAME_RULE);

/** Whether `text` is a valid lab name (the same rule as the topology's `name:`). */
export function isLabName(text: string): boolean {
  return LAB_NAME.test(text);
}
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 address with a prefix length, such as 10.0.0.1/24');

const schema = z.object({
  name,
  underlay: z.object({
    subnet: cidr.default('10.99.0.0/24'),
    mtu: z.number().int().min(1280).max(9000).default(1500),
  }).strict().default({ subnet: '10.99.0.0/24', mtu: 1500 }),
  /** Run a controller: the agents follow it, and the lab creates everything through its API. */
  controller: z.boolean().default(false),
  hosts: z.array(z.object({ name, datapath: z.enum(['weft', 'linux']).default('weft') }).strict()).min(1),
  networks: z.array(z.object({
    name,
    vni: z.number().int().min(1).max(VNI_MAX),
    encapsulation: z.enum(ENCAPSULATIONS as [string, ...string[]]).default('vxlan'),
    /** An MTU below what the underlay allows (labs with a controller). */
    mtu: z.number().int().min(576).max(9000).optional(),
    /** A provider network on the lab's physical network (labs with a controller): flat, or
     * on an 802.1Q VLAN. */
    provider: z.object({ vlan: z.number().int().min(VID_MIN).max(VID_MAX).optional() }).strict().optional(),
    /** An IPv6 /64 (labs with a controller): the VMs make their addresses from the hosts'
     * router advertisements (SLAAC). */
    ipv6: z.string().optional(),
    /** noise: only in the hosts' encrypted tunnels; none: plain VXLAN or Geneve. Labs with a
     * controller encrypt every VXLAN overlay network whose hosts all run Weft unless told
     * none; labs without one do not encrypt. */
    encryption: z.enum(['noise', 'none']).optional(),
  }).strict()).default([]),
  /** Replace tunnel sessions this often, in seconds (to watch rotation; default 120). */
  rekeyAfter: z.number().int().min(1).max(86_400).optional(),
  /** Security groups to create (labs with a controller), as the API takes them: `{ name,
   * rules: [{ direction: ingress, protocol: tcp, ports: { min: 80, max: 80 } }] }`. */
  securityGroups: z.array(z.object({ name, rules: z.array(nameRecord(z.string(), z.unknown())).default([]) }).strict()).default([]),
  /** A machine on the lab's physical network (untagged), outside every overlay: a namespace
   * with this address and a web server (busybox httpd) answering GET / with its name. */
  outside: z.object({ ip: cidr }).strict().optional(),
  /** Routers joining networks (labs with a controller): each VM's gateway is its subnet's
   * last host address. */
  routers: z.array(z.object({
    name,
    networks: z.array(name).min(1),
    /** Static routes: `10.40.0.0/24` via a VM's address. */
    routes: z.array(z.object({ cidr: z.string(), nextHop: z.string() }).strict()).default([]),
    /** Its way out: a provider network of the lab (the outside machine's, say). */
    externalGateway: name.optional(),
    /** Pin the external gateway to this host (else the controller places it). */
    gatewayHost: name.optional(),
    /** Ports of the router's external address forwarded to VMs. */
    forwards: z.array(z.object({
      protocol: z.enum(['tcp', 'udp']).default('tcp'),
      port: z.number().int().min(1).max(65535),
      vm: name,
      vmPort: z.number().int().min(1).max(65535).optional(),
    }).strict()).default([]),
  }).strict()).default([]),
  vms: z.array(z.object({
    name,
    host: name,
    network: name.optional(),
    ip: cidr.optional(),
    /** An IPv6 address with its prefix length, e.g. fd00:10::1/64 (access VMs). */
    ip6: z.string().regex(/^[0-9a-f:]+\/\d{1,3}$/i, 'an IPv6 address with a prefix length, such as fd00:10::1/64').optional(),
    trunk: nameRecord(z.string().regex(/^\d{1,4}$/), z.object({ network: name, ip: cidr }).strict()).optional(),
    /** The VM's interface MTU; defaults to its network's overlay MTU. */
    mtu: z.number().int().min(576).max(9000).optional(),
    /** The VM gets its address (`ip`, which the controller holds for its port), mask,
     * router and MTU from its host's DHCP server, with busybox udhcpc (access VMs, labs with
     * a controller). */
    dhcp: z.boolean().default(false),
    /** A floating address for the VM, on its router's external network. */
    floating: z.boolean().default(false),
    /** `netns`: a network namespace on a TAP (the default); `qemu`: a real virtual machine
     * (a small Debian guest built once and cached), on its host's Weft port through QEMU's
     * `-netdev stream`; it takes its address by DHCP. */
    kind: z.enum(['netns', 'qemu']).default('netns'),
    /** The TAP's offloads (TCP super-frames, checksums left to finish): on unless turned off,
     * to see what they bring (a qemu VM's stream carries none). */
    offload: z.boolean().default(true),
    /** Port security (labs with a controller): on unless turned off, and addresses or
     * prefixes the VM may also send from (`10.40.0.0/24`, or `10.10.0.100=02:00:5e:00:01:01`
     * with the MAC they use). */
    portSecurity: z.boolean().default(true),
    allowedAddresses: z.array(z.string()).max(16).default([]),
    /** Its security groups (labs with a controller; `default` when not given). */
    securityGroups: z.array(name).max(16).optional(),
    /** Most connections its groups track at once (4096 when not given). */
    connectionLimit: z.number().int().min(1).max(65536).optional(),
  }).strict()).default([]),
}).strict();

export type Topology = z.infer<typeof schema>;

export interface LabHost {
  name: string;
  index: number;
  datapath: 'weft' | 'linux';
  address: string;
  netns: string;
}

export interface LabVm {
  name: string;
  host: LabHost;
  netns: string;
  mac: string;
  mtu: number | undefined;
  ip6: string | undefined;
  dhcp: boolean;
  floating: boolean;
  kind: 'netns' | 'qemu';
  offload: boolean;
  portSecurity: boolean;
  allowedAddresses: string[];
  securityGroups?: string[];
  connectionLimit?: number;
  /** Access: one interface on `network`; trunk: eth0 with a VLAN subinterface per tag. */
  attachments: Array<{ vid: number | null; network: string; ip: string }>;
}

export interface LabPlan {
  name: string;
  /** The controller's namespace and underlay address, when the lab has one. */
  controller: { netns: string; address: string } | null;
  underlayNetns: string;
  underlayPrefix: number;
  underlayMtu: number;
  hosts: LabHost[];
  networks: Array<{ name: string; vni: number; encapsulation: Encapsulation; mtu?: number; provider?: { vlan?: number }; ipv6?: string; hosts: string[]; encrypted: boolean }>;
  rekeyAfter: number | null;
  /** The physical network (a bridge beside the underlay's) that provider networks and the
   * outside machine are on; null when the lab has neither. */
  physical: { name: string; bridge: string } | null;
  outside: { netns: string; ip: string } | null;
  vms: LabVm[];
  securityGroups: Array<{ name: string; rules: Array<Record<string, unknown>> }>;
  routers: Array<{ name: string; networks: string[]; routes: Array<{ cidr: string; nextHop: string }>; externalGateway?: string; gatewayHost?: string;
    forwards: Array<{ protocol: 'tcp' | 'udp'; port: number; vm: string; vmPort?: number }> }>;
}

export const NETNS_PREFIX = 'weft-';
/** The name of the lab's physical network, as its hosts' agents map it (to phys0). */
export const PHYSICAL_NETWORK = 'physnet';

export function labNetnsPrefix(lab: string): string {
  return `${NETNS_PREFIX}${lab}-`;
}

/** Checks a topology and works out every name and address the lab will use. */
export function planLab(doc: unknown, file: string): LabPlan {
  const parsed = schema.safeParse(doc);
  if (!parsed.success) {
    throw new ConfigError(file, parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(top level)'}: ${i.message}`));
  }
  const t = parsed.data;
  const problems: string[] = [];
  const prefix = labNetnsPrefix(t.name);
  const [subnetText, lenText] = t.underlay.subnet.split('/');
  const base = parseIpv4(subnetText);
  const prefixLen = Number(lenText);
  const taken = new Set<string>(['underlay']);
  const claim = (n: string, what: string) => {
    if (taken.has(n)) problems.push(`${what} ${n}: the name is used already (hosts and VMs share one namespace of names, and "underlay" is reserved)`);
    taken.add(n);
  };
  const hosts: LabHost[] = t.hosts.map((h, i) => {
    claim(h.name, 'host');
    return { name: h.name, index: i, datapath: h.datapath, address: formatIpv4(base + i + 1), netns: prefix + h.name };
  });
  if (hosts.length + 3 > 2 ** (32 - prefixLen)) problems.push(`underlay.subnet: ${t.underlay.subnet} is too small for ${hosts.length} hosts`);
  // The controller takes the last host address of the underlay.
  const controller = t.controller ? { netns: `${prefix}controller`, address: formatIpv4(base + 2 ** (32 - prefixLen) - 2) } : null;
  if (controller) claim('controller', 'the controller');
  const nets = new Map(t.networks.map((n) => [n.name, { name: n.name, vni: n.vni, encapsulation: n.encapsulation as Encapsulation, ...(n.mtu ? { mtu: n.mtu } : {}), ...(n.provider ? { provider: n.provider } : {}), ...(n.ipv6 ? { ipv6: n.ipv6 } : {}), hosts: [] as string[], encrypted: false }]));
  t.networks.forEach((n, i) => {
    if (n.provider && !t.controller) problems.push(`networks[${i}].provider: provider networks are made through the controller; set controller: true`);
    if (n.ipv6 && !t.controller) problems.push(`networks[${i}].ipv6: router advertisements come with a controller; set controller: true`);
  });
  if (t.outside) claim('outside', 'the outside machine');
  const physical = t.outside || t.networks.some((n) => n.provider) ? { name: PHYSICAL_NETWORK, bridge: 'phys' } : null;
  const vnis = new Set<number>();
  for (const n of t.networks) {
    if (vnis.has(n.vni)) problems.push(`networks: VNI ${n.vni} is used twice`);
    vnis.add(n.vni);
  }
  const vms: LabVm[] = t.vms.map((v, i) => {
    claim(v.name, 'vm');
    const host = hosts.find((h) => h.name === v.host);
    if (!host) problems.push(`vms[${i}].host: no host named ${v.host}`);
    const attachments: LabVm['attachments'] = [];
    if ((v.network === undefined) === (v.trunk === undefined)) {
      problems.push(`vms[${i}]: give either network and ip, or trunk`);
    } else if (v.network !== undefined) {
      if (v.ip === undefined) problems.push(`vms[${i}].ip: an access VM needs an address`);
      attachments.push({ vid: null, network: v.network, ip: v.ip ?? '' });
    } else {
      for (const [vid, a] of Object.entries(v.trunk!)) {
        if (Number(vid) < VID_MIN || Number(vid) > VID_MAX) problems.push(`vms[${i}].trunk.${vid}: VLAN IDs are ${VID_MIN}..${VID_MAX}`);
        attachments.push({ vid: Number(vid), network: a.network, ip: a.ip });
      }
    }
    for (const a of attachments) {
      const net = nets.get(a.network);
      if (!net) {
        problems.push(`vms[${i}]: no network named ${a.network}`);
        continue;
      }
      if (host && !net.hosts.includes(host.name)) net.hosts.push(host.name);
      if (host?.datapath === 'linux' && net.encapsulation !== 'vxlan') {
        problems.push(`vms[${i}]: host ${host.name} uses the linux datapath, which the lab builds for VXLAN networks only`);
      }
      if (host?.datapath === 'linux' && a.vid !== null) problems.push(`vms[${i}]: trunk VMs need a weft host`);
      if (host?.datapath === 'linux' && net.provider) problems.push(`vms[${i}]: provider networks need a weft host`);
    }
    if (v.ip6 && v.trunk) problems.push(`vms[${i}].ip6: only access VMs take an ip6`);
    if (v.dhcp && (v.trunk || !t.controller)) problems.push(`vms[${i}].dhcp: DHCP is served to access VMs in a lab with a controller`);
    if (v.floating && !t.routers.some((r) => r.externalGateway && v.network !== undefined && r.networks.includes(v.network))) {
      problems.push(`vms[${i}].floating: its network is on no router with an externalGateway`);
    }
    if (v.kind === 'qemu' && (v.trunk || !t.controller || host?.datapath === 'linux' || v.ip6 || v.mtu)) {
      problems.push(`vms[${i}].kind: a qemu VM is an access VM on a weft host of a lab with a controller (its address, MTU and routes come by DHCP)`);
    }
    return { name: v.name, host: host!, netns: prefix + v.name, mac: formatMac(0x025746000000 + i + 1), mtu: v.mtu, ip6: v.ip6, dhcp: v.dhcp || v.kind === 'qemu', floating: v.floating, kind: v.kind, offload: v.offload, portSecurity: v.portSecurity, allowedAddresses: v.allowedAddresses, ...(v.securityGroups ? { securityGroups: v.securityGroups } : {}), ...(v.connectionLimit ? { connectionLimit: v.connectionLimit } : {}), attachments };
  });
  t.networks.forEach((n, i) => {
    if (n.mtu !== undefined && !t.controller) problems.push(`networks[${i}].mtu: a network's own MTU is set through the controller; set controller: true`);
  });
  t.routers.forEach((r, i) => {
    if (!t.controller) problems.push(`routers[${i}]: routers are made through the controller; set controller: true`);
    for (const n of r.networks) if (!nets.has(n)) problems.push(`routers[${i}]: no network named ${n}`);
    if (r.externalGateway !== undefined && !nets.get(r.externalGateway)?.provider) problems.push(`routers[${i}].externalGateway: ${r.externalGateway} is not a provider network of the lab`);
    if (r.gatewayHost !== undefined && !hosts.some((h) => h.name === r.gatewayHost)) problems.push(`routers[${i}].gatewayHost: no host named ${r.gatewayHost}`);
    for (const [k, f] of r.forwards.entries()) {
      const vm = t.vms.find((v) => v.name === f.vm);
      if (!vm || vm.network === undefined || !r.networks.includes(vm.network)) problems.push(`routers[${i}].forwards[${k}].vm: no VM ${f.vm} on the router's networks`);
    }
    if (r.forwards.length > 0 && r.externalGateway === undefined) problems.push(`routers[${i}].forwards: a router forwards from its external gateway; give externalGateway`);
  });
  t.networks.forEach((n, i) => {
    const net = nets.get(n.name)!;
    const linux = net.hosts.filter((h) => hosts.find((x) => x.name === h)?.datapath === 'linux');
    const plainOnly = !t.controller ? 'labs without a controller do not encrypt' : n.provider ? 'a provider network is on the physical network'
      : n.encapsulation !== 'vxlan' ? 'encrypted tunnels carry VXLAN' : linux.length ? `host ${linux[0]} runs the kernel's VXLAN` : null;
    if (n.encryption === 'noise' && plainOnly) problems.push(`networks[${i}].encryption: cannot encrypt ${n.name}: ${plainOnly}`);
    net.encrypted = plainOnly === null && n.encryption !== 'none';
  });
  if (t.securityGroups.length > 0 && !t.controller) problems.push('securityGroups: security groups are made through the controller; set controller: true');
  if (problems.length > 0) throw new ConfigError(file, problems);
  return {
    rekeyAfter: t.rekeyAfter ?? null,
    securityGroups: t.securityGroups,
    routers: t.routers,
    name: t.name,
    controller,
    underlayNetns: `${prefix}underlay`,
    underlayPrefix: prefixLen,
    underlayMtu: t.underlay.mtu,
    hosts,
    networks: [...nets.values()],
    vms,
    physical,
    outside: t.outside ? { netns: `${prefix}outside`, ip: t.outside.ip } : null,
  };
}

export function loadTopology(file: string): LabPlan {
  return planLab(readYamlFile(file), file);
}
