/**
 * The controller's resources: hosts, networks, subnets and ports, with the schemas that
 * validate what clients send. The same schemas produce the OpenAPI document.
 */
import { z } from 'zod';
import { ENCAPSULATIONS, type Encapsulation } from '../datapath/encapsulation.js';
import { addressOrPrefix, etherType, ifname, ipv4, ipv4Cidr, ipv6, ipv6Prefix64, name, nameRecord, netnsName, plainText, portAddress, underlayMtu, unicastIpv4, unicastMac, unixSocketPath } from '../config/fields.js';
import { GENEVE_PORT, TUNNEL_PORT, VXLAN_PORT } from '../wire/udp.js';
import { VNI_MAX } from '../wire/vxlan.js';
import { VID_MAX, VID_MIN } from '../wire/vlan.js';

export { name };

/** Where a port's frames come from and go: a TAP, a QEMU guest's socket, or memory. The
 * `.describe()` texts here and below are the reference of the API's bodies and of `weft
 * apply` files (docs/apply-file.md, `npm run docs`). */
export const backendSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('tap').describe('A TAP device on the port\'s host: the VM\'s NIC.'),
    device: ifname.describe('The TAP\'s name; the agent makes it when it is missing, and gives it the port\'s MAC.').meta({ examples: ['tap5'] }),
    netns: netnsName.optional().describe('The network namespace the TAP is in (the agent\'s own when left out); a persistent TAP there outlives an agent restart.').meta({ examples: ['vm5'] }),
    offload: z.boolean().optional().describe('The TAP\'s offloads (TCP super-frames, checksums left to finish); on when left out.'),
  }).strict(),
  z.object({
    type: z.literal('qemu').describe('A QEMU guest\'s `-netdev stream` socket (the guest\'s MAC must be the port\'s).'),
    socket: unixSocketPath.describe('The socket\'s path, inside the agents\' QEMU socket directory (/run/weft/qemu unless the controller says otherwise).').meta({ examples: ['/run/weft/qemu/vm5.sock'] }),
  }).strict(),
  z.object({ type: z.literal('memory').describe('No device: frames only in the agent (tests, and a port made before its VM).') }).strict(),
]);

/** A network's IPv6: one /64 whose addresses VMs make from their MACs (SLAAC), announced
 * by each host's router advertisements with these DNS servers. */
const networkIpv6 = z.object({
  prefix: ipv6Prefix64.describe('The network\'s /64; VMs make their addresses in it from their MACs (SLAAC).').meta({ examples: ['fd00:10::/64'] }),
  dns: z.array(ipv6).max(4).default([]).describe('DNS servers the router advertisements name (RDNSS).').meta({ examples: [['fd00:10::53']] }),
}).strict();

export const networkCreate = z.object({
  name: name.describe('The network\'s name, which subnets and ports name.').meta({ examples: ['blue'] }),
  vni: z.number().int().min(1).max(VNI_MAX).optional().describe('Its VXLAN/Geneve network identifier, unique among networks; the lowest free one when left out.').meta({ examples: [100] }),
  encapsulation: z.enum(ENCAPSULATIONS as [Encapsulation, ...Encapsulation[]]).default('vxlan').describe('How the hosts carry its frames to each other.'),
  mtu: z.number().int().min(576).max(9000).optional().describe('The largest IP packet its VMs may send: at most what each host\'s underlay allows less the encapsulation (for a provider network, what the physical network carries, 1500 when left out). VMs learn it by DHCP.').meta({ examples: [1400] }),
  provider: z.object({
    physicalNetwork: name.describe('The physical network: each host maps it to one of its interfaces (`weft agent --physical-network NAME=IFACE`).').meta({ examples: ['physnet'] }),
    vlan: z.number().int().min(VID_MIN).max(VID_MAX).optional().describe('The 802.1Q VLAN it is on there; untagged (flat) when left out.').meta({ examples: [30] }),
  }).strict().optional().describe('A provider network: on each host, on the interface it maps `physicalNetwork` to, instead of an overlay. One network per physical network and VLAN.'),
  ipv6: networkIpv6.optional().describe('IPv6 for the network (overlay networks): a /64 each host announces in router advertisements.'),
  encryption: z.enum(['noise', 'none']).optional().describe('`noise`: carried only in the encrypted tunnels between hosts (the default for VXLAN overlay networks); `none`: plain VXLAN or Geneve, as a Linux kernel or a switch speaks it (the default, and the only choice, for Geneve and provider networks). It does not change in place.'),
}).strict();
export const networkUpdate = z.object({ mtu: z.number().int().min(576).max(9000).nullable(), ipv6: networkIpv6.nullable() }).partial().strict();

