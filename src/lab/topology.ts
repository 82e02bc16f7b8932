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
import { issueLines } from '../config/field-path.js';
import { writtenJsonSchema } from '../config/json-schema.js';
import { addressOrPrefix, ipv4Cidr, ipv4Interface, ipv6Interface, ipv6Prefix64, unicastIpv4, unicastMac } from '../config/fields.js';
import { securityGroupRule } from '../controller/model.js';
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
/** An address or prefix a VM may also send from, and after "=" the MAC it uses if not the
 * VM's own (`10.10.0.100=02:00:5e:00:01:01`), canonical. */
const allowedAddress = z.string().transform((text, ctx) => {
  const [address, mac, extra] = text.split('=');
  const a = addressOrPrefix.safeParse(address);
  const m = mac === undefined ? undefined : unicastMac.safeParse(mac);
  if (extra !== undefined || !a.success || m?.success === false) {
    const why = extra !== undefined ? 'one "=" at most' : !a.success ? a.error.issues[0].message : m!.error!.issues[0].message;
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)}: ${why} (an address or prefix, and "=MAC" if it uses another MAC than the VM's)` });
    return z.NEVER;
  }
  return m ? `${a.data}=${m.data}` : a.data;
});

const cidr = ipv4Interface.meta({ examples: ['10.10.0.1/24'] });

/** What the lab reads from a topology file. Every key's `.describe()` text is the
 * reference: `weft lab schema` prints it as a JSON Schema, and docs/lab-file.md is made from
 * it (`npm run docs`). */
