/**
 * `weft network|subnet|port|router|host|floating-ip|port-forward create|list|show|set|delete`: the controller's resources from
 * the command line, printed as a table, JSON or YAML.
 */
import { Command, Option } from 'commander';
import { checkPrivateFilePath, writePrivateFile } from '../io/private-file.js';
import { attachments, type FloatingIp, type Host, type Network, type Port, type PortForward, type Router, type SecurityGroup, type Subnet } from '../controller/model.js';
import { ApiClient, resolveTarget } from './api-client.js';
import { jsonText, printable, table, yamlText } from './format.js';
import { UsageError } from './errors.js';

type Format = 'table' | 'json' | 'yaml';

const columns: Record<string, { headers: string[]; row(r: never): string[] }> = {
  networks: { headers: ['NAME', 'VNI', 'CARRIED', 'ENCRYPTED', 'MTU', 'IPV6'], row: (n: Network) => [n.name, String(n.vni), n.provider ? `provider ${n.provider.physicalNetwork}${n.provider.vlan === undefined ? ' (flat)' : `:${n.provider.vlan}`}` : n.encapsulation, n.encryption === 'noise' ? 'yes' : 'NO', n.mtu ? String(n.mtu) : 'auto', n.ipv6?.prefix ?? '-'] },
  subnets: { headers: ['NAME', 'NETWORK', 'CIDR', 'GATEWAY', 'ALLOCATION', 'DNS', 'DHCP'], row: (s: Subnet) => [s.name, s.network, s.cidr, s.gateway, `${s.allocation.start}-${s.allocation.end}`, s.dns.join(',') || '-', s.dhcp === false ? 'off' : 'on'] },
  ports: {
    headers: ['NAME', 'NETWORK', 'HOST', 'MAC', 'IPS', 'BACKEND', 'PORT SECURITY'],
    row: (p: Port) => [
      p.name,
      p.vlans ? `${p.network ? `${p.network},` : ''}${p.vlans.map((v) => `${v.vid}:${v.network}`).join(',')}` : p.network ?? '-',
      p.host, p.mac, attachments(p).flatMap((a) => a.ips).join(',') || '-',
      p.backend.type === 'tap' ? `tap ${p.backend.device}${p.backend.netns ? ` in ${p.backend.netns}` : ''}` : p.backend.type === 'qemu' ? `qemu ${p.backend.socket}` : p.backend.type,
      p.portSecurity === false ? 'off' : `on${p.allowedAddresses?.length ? ` +${p.allowedAddresses.map((a) => a.ip).join(',')}` : ''}${p.allowedEtherTypes?.length ? ` +${p.allowedEtherTypes.join(',')}` : ''}${p.securityGroups ? `, groups ${p.securityGroups.join(',') || 'none'}` : ''}`,
    ],
  },
  routers: {
    headers: ['NAME', 'SUBNETS', 'ROUTES', 'EXTERNAL GATEWAY'],
    row: (r: Router & { externalGateway?: { activeHost?: string | null } }) => [
      r.name, r.subnets.join(',') || '-', (r.routes ?? []).map((x) => `${x.cidr} via ${x.nextHop}`).join(', ') || '-',
      r.externalGateway ? `${r.externalGateway.ip} on ${r.externalGateway.network}${r.externalGateway.host ? ` (pinned to ${r.externalGateway.host})` : ''}${r.externalGateway.activeHost ? `, held by ${r.externalGateway.activeHost}` : ''}` : '-',
    ],
  },
  'security-groups': { headers: ['NAME', 'RULES', 'DESCRIPTION'], row: (g: SecurityGroup) => [g.name, String(g.rules.length), g.description ?? '-'] },
  'floating-ips': { headers: ['NAME', 'ADDRESS', 'NETWORK', 'PORT'], row: (f: FloatingIp) => [f.name, f.address, f.network, f.port] },
  'port-forwards': { headers: ['NAME', 'ROUTER', 'EXTERNAL', 'PORT', 'TO'], row: (f: PortForward) => [f.name, f.router, `${f.protocol}/${f.externalPort}`, f.port, `${f.protocol}/${f.internalPort}`] },
  hosts: {
    headers: ['NAME', 'UNDERLAY', 'MTU', 'IDENTITY', 'AGENT', 'APPLIED', 'PORTS UP'],
    row: (h: Host & { status?: { connected: boolean; appliedRevision: number | null; ports: Record<string, { attached: boolean }> } }) => [
      h.name, `${h.address}:${h.port}`, String(h.mtu), h.revokedAt ? `REVOKED ${h.revokedAt}` : h.identityKey ? 'enrolled' : 'not enrolled',
      h.status?.connected ? 'connected' : 'away', String(h.status?.appliedRevision ?? '-'),
      portsUp(h.status?.ports ?? {}),
    ],
  },
};