/** A DNS domain name (RFC 1035 labels: letters, digits and hyphens, 63 bytes each), lower case. */
const dnsDomain = z.string().max(253).transform((s) => s.toLowerCase().replace(/\.$/, '')).refine(
  (s) => s.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l)),
  'a DNS domain such as example.internal: labels of letters, digits and hyphens, 63 characters at most',
);

export const subnetCreate = z.object({
  name: name.describe('The subnet\'s name, which routers name.').meta({ examples: ['blue4'] }),
  network: name.describe('The network it is a subnet of.').meta({ examples: ['blue'] }),
  cidr: ipv4Cidr.describe('Its prefix, /30 or larger, overlapping no other subnet of the network; it does not change in place.').meta({ examples: ['10.10.0.0/24'] }),
  gateway: ipv4.optional().describe('The router\'s address on it, a host address of `cidr`; the first one when left out.').meta({ examples: ['10.10.0.1'] }),
  allocation: z.object({
    start: ipv4.describe('The first address given out.').meta({ examples: ['10.10.0.10'] }),
    end: ipv4.describe('The last address given out.').meta({ examples: ['10.10.0.200'] }),
  }).strict().optional().describe('The range ports\' addresses are allocated from, without the gateway; every host address above the gateway when left out.'),
  dns: z.array(unicastIpv4).max(8).default([]).describe('DNS servers DHCP gives its ports.').meta({ examples: [['10.10.0.53']] }),
  domain: dnsDomain.optional().describe('The DNS domain of its ports: DHCP gives it as their domain name and search list.').meta({ examples: ['blue.internal'] }),
  dhcp: z.boolean().default(true).describe('Whether each host answers DHCP for the subnet\'s ports.'),
}).strict();
export const subnetUpdate = z.object({
  allocation: z.object({ start: ipv4, end: ipv4 }).strict(),
  dns: z.array(unicastIpv4).max(8),
  domain: dnsDomain.nullable(),
  dhcp: z.boolean(),
}).partial().strict();

/** A VLAN a trunk port carries: the network behind the tag, and the port's addresses on it. */
const trunkVlan = z.object({
  vid: z.number().int().min(VID_MIN).max(VID_MAX).describe('The VLAN tag its frames carry on the port.').meta({ examples: [10] }),
  network: name.describe('The network behind the tag.').meta({ examples: ['red'] }),
  ips: z.array(portAddress).max(16).optional().describe('The port\'s addresses on that network; one IPv4 address allocated from its subnets when left out.').meta({ examples: [['10.20.0.5']] }),
}).strict();

/**
 * A port is an access port on `network`, or a trunk: `vlans` lists the tagged networks, and
 * `network`, if given, is its native (untagged) one. One MAC for the port, on every network
 * it is on.
 */
/** An allowed address pair: an address or prefix the port may also send from (a virtual
 * IP moving between VMs, a network behind an appliance), with the MAC it uses, if not the
 * port's own. */