export const labFileSchema = z.object({
  name: name.describe('The lab\'s name: its namespaces are weft-NAME-*, its state /run/weft/lab/NAME.').meta({ examples: ['quickstart'] }),
  underlay: z.object({
    subnet: ipv4Cidr.prefault('10.99.0.0/24').describe('The physical network between the hosts: host N gets the Nth address, the controller the last one.').meta({ examples: ['10.99.0.0/24'] }),
    mtu: z.number().int().min(1280).max(9000).default(1500).describe('The underlay\'s MTU; overlay networks get it less their encapsulation.').meta({ examples: [9000] }),
  }).strict().default({ subnet: '10.99.0.0/24', mtu: 1500 }).describe('The network the hosts share (a bridge in its own namespace).'),
  controller: z.boolean().default(false).describe('Run a controller: the agents follow it, and the lab creates everything through its API (`weft ... --lab NAME` reaches it).'),
  hosts: z.array(z.object({
    name: name.describe('The host\'s name (hosts and VMs share one set of names).').meta({ examples: ['h1'] }),
    datapath: z.enum(['weft', 'linux']).default('weft').describe('`weft`: a Weft agent; `linux`: a kernel bridge with a VXLAN device per network (a reference peer, VXLAN only).'),
  }).strict()).min(1).describe('The hosts, each a namespace on the underlay.'),
  networks: z.array(z.object({
    name: name.describe('The network\'s name, which VMs and routers name.').meta({ examples: ['blue'] }),
    vni: z.number().int().min(1).max(VNI_MAX).optional().describe('Its VXLAN/Geneve network identifier; when left out, the lowest one no other network of the file has, as the controller allocates.').meta({ examples: [100] }),
    encapsulation: z.enum(ENCAPSULATIONS as [string, ...string[]]).default('vxlan').describe('How the hosts carry its frames.'),
    mtu: z.number().int().min(576).max(9000).optional().describe('An MTU below what the underlay allows (labs with a controller).').meta({ examples: [1400] }),
    provider: z.object({
      vlan: z.number().int().min(VID_MIN).max(VID_MAX).optional().describe('The 802.1Q VLAN it is on; untagged when left out.').meta({ examples: [30] }),
    }).strict().optional().describe('A provider network on the lab\'s physical network instead of an overlay (labs with a controller): flat (`{}`), or on a VLAN.').meta({ examples: [{}, { vlan: 30 }] }),
    ipv6: ipv6Prefix64.optional().describe('An IPv6 /64 (labs with a controller): the VMs make their addresses from the hosts\' router advertisements (SLAAC).').meta({ examples: ['fd00:10::/64'] }),
    encryption: z.enum(['noise', 'none']).optional().describe('`noise`: only in the hosts\' encrypted tunnels; `none`: plain VXLAN or Geneve. Labs with a controller encrypt every VXLAN overlay network whose hosts all run Weft unless told `none`; labs without one do not encrypt.'),
  }).strict()).default([]).describe('The overlay (and provider) networks.'),
  rekeyAfter: z.number().int().min(1).max(86_400).optional().describe('Replace tunnel sessions this often, in seconds (to watch rotation; 120 when left out).').meta({ examples: [10] }),
  securityGroups: z.array(z.object({
    name: name.describe('The group\'s name, which VMs and rules name.').meta({ examples: ['web'] }),
    rules: z.array(securityGroupRule).max(100).default([]).describe('Its allow rules, as the controller\'s API takes them (`weft security-group rule add --help`).')
      .meta({ examples: [[{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 } }]] }),
  }).strict()).default([]).describe('Security groups to create (labs with a controller).'),
  outside: z.object({
    ip: cidr.describe('Its address and prefix on the physical network.').meta({ examples: ['203.0.113.1/24'] }),
  }).strict().optional().describe('A machine on the lab\'s physical network (untagged), outside every overlay: a namespace with a web server (busybox httpd) answering GET / with a greeting.'),
  routers: z.array(z.object({
    name: name.describe('The router\'s name.').meta({ examples: ['r1'] }),
    networks: z.array(name).min(1).describe('The networks it joins; each VM\'s gateway is its subnet\'s last host address.').meta({ examples: [['blue', 'red']] }),
    routes: z.array(z.object({
      cidr: ipv4Cidr.describe('The destination prefix.').meta({ examples: ['10.40.0.0/24'] }),
      nextHop: unicastIpv4.describe('The address of a VM on one of its networks.').meta({ examples: ['10.10.0.3'] }),
    }).strict()).default([]).describe('Static routes.'),
    externalGateway: name.optional().describe('Its way out: a provider network of the lab (the outside machine\'s, say); the router translates (source NAT).').meta({ examples: ['public'] }),
    gatewayHost: name.optional().describe('Pin the external gateway to this host (else the controller places it).').meta({ examples: ['h1'] }),
    forwards: z.array(z.object({
      protocol: z.enum(['tcp', 'udp']).default('tcp').describe('The protocol forwarded.'),
      port: z.number().int().min(1).max(65535).describe('The port of the router\'s external address.').meta({ examples: [8080] }),
      vm: name.describe('The VM it forwards to (on one of the router\'s networks).').meta({ examples: ['blue1'] }),
      vmPort: z.number().int().min(1).max(65535).optional().describe('The VM\'s port; `port` when left out.').meta({ examples: [80] }),
    }).strict()).default([]).describe('Ports of the router\'s external address forwarded to VMs.'),
  }).strict()).default([]).describe('Routers joining networks (labs with a controller).'),
  vms: z.array(z.object({
    name: name.describe('The VM\'s name: `weft lab exec LAB NAME -- COMMAND` runs in it.').meta({ examples: ['blue1'] }),
    host: name.describe('The host it runs on.').meta({ examples: ['h1'] }),
    network: name.optional().describe('An access VM\'s network (give `network` and `ip`, or `trunk`).').meta({ examples: ['blue'] }),
    ip: cidr.optional().describe('An access VM\'s address with its prefix length. In a lab with a controller, each network\'s VMs share one prefix, which becomes its subnet.'),
    ip6: ipv6Interface.optional().describe('An IPv6 address with its prefix length (access VMs).').meta({ examples: ['fd00:10::1/64'] }),
    trunk: nameRecord(z.string().regex(/^\d{1,4}$/, `a VLAN ID, ${VID_MIN}..${VID_MAX}`), z.object({
      network: name.describe('The network on this VLAN.').meta({ examples: ['blue'] }),
      ip: cidr.describe('The address of its eth0.VID.'),
    }).strict()).optional().describe('A trunk VM: eth0 with a VLAN subinterface eth0.VID per VLAN ID.').meta({ examples: [{ 10: { network: 'blue', ip: '10.10.0.9/24' } }] }),
    mtu: z.number().int().min(576).max(9000).optional().describe('The VM\'s interface MTU; its network\'s overlay MTU when left out.').meta({ examples: [1400] }),
    dhcp: z.boolean().default(false).describe('The VM gets its address (`ip`, which the controller holds for its port), mask, router and MTU from its host\'s DHCP server, with busybox udhcpc (access VMs, labs with a controller).'),
    floating: z.boolean().default(false).describe('A floating address for the VM, on its router\'s external network.'),
    kind: z.enum(['netns', 'qemu']).default('netns').describe('`netns`: a network namespace on a TAP; `qemu`: a real virtual machine (a small Debian guest built once and cached) on its host\'s Weft port through QEMU\'s `-netdev stream`; it takes its address by DHCP.'),
    offload: z.boolean().default(true).describe('The TAP\'s offloads (TCP super-frames, checksums left to finish), to see what they bring (a qemu VM\'s stream carries none).'),
    portSecurity: z.boolean().default(true).describe('Port security (labs with a controller): the VM may send only from its own addresses and MAC, and `allowedAddresses`.'),
    allowedAddresses: z.array(allowedAddress).max(16).default([]).describe('Addresses or prefixes the VM may also send from, each with the MAC it uses after "=" if not the VM\'s own.')
      .meta({ examples: [['10.40.0.0/24', '10.10.0.100=02:00:5e:00:01:01']] }),
    securityGroups: z.array(name).max(16).optional().describe('Its security groups (labs with a controller; `default` when left out).').meta({ examples: [['web']] }),
    connectionLimit: z.number().int().min(1).max(65536).optional().describe('Most connections its groups track at once (4096 when left out).').meta({ examples: [1024] }),
  }).strict()).default([]).describe('The VMs: network namespaces (or QEMU guests) on their hosts\' ports.'),
}).strict().describe('A Weft lab: hosts, networks and VMs built on this machine in network namespaces (`weft lab up FILE`).');