/** A host's VM ports attached, of its VM ports: its uplinks (`uplink:PHYSNET`, the host's
 * own interfaces, which `port list` does not show) are not counted. */
function portsUp(ports: Record<string, { attached: boolean }>): string {
  const vms = Object.entries(ports).filter(([name]) => !name.startsWith('uplink:'));
  return `${vms.filter(([, p]) => p.attached).length}/${vms.length}`;
}

export function print(kind: string, data: unknown, format: Format): void {
  if (format === 'json') return console.log(jsonText(data));
  if (format === 'yaml') return void process.stdout.write(yamlText(data));
  if (kind === 'security-groups' && !Array.isArray(data)) {
    // One group: a row per rule.
    const g = data as SecurityGroup;
    const remote = (r: SecurityGroup['rules'][number]) => (!r.remote ? 'any' : 'cidr' in r.remote ? r.remote.cidr : `group ${r.remote.group}`);
    console.log(table(['GROUP', 'RULE', 'DIRECTION', 'PROTOCOL', 'PORTS', 'REMOTE'], g.rules.map((r) => [g.name, r.id, r.direction, `${r.ethertype} ${r.protocol}${r.icmp ? ` type ${r.icmp.type}${r.icmp.code !== undefined ? ` code ${r.icmp.code}` : ''}` : ''}`, r.ports ? `${r.ports.min}-${r.ports.max}` : 'any', remote(r)])));
    return;
  }
  const rows = Array.isArray(data) ? data : [data];
  console.log(table(columns[kind].headers, rows.map((r) => columns[kind].row(r as never))));
}

/** Options every controller command takes. */
export function targetOptions(cmd: Command): Command {
  return cmd
    .option('--controller <url>', 'the controller: https://HOST:PORT (TCP is TLS; http:// only on loopback) or unix:/path/to.sock (or WEFT_CONTROLLER)')
    .option('--token <token>', 'an admin token: visible to other users in ps, so prefer --token-file or WEFT_TOKEN')
    .option('--token-file <file>', 'read the admin token from this file (or set WEFT_TOKEN)')
    .option('--ca-file <file>', 'trust this CA (PEM) for an https:// controller (or WEFT_CA_FILE)')
    .option('--lab <lab>', 'the controller of this lab');
}

const output = () => new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table');

export function client(opts: Record<string, string | undefined>): ApiClient {
  return new ApiClient(resolveTarget(opts));
}

function basic(program: Command, kind: 'networks' | 'subnets' | 'ports' | 'hosts' | 'routers' | 'floating-ips' | 'port-forwards' | 'security-groups', one: string): Command {
  const cmd = program.command(one).description(`${one}s of the controller`);
  targetOptions(cmd.command('list').description(`list ${kind} (weft export prints what weft apply takes back)`).addOption(output()))
    .action(async (o) => print(kind, await client(o).call('GET', `/v1/${kind}`), o.output));
  targetOptions(cmd.command('show').argument('<name>').description(`show a ${one}`).addOption(output()))
    .action(async (n, o) => print(kind, await client(o).call('GET', `/v1/${kind}/${encodeURIComponent(n)}`), o.output));
  targetOptions(cmd.command('delete').argument('<name>').description(`delete a ${one}`))
    .action(async (n, o) => {
      await client(o).call('DELETE', `/v1/${kind}/${encodeURIComponent(n)}`);
      console.log(printable(`${one} ${n} deleted`));
    });
  return cmd;
}

const int = (what: string) => (v: string) => {
  if (!/^\d+$/.test(v)) throw new UsageError(`${what} must be a whole number, not ${JSON.stringify(v)}`);
  return Number(v);
};

function staticRoutes(items: string[] | undefined): Array<{ cidr: string; nextHop: string }> {
  return (items ?? []).map((item) => {
    const [cidr, nextHop, extra] = item.split('=');
    if (!cidr || !nextHop || extra !== undefined) throw new UsageError(`--route takes CIDR=NEXTHOP, e.g. 10.40.0.0/24=10.10.0.2; not ${JSON.stringify(item)}`);
    return { cidr, nextHop };
  });
}

/** --allowed-address IP[=MAC] values, as the API takes them (undefined: none given). */
function allowedAddresses(values: string[] | undefined): Array<{ ip: string; mac?: string }> | undefined {
  return values?.map((v) => {
    const [ip, mac, extra] = v.split('=');
    if (!ip || extra !== undefined) throw new UsageError(`--allowed-address takes IP, PREFIX, IP=MAC or PREFIX=MAC, not ${JSON.stringify(v)}`);
    return { ip, ...(mac ? { mac } : {}) };
  });
}