const allowedAddress = z.object({
  ip: addressOrPrefix.describe('An IPv4 or IPv6 address, or a prefix, the port may also send from.').meta({ examples: ['10.10.0.100'] }),
  mac: unicastMac.optional().describe('The MAC it sends with from there, if not the port\'s own.').meta({ examples: ['02:00:5e:00:01:01'] }),
}).strict();

/** An EtherType listed twice is a mistake worth naming. */
function uniqueEtherTypes(types: string[], ctx: z.RefinementCtx): void {
  types.forEach((t, i) => {
    if (types.indexOf(t) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `EtherType ${t} is listed twice` });
  });
}

export const portFields = z.object({
  name: name.describe('The port\'s name (its VM\'s, usually).').meta({ examples: ['vm5'] }),
  network: name.optional().describe('An access port\'s network, or a trunk\'s native (untagged) one.').meta({ examples: ['blue'] }),
  vlans: z.array(trunkVlan).min(1).max(64).optional().describe('A trunk port\'s tagged networks, one VLAN ID each.'),
  host: name.describe('The host whose agent serves the port.').meta({ examples: ['h1'] }),
  mac: unicastMac.optional().describe('Its MAC, on every network it is on; a random local one when left out.').meta({ examples: ['02:00:00:00:00:05'] }),
  ips: z.array(portAddress).max(16).optional().describe('Its addresses on `network` (IPv4 inside one of its subnets, or IPv6); one IPv4 address allocated from its subnets when left out.').meta({ examples: [['10.10.0.5']] }),
  backend: backendSchema.default({ type: 'memory' }).describe('Where the port\'s frames come from and go.'),
  portSecurity: z.boolean().default(true).describe('The port sends only as itself: its MAC and addresses, and `allowedAddresses` (off for an appliance that routes or bridges for others).'),
  allowedAddresses: z.array(allowedAddress).max(16).default([]).describe('Addresses the port may send from besides its own (a virtual IP moving between VMs, a network behind an appliance).'),
  allowedEtherTypes: z.array(etherType).max(16).default([]).superRefine(uniqueEtherTypes)
    .describe('EtherTypes it may send besides IPv4, IPv6 and ARP with port security on, written `0x88cc` or as a number (not a VLAN tag\'s).').meta({ examples: [['0x88cc']] }),
  securityGroups: z.array(name).max(16).optional().describe('Its security groups (with port security on): `default` when left out; `[]` lets nothing in and everything out.').meta({ examples: [['web']] }),
  connectionLimit: z.number().int().min(1).max(65536).optional().describe('Most connections its security groups track at once (4096 when left out).').meta({ examples: [1024] }),
}).strict();

/** The rules across a port's fields: what it is on, once each. */
export function checkPort(p: { network?: string; ips?: string[]; vlans?: Array<{ vid: number; network: string }> }, ctx: z.RefinementCtx): void {
  if (p.network === undefined && p.vlans === undefined) ctx.addIssue({ code: 'custom', path: ['network'], message: 'give network (an access port), vlans (a trunk), or both (a trunk with a native network)' });
  if (p.network === undefined && p.ips !== undefined) ctx.addIssue({ code: 'custom', path: ['ips'], message: 'a trunk port without a native network has its addresses in vlans[].ips' });
  const vids = new Set<number>();
  const nets = new Set(p.network === undefined ? [] : [p.network]);
  (p.vlans ?? []).forEach((v, i) => {
    if (vids.has(v.vid)) ctx.addIssue({ code: 'custom', path: ['vlans', i, 'vid'], message: `VLAN ${v.vid} is listed twice` });
    if (nets.has(v.network)) ctx.addIssue({ code: 'custom', path: ['vlans', i, 'network'], message: `network ${v.network} is on this port already` });
    vids.add(v.vid);
    nets.add(v.network);
  });
}