export type Topology = z.infer<typeof labFileSchema>;

/** The lab file's JSON Schema (draft-07, which editors' YAML language servers read), as
 * `weft lab schema` prints it and docs/lab.schema.json holds it. */
export function labFileJsonSchema(): Record<string, unknown> {
  return writtenJsonSchema(labFileSchema, 'Weft lab file');
}

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

/**
 * Checks a topology and works out every name and address the lab will use. The whole file
 * is checked before anything is built: its shape first (every problem the schema finds),
 * then how its parts fit together (every problem again), each as `FIELD: WHY` in a
 * ConfigError that names `file`.
 */
export function planLab(doc: unknown, file: string): LabPlan {
  const parsed = labFileSchema.safeParse(doc);
  if (!parsed.success) throw new ConfigError(file, issueLines(parsed.error));
  const t = parsed.data;
  const problems: string[] = [];
  const prefix = labNetnsPrefix(t.name);
  const [subnetText, lenText] = t.underlay.subnet.split('/');
  const base = parseIpv4(subnetText);
  const prefixLen = Number(lenText);
  const underlaySize = 2 ** (32 - prefixLen);

  // Hosts and VMs (and the lab's own namespaces) share one set of names: each is a namespace.
  const taken = new Map<string, string>([['underlay', 'the lab\'s underlay']]);
  if (t.controller) taken.set('controller', 'the lab\'s controller');
  if (t.outside) taken.set('outside', 'the lab\'s outside machine');
  const claim = (n: string, at: string) => {
    const first = taken.get(n);
    if (first !== undefined) problems.push(`${at}.name: ${n} is the name of ${first} already (hosts and VMs share one set of names, each a namespace weft-${t.name}-NAME)`);
    else taken.set(n, at);
  };
  const unique = (list: Array<{ name: string }>, key: string) => {
    const seen = new Map<string, number>();
    list.forEach((x, i) => {
      const first = seen.get(x.name);
      if (first !== undefined) problems.push(`${key}[${i}].name: ${x.name} is the name of ${key}[${first}] already`);
      else seen.set(x.name, i);
    });
  };

  const hosts: LabHost[] = t.hosts.map((h, i) => {
    claim(h.name, `hosts[${i}]`);
    return { name: h.name, index: i, datapath: h.datapath, address: formatIpv4(base + i + 1), netns: prefix + h.name };
  });
  // Hosts take the first addresses; the controller takes the last.
  const room = Math.max(0, underlaySize - 2);
  const need = hosts.length + (t.controller ? 1 : 0);
  if (need > room) {
    problems.push(`underlay.subnet: ${t.underlay.subnet} has ${room} host address${room === 1 ? '' : 'es'}, and the lab needs ${need} (${hosts.length} host${hosts.length === 1 ? '' : 's'}${t.controller ? ' and the controller' : ''})`);
  }
  const controller = t.controller ? { netns: `${prefix}controller`, address: formatIpv4(base + underlaySize - 2) } : null;

  unique(t.networks, 'networks');
  unique(t.routers, 'routers');
  unique(t.securityGroups, 'securityGroups');
  // VNIs: those the file gives, each once; the others get the lowest free one, in file order.
  const vniOwner = new Map<number, number>();
  t.networks.forEach((n, i) => {
    if (n.vni === undefined) return;
    const first = vniOwner.get(n.vni);
    if (first !== undefined) problems.push(`networks[${i}].vni: VNI ${n.vni} is the VNI of networks[${first}] (${t.networks[first].name}) already`);
    else vniOwner.set(n.vni, i);
  });
  let nextVni = 1;
  const vniOf = t.networks.map((n) => {
    if (n.vni !== undefined) return n.vni;
    while (vniOwner.has(nextVni)) nextVni++;
    return nextVni++;
  });
  const nets = new Map<string, LabPlan['networks'][number]>();
  t.networks.forEach((n, i) => {
    if (!nets.has(n.name)) nets.set(n.name, { name: n.name, vni: vniOf[i], encapsulation: n.encapsulation as Encapsulation, ...(n.mtu ? { mtu: n.mtu } : {}), ...(n.provider ? { provider: n.provider } : {}), ...(n.ipv6 ? { ipv6: n.ipv6 } : {}), hosts: [], encrypted: false });
  });
  const netNames = () => [...nets.keys()].join(', ') || 'none';
  const physical = t.outside || t.networks.some((n) => n.provider) ? { name: PHYSICAL_NETWORK, bridge: 'phys' } : null;

  // Each network's addresses: who has each, and (with a controller) the one prefix that
  // becomes its subnet, from its first VM.
  const addresses = new Map<string, Map<string, string>>();
  const subnets = new Map<string, { network: number; size: number; len: number; at: string }>();
  const vms: LabVm[] = t.vms.map((v, i) => {
    const at = `vms[${i}]`;
    claim(v.name, at);
    const host = hosts.find((h) => h.name === v.host);
    if (!host) problems.push(`${at}.host: no host named ${v.host} (hosts: ${hosts.map((h) => h.name).join(', ')})`);
    const attachments: LabVm['attachments'] = [];
    const fields: string[] = [];
    if ((v.network === undefined) === (v.trunk === undefined)) {
      problems.push(`${at}: give either network and ip (an access VM), or trunk (a trunk VM), not ${v.network ? 'both' : 'neither'}`);
    } else if (v.network !== undefined) {
      if (v.ip === undefined) problems.push(`${at}.ip: an access VM needs an address`);
      attachments.push({ vid: null, network: v.network, ip: v.ip ?? '' });
      fields.push(at);
    } else {
      for (const [vid, a] of Object.entries(v.trunk!)) {
        if (Number(vid) < VID_MIN || Number(vid) > VID_MAX) problems.push(`${at}.trunk.${vid}: VLAN IDs are ${VID_MIN}..${VID_MAX}`);
        attachments.push({ vid: Number(vid), network: a.network, ip: a.ip });
        fields.push(`${at}.trunk.${vid}`);
      }
    }
    attachments.forEach((a, k) => {
      const where = fields[k];
      const net = nets.get(a.network);
      if (!net) {
        problems.push(`${where}.network: no network named ${a.network} (networks: ${netNames()})`);
        return;
      }
      if (host && !net.hosts.includes(host.name)) net.hosts.push(host.name);
      if (host?.datapath === 'linux' && net.encapsulation !== 'vxlan') {
        problems.push(`${where}.network: host ${host.name} uses the linux datapath, which the lab builds for VXLAN networks only`);
      }
      if (host?.datapath === 'linux' && a.vid !== null) problems.push(`${at}.trunk: trunk VMs need a weft host`);
      if (host?.datapath === 'linux' && net.provider) problems.push(`${where}.network: provider networks need a weft host`);
      if (a.ip === '') return;
      const [address, len] = a.ip.split('/');
      const have = addresses.get(net.name) ?? new Map<string, string>();
      addresses.set(net.name, have);
      const owner = have.get(address);
      if (owner !== undefined) problems.push(`${where}.ip: ${address} is the address of ${owner} on network ${net.name} already`);
      else have.set(address, `${at} (${v.name})`);
      if (!t.controller) return;
      const ip = parseIpv4(address);
      const size = 2 ** (32 - Number(len));
      const subnet = subnets.get(net.name);
      if (subnet === undefined) {
        subnets.set(net.name, { network: ip - (ip % size), size, len: Number(len), at: `${where}.ip` });
      } else if (subnet.len !== Number(len) || ip - (ip % size) !== subnet.network) {
        problems.push(`${where}.ip: ${a.ip} is not in network ${net.name}'s subnet ${formatIpv4(subnet.network)}/${subnet.len} (the prefix of ${subnet.at}): the lab makes one subnet per network`);
      }
      const gateway = (subnet?.network ?? ip - (ip % size)) + (subnet?.size ?? size) - 2;
      if (ip === gateway && size > 2) problems.push(`${where}.ip: ${address} is network ${net.name}'s gateway (the lab gives a subnet's last host address to its router); choose another`);
    });
    if (v.ip6 && v.trunk) problems.push(`${at}.ip6: only access VMs take an ip6`);
    if (v.dhcp && (v.trunk || !t.controller)) problems.push(`${at}.dhcp: DHCP is served to access VMs in a lab with a controller`);
    if (v.floating && !t.routers.some((r) => r.externalGateway && v.network !== undefined && r.networks.includes(v.network))) {
      problems.push(`${at}.floating: its network is on no router with an externalGateway`);
    }
    if (v.kind === 'qemu' && (v.trunk || !t.controller || host?.datapath === 'linux' || v.ip6 || v.mtu)) {
      problems.push(`${at}.kind: a qemu VM is an access VM on a weft host of a lab with a controller (its address, MTU and routes come by DHCP)`);
    }
    const groups = new Set(['default', ...t.securityGroups.map((g) => g.name)]);
    v.securityGroups?.forEach((g, k) => {
      if (!groups.has(g)) problems.push(`${at}.securityGroups[${k}]: no security group named ${g} (the file's: ${[...groups].join(', ')})`);
    });
    if (v.securityGroups && !t.controller) problems.push(`${at}.securityGroups: security groups are made through the controller; set controller: true`);
    return { name: v.name, host: host!, netns: prefix + v.name, mac: formatMac(0x025746000000 + i + 1), mtu: v.mtu, ip6: v.ip6, dhcp: v.dhcp || v.kind === 'qemu', floating: v.floating, kind: v.kind, offload: v.offload, portSecurity: v.portSecurity, allowedAddresses: v.allowedAddresses, ...(v.securityGroups ? { securityGroups: v.securityGroups } : {}), ...(v.connectionLimit ? { connectionLimit: v.connectionLimit } : {}), attachments };
  });
  t.networks.forEach((n, i) => {
    if (n.mtu !== undefined && !t.controller) problems.push(`networks[${i}].mtu: a network's own MTU is set through the controller; set controller: true`);
  });
  t.routers.forEach((r, i) => {
    if (!t.controller) problems.push(`routers[${i}]: routers are made through the controller; set controller: true`);
    r.networks.forEach((n, k) => {
      if (!nets.has(n)) problems.push(`routers[${i}].networks[${k}]: no network named ${n} (networks: ${netNames()})`);
    });
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
  const groupNames = new Set(t.securityGroups.map((g) => g.name));
  t.securityGroups.forEach((g, i) => g.rules.forEach((r, k) => {
    if (r.remote && 'group' in r.remote && !groupNames.has(r.remote.group) && r.remote.group !== 'default') {
      problems.push(`securityGroups[${i}].rules[${k}].remote.group: no security group named ${r.remote.group} in the file`);
    }
  }));
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