/** --external-gateway NETWORK[=IP] with --gateway-host, as the API takes it. */
function externalGateway(o: { externalGateway?: string | boolean; gatewayHost?: string }): { network: string; ip?: string; host?: string } | undefined {
  if (typeof o.externalGateway !== 'string') {
    if (o.gatewayHost) throw new UsageError('--gateway-host goes with --external-gateway');
    return undefined;
  }
  const [network, ip, extra] = o.externalGateway.split('=');
  if (!network || extra !== undefined) throw new UsageError(`--external-gateway takes NETWORK or NETWORK=IP, not ${JSON.stringify(o.externalGateway)}`);
  return { network, ...(ip ? { ip } : {}), ...(o.gatewayHost ? { host: o.gatewayHost } : {}) };
}

/**
 * After a replacing form (--subnet, --route, --security-group): what it took away, said in
 * a sentence on standard error, since that may cut traffic.
 */
function sayRemoved(owner: string, lost: string, before: string[], after: string[], replacing: string, adding: string): void {
  const gone = before.filter((x) => !after.includes(x));
  if (gone.length === 0) return;
  console.error(`${owner} ${lost}${gone.length > 1 ? 's' : ''} ${gone.join(', ')}: ${replacing} gives all of them (${adding} adds one and keeps the others)`);
}

/** Settings that do not change in place: each, and why. */
const NETWORK_FIXED: Record<string, string> = {
  vni: 'its VNI does not change in place (every host carries the network under it): create another network and move the ports to it',
  encapsulation: 'its encapsulation does not change in place (every host carries the network so): create another network and move the ports to it',
  encryption: 'its encryption does not change in place (every host carries the network so): create another network and move the ports to it',
  provider: 'whether and where it is a provider network does not change in place: create another network and move the ports to it',
};
const SUBNET_FIXED: Record<string, string> = {
  cidr: 'its CIDR does not change in place (its ports have their addresses in it): create another subnet on the network, and give its ports addresses there',
  gateway: 'its gateway does not change in place (its VMs route through it): create another subnet',
  network: 'its network does not change in place (its ports have their addresses in it): create a subnet on the other network',
};

/** An option `set` takes only to say why it cannot (hidden from the help). */
function fixed(flags: string): Option {
  return new Option(flags).hideHelp();
}

function refuseFixed(owner: string, o: Record<string, unknown>, why: Record<string, string>): void {
  for (const [key, text] of Object.entries(why)) {
    if (o[key] !== undefined) throw new UsageError(`${owner}: ${text}`);
  }
}

/** `physnet1` (flat) or `physnet1:100` (VLAN 100). */
function provider(text: string): { physicalNetwork: string; vlan?: number } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m) throw new UsageError(`--provider takes PHYSNET or PHYSNET:VLAN, e.g. physnet1:100; not ${JSON.stringify(text)}`);
  return { physicalNetwork: m[1], ...(m[2] === undefined ? {} : { vlan: Number(m[2]) }) };
}

/** `physnet1=eth1` flags as a map (the controller checks the names). */
export function physicalNetworks(flags: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of flags) {
    const m = /^([^=]+)=(.+)$/.exec(f);
    if (!m) throw new UsageError(`--physical-network takes NAME=INTERFACE (physnet1=eth1), not ${JSON.stringify(f)}`);
    if (out[m[1]] !== undefined) throw new UsageError(`--physical-network: ${m[1]} is given twice`);
    out[m[1]] = m[2];
  }
  return out;
}