export const portCreate = portFields.superRefine(checkPort);
export const portUpdate = z.object({
  host: name,
  ips: z.array(portAddress).max(16),
  backend: backendSchema,
  portSecurity: z.boolean(),
  allowedAddresses: z.array(allowedAddress).max(16),
  allowedEtherTypes: z.array(etherType).max(16).superRefine(uniqueEtherTypes),
  securityGroups: z.array(name).max(16),
  /** Groups to join or leave, the others kept (instead of securityGroups, which replaces). */
  addSecurityGroups: z.array(name).min(1).max(16),
  removeSecurityGroups: z.array(name).min(1).max(16),
  connectionLimit: z.number().int().min(1).max(65536),
}).partial().strict().refine((p) => !(p.securityGroups && (p.addSecurityGroups || p.removeSecurityGroups)), {
  path: ['securityGroups'], message: 'give securityGroups (all of them), or addSecurityGroups and removeSecurityGroups, not both',
});

const l4Port = z.number().int().min(1).max(65535);

/** An allow rule of a security group. */
export const securityGroupRule = z.object({
  direction: z.enum(['ingress', 'egress']).describe('`ingress`: connections the port may be opened to; `egress`: connections it may open (the packets of an allowed connection pass both ways).'),
  ethertype: z.enum(['ipv4', 'ipv6']).default('ipv4').describe('The IP version it allows.'),
  protocol: z.union([z.enum(['any', 'tcp', 'udp', 'icmp', 'icmpv6']), z.number().int().min(0).max(255)]).default('any')
    .describe('The protocol it allows, by name or by IP protocol number.').meta({ examples: ['tcp'] }),
  ports: z.object({
    min: l4Port.describe('The lowest port.').meta({ examples: [80] }),
    max: l4Port.describe('The highest port (`min` for one port).').meta({ examples: [443] }),
  }).strict().refine((p) => p.min <= p.max, 'min is above max').optional().describe('TCP and UDP: the port range (the VM\'s for ingress, the remote\'s for egress); every port when left out.'),
  icmp: z.object({
    type: z.number().int().min(0).max(255).describe('The ICMP type (8: echo request).').meta({ examples: [8] }),
    code: z.number().int().min(0).max(255).optional().describe('The ICMP code; any when left out.').meta({ examples: [0] }),
  }).strict().optional().describe('ICMP and ICMPv6: the type, and the code; every message when left out.'),
  remote: z.union([
    z.object({ cidr: addressOrPrefix.describe('Addresses in this prefix (or this address).').meta({ examples: ['10.40.0.0/24'] }) }).strict(),
    z.object({ group: name.describe('The ports of this security group (their addresses, as they change).').meta({ examples: ['web'] }) }).strict(),
  ]).optional().describe('Who is at the other end: a prefix, or the ports of a security group; anyone when left out.'),
}).strict().superRefine((r, ctx) => {
  if (r.ports && r.protocol !== 'tcp' && r.protocol !== 'udp') ctx.addIssue({ code: 'custom', path: ['ports'], message: 'ports go with protocol tcp or udp' });
  if (r.icmp && r.protocol !== 'icmp' && r.protocol !== 'icmpv6') ctx.addIssue({ code: 'custom', path: ['icmp'], message: 'icmp goes with protocol icmp or icmpv6' });
  if ((r.protocol === 'icmp' && r.ethertype === 'ipv6') || (r.protocol === 'icmpv6' && r.ethertype === 'ipv4')) ctx.addIssue({ code: 'custom', path: ['protocol'], message: `${r.protocol} is not a protocol of ${r.ethertype}` });
  if (r.remote && 'cidr' in r.remote && r.remote.cidr.includes(':') !== (r.ethertype === 'ipv6')) ctx.addIssue({ code: 'custom', path: ['remote', 'cidr'], message: `${r.remote.cidr} is not an ${r.ethertype} prefix` });
});

export const securityGroupCreate = z.object({
  name: name.describe('The group\'s name, which ports and rules name.').meta({ examples: ['web'] }),
  description: plainText(200).optional().describe('What the group is for, up to 200 characters.').meta({ examples: ['the web servers'] }),
  rules: z.array(securityGroupRule).max(100).default([]).describe('Its allow rules: what is not allowed is dropped.'),
}).strict();

export type SecurityGroupRule = z.infer<typeof securityGroupRule> & { id: string };

export interface SecurityGroup {
  name: string;
  description?: string;
  rules: SecurityGroupRule[];
}

const udpPort = z.number().int().min(1).max(65535);

export const hostJoin = z.object({
  name,
  /** Where other hosts send this host's tunnel traffic (a loopback address only where the
   * controller allows it: see NetworkService). */
  address: ipv4,
  /** The UDP port of its VXLAN tunnels. */
  port: udpPort.default(VXLAN_PORT),
  /** The UDP port of its Geneve tunnels. */
  genevePort: udpPort.default(GENEVE_PORT),
  mtu: underlayMtu.default(1500),
  /** Physical network name -> the host's interface on it (provider networks land there). */
  physicalNetworks: nameRecord(name, ifname).refine((m) => Object.keys(m).length <= 16, 'at most 16 physical networks').default({}),
  /** The host's tunnel public key (X25519, base64): without one, it has no encrypted networks. */
  tunnelKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'an X25519 public key: 32 bytes in base64').optional(),
  /** The UDP port of its encrypted tunnels. */
  tunnelPort: udpPort.default(TUNNEL_PORT),
  /** The host's identity key (Ed25519, base64): pinned when the host enrolls with its join
   * token; from then on its agent signs with it. */
  identityKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'an Ed25519 public key: 32 bytes in base64').optional(),
}).strict()
  .refine((h) => h.port !== h.genevePort, { path: ['genevePort'], message: 'VXLAN and Geneve need a UDP port each' })
  .refine((h) => h.tunnelPort !== h.port && h.tunnelPort !== h.genevePort, { path: ['tunnelPort'], message: 'the tunnels need a UDP port of their own' });

/** A router joins subnets (of different networks): every host routes between them for its
 * own VMs, and answers for each subnet's gateway. */
/** A static route: packets for `cidr` go to `nextHop`, an address in one of the router's
 * subnets (a VM that routes further: an appliance, a VPN gateway). */
const staticRoute = z.object({
  cidr: ipv4Cidr.describe('The destination prefix.').meta({ examples: ['10.40.0.0/24'] }),
  nextHop: ipv4.describe('Where packets for it go: an address in one of the router\'s subnets, not its own gateway there.').meta({ examples: ['10.10.0.3'] }),
}).strict();

/** A router's way out: its address on a provider network, where the VMs behind it are
 * translated to (source NAT). One host holds it: `host`, or one the controller chooses. */
const externalGateway = z.object({
  network: name.describe('The provider network it is on.').meta({ examples: ['public'] }),
  ip: unicastIpv4.optional().describe('Its address there; allocated from the network\'s subnet when left out.').meta({ examples: ['203.0.113.2'] }),
  host: name.optional().describe('The host that holds it; when left out, one the controller picks among the connected hosts on that physical network, moving it when that agent drops.').meta({ examples: ['h1'] }),
}).strict();

export const routerCreate = z.object({
  name: name.describe('The router\'s name.').meta({ examples: ['r1'] }),
  subnets: z.array(name).max(64).default([]).describe('The subnets it joins (of different networks), each on one router at most; it answers for each one\'s gateway.').meta({ examples: [['blue4', 'red4']] }),
  routes: z.array(staticRoute).max(256).default([]).describe('Static routes.'),
  externalGateway: externalGateway.optional().describe('Its way out: an address on a provider network, which the VMs behind it are translated to (source NAT).'),
}).strict().superRefine((r, ctx) => {
  const seen = new Set<string>();
  r.subnets.forEach((s, i) => {
    if (seen.has(s)) ctx.addIssue({ code: 'custom', path: ['subnets', i], message: `subnet ${s} is listed twice` });
    seen.add(s);
  });
});
/** A router's subnets and routes are replaced whole (`subnets`, `routes`) or changed one at a
 * time (`addSubnets`, `removeSubnets`; `addRoutes`, `removeRoutes` by prefix), not both. */