export function registerResourceCommands(program: Command): void {
  const network = basic(program, 'networks', 'network');
  targetOptions(network.command('create').argument('<name>').description('create a network')
    .option('--vni <n>', 'the VNI (allocated when not given)', int('--vni'))
    .addOption(new Option('--encapsulation <e>', 'how hosts carry it').choices(['vxlan', 'geneve']).default('vxlan'))
    .addOption(new Option('--encryption <e>', 'noise: only in the hosts\' encrypted tunnels (the default for VXLAN overlay networks); none: plain VXLAN or Geneve, as Linux kernels and switches speak it').choices(['noise', 'none']))
    .option('--mtu <n>', 'an MTU below what the underlay allows', int('--mtu'))
    .option('--provider <physnet[:vlan]>', 'a provider network: on each host\'s interface on this physical network (flat, or with this 802.1Q VLAN) instead of the overlay')
    .option('--ipv6-prefix <prefix>', 'its IPv6 /64: VMs make their addresses from the hosts\' router advertisements (SLAAC)')
    .option('--ipv6-dns <ips>', 'IPv6 DNS servers the advertisements name, comma-separated')
    .addOption(output()))
    .action(async (name, o) => {
      if (o.ipv6Dns && !o.ipv6Prefix) throw new UsageError('--ipv6-dns goes with --ipv6-prefix');
      const ipv6 = o.ipv6Prefix ? { prefix: o.ipv6Prefix, dns: o.ipv6Dns ? String(o.ipv6Dns).split(',') : [] } : undefined;
      print('networks', await client(o).call('POST', '/v1/networks', { name, vni: o.vni, encapsulation: o.encapsulation, encryption: o.encryption, mtu: o.mtu, provider: o.provider ? provider(o.provider) : undefined, ipv6 }), o.output);
    });

  targetOptions(network.command('set').alias('update').argument('<name>').description('change what can change in place of a network: its MTU and IPv6')
    .option('--mtu <n>', 'its MTU from now on (VMs learn it at their next DHCP lease or router advertisement)', int('--mtu'))
    .option('--no-mtu', 'no MTU of its own: the most the underlay allows')
    .option('--ipv6-prefix <prefix>', 'its IPv6 /64 from now on')
    .option('--ipv6-dns <ips>', 'IPv6 DNS servers (with --ipv6-prefix), comma-separated')
    .option('--no-ipv6', 'no IPv6 from now on')
    .addOption(fixed('--vni <n>')).addOption(fixed('--encapsulation <e>')).addOption(fixed('--encryption <e>')).addOption(fixed('--provider <physnet[:vlan]>'))
    .addOption(output()))
    .action(async (name, o) => {
      refuseFixed(`network ${name}`, o, NETWORK_FIXED);
      if (o.ipv6Dns && !o.ipv6Prefix) throw new UsageError('--ipv6-dns goes with --ipv6-prefix');
      if (o.ipv6Prefix && o.ipv6 === false) throw new UsageError('give --ipv6-prefix or --no-ipv6, not both');
      const mtu = o.mtu === false ? null : o.mtu;
      const ipv6 = o.ipv6 === false ? null : o.ipv6Prefix ? { prefix: o.ipv6Prefix, dns: o.ipv6Dns ? String(o.ipv6Dns).split(',') : [] } : undefined;
      if (mtu === undefined && ipv6 === undefined) throw new UsageError('give --mtu, --no-mtu, --ipv6-prefix or --no-ipv6');
      print('networks', await client(o).call('PATCH', `/v1/networks/${encodeURIComponent(name)}`, { mtu, ipv6 }), o.output);
      if (mtu !== undefined) console.error(`network ${name}: VMs that took their MTU from DHCP (option 26) learn the new one at their next lease; a VM configured by hand keeps its own`);
    });

  const subnet = basic(program, 'subnets', 'subnet');
  targetOptions(subnet.command('create').argument('<name>').description('create a subnet on a network')
    .requiredOption('--network <network>', 'its network')
    .requiredOption('--cidr <prefix>', 'e.g. 10.0.0.0/24')
    .option('--gateway <ip>', 'the gateway (default: the first address)')
    .option('--range <start-end>', 'the addresses ports get, e.g. 10.0.0.10-10.0.0.200')
    .option('--dns <ips>', 'DNS servers, comma-separated')
    .option('--domain <domain>', 'the DNS domain DHCP gives its ports (domain name and search list)')
    .option('--no-dhcp', 'do not answer DHCP for this subnet\'s ports (each host answers by default)')
    .addOption(output()))
    .action(async (name, o) => {
      let allocation;
      if (o.range) {
        const [start, end] = String(o.range).split('-');
        if (!end) throw new UsageError('--range takes START-END, e.g. 10.0.0.10-10.0.0.200');
        allocation = { start, end };
      }
      print('subnets', await client(o).call('POST', '/v1/subnets', { name, network: o.network, cidr: o.cidr, gateway: o.gateway, allocation, dns: o.dns ? String(o.dns).split(',') : undefined, domain: o.domain, dhcp: o.dhcp }), o.output);
    });

  targetOptions(subnet.command('set').alias('update').argument('<name>').description('change what can change in place of a subnet: its allocation range, DNS servers, domain and DHCP')
    .option('--range <start-end>', 'the addresses new ports get from now on (ports keep the ones they have)')
    .option('--dns <ips>', 'its DNS servers from now on, comma-separated')
    .option('--no-dns', 'no DNS servers')
    .option('--domain <domain>', 'its DNS domain from now on')
    .option('--no-domain', 'no DNS domain')
    .addOption(new Option('--dhcp <on|off>', 'whether each host answers DHCP for its ports').choices(['on', 'off']))
    .addOption(fixed('--cidr <prefix>')).addOption(fixed('--gateway <ip>')).addOption(fixed('--network <network>'))
    .addOption(output()))
    .action(async (name, o) => {
      refuseFixed(`subnet ${name}`, o, SUBNET_FIXED);
      let allocation;
      if (o.range) {
        const [start, end, extra] = String(o.range).split('-');
        if (!end || extra !== undefined) throw new UsageError('--range takes START-END, e.g. 10.0.0.10-10.0.0.200');
        allocation = { start, end };
      }
      const dns = o.dns === false ? [] : o.dns ? String(o.dns).split(',') : undefined;
      const domain = o.domain === false ? null : o.domain;
      const dhcp = o.dhcp === undefined ? undefined : o.dhcp === 'on';
      if (allocation === undefined && dns === undefined && domain === undefined && dhcp === undefined) throw new UsageError('give --range, --dns, --no-dns, --domain, --no-domain or --dhcp');
      print('subnets', await client(o).call('PATCH', `/v1/subnets/${encodeURIComponent(name)}`, { allocation, dns, domain, dhcp }), o.output);
      if (dns !== undefined || domain !== undefined) console.error(`subnet ${name}: VMs learn the change at their next DHCP lease`);
    });

  const port = basic(program, 'ports', 'port');
  targetOptions(port.command('create').argument('<name>').description('create a port (a VM\'s NIC) on a network, or a trunk of several, bound to a host')
    .option('--network <network>', 'its network (with --trunk: the untagged one)')
    .option('--trunk <vid:network,...>', 'a trunk port: the VLAN ID of each network, e.g. 10:blue,20:red')
    .requiredOption('--host <host>', 'the host its VM runs on')
    .option('--mac <mac>', 'its MAC (allocated when not given)')
    .option('--ip <ip...>', 'its addresses (one allocated from the network\'s subnets when not given)')
    .option('--tap <device>', 'the TAP device of the VM (default: an in-memory port)')
    .option('--netns <netns>', 'the network namespace the TAP is in')
    .option('--qemu-socket <path>', 'a QEMU guest: the agent listens here for -netdev stream,server=off,addr.type=unix,addr.path=PATH (inside the agents\' QEMU socket directory, /run/weft/qemu unless the controller was told another)')
    .option('--no-port-security', 'let the port send as any MAC and address (an appliance that routes or bridges)')
    .option('--allowed-address <ip[=mac]...>', 'addresses or prefixes it may also send from, each with the MAC it uses if not its own')
    .option('--allowed-ethertype <type...>', 'EtherTypes it may send besides IPv4, IPv6 and ARP (0x88cc: LLDP)')
    .option('--security-group <group...>', 'its security groups (default: the default group)')
    .addOption(output()))
    .action(async (name, o) => {
      if (o.tap && o.qemuSocket) throw new UsageError('give --tap or --qemu-socket, not both');
      const backend = o.tap ? { type: 'tap', device: o.tap, ...(o.netns ? { netns: o.netns } : {}) } : o.qemuSocket ? { type: 'qemu', socket: o.qemuSocket } : undefined;
      if (!o.tap && o.netns) throw new UsageError('--netns goes with --tap');
      if (!o.network && !o.trunk) throw new UsageError('give --network NETWORK, or --trunk VID:NETWORK,... for a trunk port');
      const vlans = o.trunk ? String(o.trunk).split(',').map((item) => {
        const m = /^(\d{1,4}):(.+)$/.exec(item.trim());
        if (!m) throw new UsageError(`--trunk takes VID:NETWORK pairs separated by commas, e.g. 10:blue,20:red; not ${JSON.stringify(item)}`);
        return { vid: Number(m[1]), network: m[2] };
      }) : undefined;
      print('ports', await client(o).call('POST', '/v1/ports', { name, network: o.network, vlans, host: o.host, mac: o.mac, ips: o.ip, backend, portSecurity: o.portSecurity, allowedAddresses: allowedAddresses(o.allowedAddress), allowedEtherTypes: o.allowedEthertype, securityGroups: o.securityGroup }), o.output);
    });
  targetOptions(port.command('update').alias('set').argument('<name>').description('move a port to another host, or change what it may send as')
    .option('--host <host>', 'its host from now on')
    .addOption(new Option('--port-security <on|off>', 'port security on or off').choices(['on', 'off']))
    .option('--allowed-address <ip[=mac]...>', 'all its allowed addresses from now on')
    .option('--no-allowed-addresses', 'no allowed addresses from now on')
    .option('--allowed-ethertype <type...>', 'all the EtherTypes it may send besides IPv4, IPv6 and ARP from now on')
    .option('--no-allowed-ethertypes', 'IPv4, IPv6 and ARP only from now on')
    .option('--add-security-group <group...>', 'join these security groups, keeping the others')
    .option('--remove-security-group <group...>', 'leave these security groups, keeping the others')
    .option('--security-group <group...>', 'all its security groups from now on (it leaves the others, and says which)')
    .option('--no-security-groups', 'no security groups from now on: nothing in, everything out')
    .addOption(output()))
    .action(async (name, o) => {
      const allowed = o.allowedAddresses === false ? [] : allowedAddresses(o.allowedAddress);
      const groups = o.securityGroups === false ? [] : o.securityGroup;
      const etherTypes = o.allowedEthertypes === false ? [] : o.allowedEthertype;
      const adds = o.addSecurityGroup as string[] | undefined;
      const removes = o.removeSecurityGroup as string[] | undefined;
      if (groups !== undefined && (adds || removes)) throw new UsageError('give --security-group (all of them), or --add-security-group and --remove-security-group, not both');
      if (!o.host && !o.portSecurity && allowed === undefined && etherTypes === undefined && groups === undefined && !adds && !removes) {
        throw new UsageError('give --host, --port-security, --allowed-address, --allowed-ethertype, --security-group, --add-security-group, --remove-security-group or the --no- forms');
      }
      const api = client(o);
      const path = `/v1/ports/${encodeURIComponent(name)}`;
      const before = groups === undefined ? null : await api.call<Port>('GET', path);
      const after = await api.call<Port>('PATCH', path, {
        host: o.host, portSecurity: o.portSecurity === undefined ? undefined : o.portSecurity === 'on', allowedAddresses: allowed,
        allowedEtherTypes: etherTypes, securityGroups: groups, addSecurityGroups: adds, removeSecurityGroups: removes,
      });
      if (before) sayRemoved(`port ${name}`, 'is no longer in security group', before.securityGroups ?? [], after.securityGroups ?? [], '--security-group', '--add-security-group');
      print('ports', after, o.output);
    });

  const sg = basic(program, 'security-groups', 'security-group');
  targetOptions(sg.command('create').argument('<name>').description('create a security group (add its rules with security-group rule add)')
    .option('--description <text>', 'what it is for')
    .addOption(output()))
    .action(async (name, o) => print('security-groups', await client(o).call('POST', '/v1/security-groups', { name, description: o.description }), o.output));
  const rule = sg.command('rule').description('the allow rules of a security group');
  targetOptions(rule.command('add').argument('<group>').description('add an allow rule; every host applies it at once')
    .addOption(new Option('--direction <d>', 'ingress (to the port) or egress (from it)').choices(['ingress', 'egress']).makeOptionMandatory())
    .addOption(new Option('--ethertype <e>', 'ipv4 or ipv6').choices(['ipv4', 'ipv6']).default('ipv4'))
    .option('--protocol <p>', 'tcp, udp, icmp, icmpv6, any, or a number', 'any')
    .option('--port <min[-max]>', 'tcp/udp: the port or range (the port\'s own for ingress, the remote\'s for egress)')
    .option('--icmp-type <n>', 'icmp/icmpv6: the type', int('--icmp-type'))
    .option('--icmp-code <n>', 'icmp/icmpv6: the code', int('--icmp-code'))
    .option('--remote-cidr <prefix>', 'who is at the other end: a prefix')
    .option('--remote-group <group>', 'who is at the other end: the ports of a security group')
    .addOption(output()))
    .action(async (group, o) => {
      if (o.remoteCidr && o.remoteGroup) throw new UsageError('give --remote-cidr or --remote-group, not both');
      let ports;
      if (o.port) {
        const m = /^(\d+)(?:-(\d+))?$/.exec(o.port);
        if (!m) throw new UsageError(`--port takes N or MIN-MAX, not ${JSON.stringify(o.port)}`);
        ports = { min: Number(m[1]), max: Number(m[2] ?? m[1]) };
      }
      const protocol = /^\d+$/.test(o.protocol) ? Number(o.protocol) : o.protocol;
      const icmp = o.icmpType === undefined ? undefined : { type: o.icmpType, ...(o.icmpCode === undefined ? {} : { code: o.icmpCode }) };
      const remote = o.remoteCidr ? { cidr: o.remoteCidr } : o.remoteGroup ? { group: o.remoteGroup } : undefined;
      print('security-groups', await client(o).call('POST', `/v1/security-groups/${encodeURIComponent(group)}/rules`, { direction: o.direction, ethertype: o.ethertype, protocol, ports, icmp, remote }), o.output);
    });
  targetOptions(rule.command('delete').argument('<group>').argument('<rule>', 'the rule\'s id (security-group show GROUP)').description('delete a rule; connections it alone allowed stop at their next packet')
    .addOption(output()))
    .action(async (group, id, o) => print('security-groups', await client(o).call('DELETE', `/v1/security-groups/${encodeURIComponent(group)}/rules/${encodeURIComponent(id)}`), o.output));

  const router = basic(program, 'routers', 'router');
  targetOptions(router.command('create').argument('<name>').description('create a router joining subnets: every host routes between them for its own VMs')
    .option('--subnet <subnet...>', 'the subnets it joins (each on one router at most)')
    .option('--route <cidr=nexthop...>', 'static routes, e.g. 10.40.0.0/24=10.10.0.2 (a VM in one of its subnets)')
    .option('--external-gateway <network[=ip]>', 'its way out: an address on this provider network (allocated unless given), where VMs are translated to')
    .option('--gateway-host <host>', 'pin the external gateway to this host (else the controller chooses, and moves it when the host goes away)')
    .addOption(output()))
    .action(async (name, o) => print('routers', await client(o).call('POST', '/v1/routers', { name, subnets: o.subnet ?? [], routes: staticRoutes(o.route), externalGateway: externalGateway(o) }), o.output));
  targetOptions(router.command('set').alias('update').argument('<name>').description('change the subnets, routes or external gateway of a router')
    .option('--add-subnet <subnet...>', 'join these subnets too')
    .option('--remove-subnet <subnet...>', 'leave these subnets (routing between them and the others stops)')
    .option('--subnet <subnet...>', 'all the subnets it joins from now on (it leaves the others, and says which)')
    .option('--add-route <cidr=nexthop...>', 'add these static routes')
    .option('--remove-route <cidr...>', 'remove the static routes for these prefixes')
    .option('--route <cidr=nexthop...>', 'all its static routes from now on (the others go, and it says which)')
    .option('--external-gateway <network[=ip]>', 'its way out from now on')
    .option('--gateway-host <host>', 'pin the external gateway to this host')
    .option('--no-external-gateway', 'remove its way out')
    .addOption(output()))
    .action(async (name, o) => {
      const gateway = o.externalGateway === false ? null : externalGateway(o);
      if (o.subnet && (o.addSubnet || o.removeSubnet)) throw new UsageError('give --subnet (all of them), or --add-subnet and --remove-subnet, not both');
      if (o.route && (o.addRoute || o.removeRoute)) throw new UsageError('give --route (all of them), or --add-route and --remove-route, not both');
      if (!o.subnet && !o.addSubnet && !o.removeSubnet && !o.route && !o.addRoute && !o.removeRoute && gateway === undefined) {
        throw new UsageError('give --add-subnet, --remove-subnet, --subnet, --add-route, --remove-route, --route, --external-gateway or --no-external-gateway');
      }
      const api = client(o);
      const path = `/v1/routers/${encodeURIComponent(name)}`;
      const before = o.subnet || o.route ? await api.call<Router>('GET', path) : null;
      const after = await api.call<Router>('PATCH', path, {
        subnets: o.subnet, addSubnets: o.addSubnet, removeSubnets: o.removeSubnet,
        routes: o.route ? staticRoutes(o.route) : undefined, addRoutes: o.addRoute ? staticRoutes(o.addRoute) : undefined, removeRoutes: o.removeRoute,
        externalGateway: gateway,
      });
      const route = (r: { cidr: string; nextHop: string }) => `${r.cidr} via ${r.nextHop}`;
      if (before && o.subnet) sayRemoved(`router ${name}`, 'no longer joins subnet', before.subnets, after.subnets, '--subnet', '--add-subnet');
      if (before && o.route) sayRemoved(`router ${name}`, 'no longer has the route', (before.routes ?? []).map(route), (after.routes ?? []).map(route), '--route', '--add-route');
      print('routers', after, o.output);
    });

  const floating = basic(program, 'floating-ips', 'floating-ip');
  targetOptions(floating.command('create').argument('<name>').description('give a VM\'s port an address of a provider network: 1:1 NAT at the external gateway of its router')
    .requiredOption('--network <network>', 'the provider network the address is on (the router\'s external network)')
    .requiredOption('--port <port>', 'the VM\'s port')
    .option('--address <ip>', 'the address (allocated when not given)')
    .addOption(output()))
    .action(async (name, o) => print('floating-ips', await client(o).call('POST', '/v1/floating-ips', { name, network: o.network, port: o.port, address: o.address }), o.output));

  const forward = basic(program, 'port-forwards', 'port-forward');
  targetOptions(forward.command('create').argument('<name>').description('forward a port of a router\'s external address to a VM\'s port')
    .requiredOption('--router <router>', 'the router (it needs an external gateway)')
    .addOption(new Option('--protocol <protocol>', 'tcp or udp').choices(['tcp', 'udp']).default('tcp'))
    .requiredOption('--external-port <n>', 'the port on the router\'s external address', int('--external-port'))
    .requiredOption('--port <port>', 'the VM\'s port (behind the router)')
    .option('--internal-port <n>', 'the VM\'s port number (default: the external one)', int('--internal-port'))
    .addOption(output()))
    .action(async (name, o) => print('port-forwards', await client(o).call('POST', '/v1/port-forwards', { name, router: o.router, protocol: o.protocol, externalPort: o.externalPort, port: o.port, internalPort: o.internalPort }), o.output));

  const host = basic(program, 'hosts', 'host');
  /** A join token goes to the terminal alone on its line, or into a new 0600 file with
   * --join-token-file (never through a symbolic link): it is the host's until it is spent,
   * and shown once. */
  const showToken = (name: string, r: { joinToken: string; joinTokenExpiresAt: string }, file: string | undefined) => {
    if (file) {
      try {
        writePrivateFile(file, `${r.joinToken}\n`, { what: 'the join token file' });
      } catch (err) {
        throw new UsageError(`${(err as Error).message}\nhost ${name} has a new join token all the same, which nobody has seen: weft host token ${name} --join-token-file ANOTHER_FILE makes another`);
      }
      console.error(`join token for host ${name} written to ${file} (single use, until ${r.joinTokenExpiresAt}): weft agent --host ${name} --join-token-file ${file} ...`);
    } else {
      console.error(`join token for host ${name} (single use, until ${r.joinTokenExpiresAt}); start its agent with WEFT_JOIN_TOKEN=TOKEN or from a file with --join-token-file:`);
      console.log(r.joinToken);
    }
  };
  /** Refuses a --join-token-file that could not be written before asking for a token. */
  const checkTokenFile = (file: string | undefined) => {
    if (!file) return;
    try {
      checkPrivateFilePath(file, { what: 'the join token file' });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  targetOptions(host.command('create').argument('<name>').description('register a host and make a join token for its agent (the agent may change its address when it joins)')
    .requiredOption('--address <ip>', 'its underlay IPv4 address')
    .option('--port <port>', 'its tunnel UDP port', int('--port'), 4789)
    .option('--mtu <mtu>', 'its underlay MTU', int('--mtu'), 1500)
    .option('--physical-network <name=interface>', 'its interface on a physical network (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--join-token-file <file>', 'write the join token to this file (0600) instead of printing it')
    .addOption(output()))
    .action(async (name, o) => {
      checkTokenFile(o.joinTokenFile);
      const r = await client(o).call<Host & { joinToken: string; joinTokenExpiresAt: string }>('POST', '/v1/hosts', { name, address: o.address, port: o.port, mtu: o.mtu, physicalNetworks: physicalNetworks(o.physicalNetwork) });
      const { joinToken: _t, joinTokenExpiresAt: _e, ...host } = r;
      // Asked for in a file, the token is not in the JSON or YAML either.
      if (o.output !== 'table' && !o.joinTokenFile) return print('hosts', r, o.output);
      print('hosts', host, o.output);
      showToken(name, r, o.joinTokenFile);
    });
  targetOptions(host.command('token').argument('<name>').description('make a new join token for a host (its agent was reinstalled, or it was revoked); the last one stops working')
    .option('--ttl <seconds>', 'how long it is good for', int('--ttl'), 3600)
    .option('--join-token-file <file>', 'write it to this file (0600) instead of printing it'))
    .action(async (name, o) => {
      checkTokenFile(o.joinTokenFile);
      showToken(name, await client(o).call('POST', `/v1/hosts/${encodeURIComponent(name)}/join-token`, { ttlSeconds: o.ttl }), o.joinTokenFile);
    });
  targetOptions(host.command('revoke').argument('<name>').description('cut a host off: its agent is refused, and every other host stops taking its tunnel traffic')
    .addOption(output()))
    .action(async (name, o) => print('hosts', await client(o).call('POST', `/v1/hosts/${encodeURIComponent(name)}/revoke`), o.output));
  targetOptions(host.command('resync').argument('<name>').description('send the host\'s agent its full state now, instead of deltas (it checks its copy against it)'))
    .action(async (name, o) => {
      await client(o).call('POST', `/v1/hosts/${encodeURIComponent(name)}/resync`);
      console.log(`sent ${name} its full state`);
    });
}