export const routerUpdate = z.object({
  subnets: z.array(name).max(64), addSubnets: z.array(name).min(1).max(64), removeSubnets: z.array(name).min(1).max(64),
  routes: z.array(staticRoute).max(256), addRoutes: z.array(staticRoute).min(1).max(256), removeRoutes: z.array(ipv4Cidr).min(1).max(256),
  externalGateway: externalGateway.nullable(),
}).partial().strict().superRefine((r, ctx) => {
  if (r.subnets && (r.addSubnets || r.removeSubnets)) ctx.addIssue({ code: 'custom', path: ['subnets'], message: 'give subnets (all of them), or addSubnets and removeSubnets, not both' });
  if (r.routes && (r.addRoutes || r.removeRoutes)) ctx.addIssue({ code: 'custom', path: ['routes'], message: 'give routes (all of them), or addRoutes and removeRoutes, not both' });
});

/** A floating address: an address of a provider network that is a VM's (1:1 NAT), through
 * the external gateway of the router of the VM's subnet. */
export const floatingIpCreate = z.object({
  name: name.describe('The floating address\'s name.').meta({ examples: ['web1-public'] }),
  network: name.describe('The provider network it is on: that of the external gateway of the router of the port\'s subnet.').meta({ examples: ['public'] }),
  address: unicastIpv4.optional().describe('The address; allocated from the network\'s subnet when left out.').meta({ examples: ['203.0.113.10'] }),
  port: name.describe('The port it is the address of (one floating address per port).').meta({ examples: ['web1'] }),
}).strict();

/** A port forward: the router's external address and a port of it lead to a VM's port. */
export const portForwardCreate = z.object({
  name: name.describe('The port forward\'s name.').meta({ examples: ['web'] }),
  router: name.describe('The router whose external address it forwards from.').meta({ examples: ['r1'] }),
  protocol: z.enum(['tcp', 'udp']).describe('The protocol forwarded.'),
  externalPort: z.number().int().min(1).max(65535).describe('The port of the router\'s external address (once per protocol and router).').meta({ examples: [8080] }),
  port: name.describe('The (VM\'s) port it forwards to, behind the router.').meta({ examples: ['web1'] }),
  internalPort: z.number().int().min(1).max(65535).optional().describe('The VM\'s port number; `externalPort` when left out.').meta({ examples: [80] }),
}).strict();

export interface FloatingIp {
  name: string;
  network: string;
  address: string;
  port: string;
}

export interface PortForward {
  name: string;
  router: string;
  protocol: 'tcp' | 'udp';
  externalPort: number;
  port: string;
  internalPort: number;
}

export interface Router {
  name: string;
  subnets: string[];
  /** Absent in routers stored before static routes: none. */
  routes?: Array<{ cidr: string; nextHop: string }>;
  /** Its way out: its address and MAC on a provider network, and the host it is pinned to. */
  externalGateway?: { network: string; ip: string; mac: string; host?: string };
}

export type Backend = z.infer<typeof backendSchema>;

export interface Network {
  name: string;
  vni: number;
  encapsulation: Encapsulation;
  mtu?: number;
  /** A provider network: on a physical network's interface (flat, or this VLAN). */
  provider?: { physicalNetwork: string; vlan?: number };
  /** Its IPv6 prefix (a /64, SLAAC) and the DNS servers its advertisements name. */
  ipv6?: { prefix: string; dns: string[] };
  /** Absent in networks stored before encryption: none. */
  encryption?: 'noise' | 'none';
}

export interface Subnet {
  name: string;
  network: string;
  cidr: string;
  gateway: string;
  allocation: { start: string; end: string };
  dns: string[];
  domain?: string;
  /** Absent in subnets stored before DHCP: on. */
  dhcp?: boolean;
}

export interface Port {
  name: string;
  /** An access port's network, or a trunk's native (untagged) one; absent on a trunk
   * without one. */
  network?: string;
  host: string;
  mac: string;
  /** Its addresses on `network`. */
  ips: string[];
  /** A trunk's tagged networks, each with the port's addresses on it. */
  vlans?: Array<{ vid: number; network: string; ips: string[] }>;
  backend: Backend;
  /** Absent in ports stored before port security: on. */
  portSecurity?: boolean;
  allowedAddresses?: Array<{ ip: string; mac?: string }>;
  /** EtherTypes it may send besides IPv4, IPv6 and ARP (`0x88cc`); absent: none. */
  allowedEtherTypes?: string[];
  /** Absent in ports stored before security groups: none (nothing filtered). */
  securityGroups?: string[];
  connectionLimit?: number;
}

/** Every network a port is on: untagged (vid null) or behind a VLAN tag. */
export function attachments(p: Port): Array<{ network: string; vid: number | null; ips: string[] }> {
  return [...(p.network === undefined ? [] : [{ network: p.network, vid: null, ips: p.ips }]), ...(p.vlans ?? []).map((v) => ({ network: v.network, vid: v.vid, ips: v.ips }))];
}

export interface Host {
  name: string;
  address: string;
  port: number;
  /** Absent in hosts stored before Geneve had a port of its own: 6081. */
  genevePort?: number;
  mtu: number;
  /** Physical network -> interface (absent in hosts stored before provider networks). */
  physicalNetworks?: Record<string, string>;
  /** Its tunnel public key and port (absent in hosts stored before encryption, or whose
   * agent has none). */
  tunnelKey?: string;
  tunnelPort?: number;
  /** Its agent's identity key, pinned when it enrolled (absent: not enrolled yet). */
  identityKey?: string;
  /** When it was revoked: its agent is refused, and no host takes its tunnel traffic. */
  revokedAt?: string;
  joinedAt: string;
}

/** A host's outstanding join token: only its hash is kept. */
export interface JoinToken {
  sha256: string;
  expiresAt: string;
}

/** Store keys: one prefix per resource, plus unique indexes that a commit's conditions use
 * to refuse duplicates atomically. */
export const Keys = {
  host: (n: string) => `/hosts/${n}`,
  joinToken: (host: string) => `/join-tokens/${host}`,
  network: (n: string) => `/networks/${n}`,
  subnet: (n: string) => `/subnets/${n}`,
  port: (n: string) => `/ports/${n}`,
  router: (n: string) => `/routers/${n}`,
  floatingIp: (n: string) => `/floating-ips/${n}`,
  securityGroup: (n: string) => `/security-groups/${n}`,
  portForward: (n: string) => `/port-forwards/${n}`,
  /** A port has one floating address at most. */
  floatingOf: (port: string) => `/index/floating/${port}`,
  /** A router forwards each protocol's port once. */
  forwardOf: (router: string, protocol: string, port: number) => `/index/forward/${router}/${protocol}/${port}`,
  /** Which router a subnet is attached to: a subnet has one router at most. */
  routerOf: (subnet: string) => `/index/router/${subnet}`,
  vni: (v: number) => `/index/vni/${v}`,
  /** Which network is on a physical network (flat) or one of its VLANs: one each. */
  provider: (physicalNetwork: string, vlan?: number) => `/index/provider/${physicalNetwork}/${vlan ?? 'flat'}`,
  /** A copy of each subnet under its network, so a port's subnets are one prefix read. */
  subnetOf: (network: string, n: string) => `/index/subnet/${network}/${n}`,
  mac: (network: string, m: string) => `/index/mac/${network}/${m}`,
  ip: (network: string, ip: string) => `/index/ip/${network}/${ip}`,
} as const;
