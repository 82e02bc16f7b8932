/**
 * What the API does to the intended network: create, change and delete hosts, networks,
 * subnets and ports, with every rule checked. Each change is one store commit whose
 * conditions make it safe against concurrent writers: a name, VNI, MAC or IP is claimed
 * through an index key that must not exist yet, and an update names the revision it read.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { verifyAgentAuth, type AgentRequest, type SignedRequest } from '../view/agent-auth.js';
import { SeenSignatures } from './seen-signatures.js';
import type { z } from 'zod';
import { hasOwnKey, notUnicast } from '../config/fields.js';
import { DEFAULT_QEMU_SOCKET_DIR, qemuSocketOutside, socketDirText } from '../config/qemu-socket.js';
import { formatIpv4, parseIpv4 } from '../wire/bytes.js';
import { VNI_MAX } from '../wire/vxlan.js';
import { AddressPool, allocate, contains, isIpv4, overlaps, parseCidr } from './ipam.js';
import {
  attachments, Keys, type FloatingIp, type Host, type JoinToken, type Network, type Port, type PortForward, type Router, type Subnet,
  type floatingIpCreate, type portForwardCreate, type routerCreate, type routerUpdate,
  type SecurityGroup, type securityGroupCreate, type securityGroupRule,
  type hostJoin, type networkCreate, type networkUpdate, type portCreate, type portUpdate, type subnetCreate, type subnetUpdate,
} from './model.js';
import type { CommitResult, Condition, Entry, Operation, Store } from './store/store.js';

/** An error for the API's client: an HTTP status, a one-line title and a sentence. */
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503 | 507,
    readonly title: string,
    detail: string,
    readonly errors: Array<{ field: string; message: string }> = [],
  ) {
    super(detail);
  }
}

const notFound = (kind: string, n: string) => new ApiError(404, 'Not Found', `there is no ${kind} named ${n}`);
const RETRIES = 5;

export interface ServiceOptions {
  /** Accept hosts whose underlay address is a loopback address: every agent on this one
   * machine, as in tests and single-machine trials. Off by default: a real host reached at
   * 127.0.0.1 is a mistake that would send every tunnel to the sender itself. */
  loopbackUnderlay?: boolean;
  /** The fingerprint of the TLS authority agents must find (carried in join tokens). */
  tlsFingerprint?: string;
  /** The directory agents keep QEMU sockets in: a port's QEMU socket must be inside it
   * (default /run/weft/qemu). */
  qemuSocketDir?: string;
}

type HostBody = Omit<z.infer<typeof hostJoin>, 'physicalNetworks' | 'tunnelPort'> & { physicalNetworks?: Record<string, string>; tunnelPort?: number };

/** Who is asking to join: an administrator, an agent with its host's join token, or an
 * agent signing with its host's identity (`request`: what the signature must cover). */
export type AgentAuth =
  | { kind: 'admin' }
  | { kind: 'token'; token: string }
  | { kind: 'signed'; signed: SignedRequest; request: AgentRequest };

/** How long a join token is good for, unless said otherwise. */
export const JOIN_TOKEN_SECONDS = 3600;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export class NetworkService {
  /**
   * Each network's taken addresses, listed once and kept current by this service's own
   * commits and by the store's change feed (others' commits: an apply, another service).
   * Allocating thousands of addresses in a row then costs what listing them once does.
   * What they say is a hint: each address is still claimed through its index key, and a
   * claim that fails marks it taken.
   */
  private readonly pools = new Map<string, AddressPool>();
  /** Following the store's change feed (for as long as the store is open). */
  private following = false;

  constructor(
    private readonly store: Store,
    private readonly opts: ServiceOptions = {},
    /** The agents' signatures taken already (shared with the watch: one per controller). */
    private readonly signatures = new SeenSignatures(),
  ) {}

  // ---- reads -----------------------------------------------------------------------------

  async revision(): Promise<number> {
    return this.store.revision();
  }

  async list<T>(kind: 'hosts' | 'networks' | 'subnets' | 'ports' | 'routers' | 'floating-ips' | 'port-forwards' | 'security-groups'): Promise<T[]> {
    return (await this.store.list<T>(`/${kind}/`)).map((e) => e.value);
  }

  private async entry<T>(key: string, kind: string, n: string): Promise<Entry<T>> {
    const e = await this.store.get<T>(key);
    if (!e) throw notFound(kind, n);
    return e;
  }

  async getHost(n: string): Promise<Host> { return (await this.entry<Host>(Keys.host(n), 'host', n)).value; }
  async getNetwork(n: string): Promise<Network> { return (await this.entry<Network>(Keys.network(n), 'network', n)).value; }
  async getSubnet(n: string): Promise<Subnet> { return (await this.entry<Subnet>(Keys.subnet(n), 'subnet', n)).value; }
  async getPort(n: string): Promise<Port> { return (await this.entry<Port>(Keys.port(n), 'port', n)).value; }
  async getRouter(n: string): Promise<Router> { return (await this.entry<Router>(Keys.router(n), 'router', n)).value; }
  async getFloatingIp(n: string): Promise<FloatingIp> { return (await this.entry<FloatingIp>(Keys.floatingIp(n), 'floating address', n)).value; }
  async getPortForward(n: string): Promise<PortForward> { return (await this.entry<PortForward>(Keys.portForward(n), 'port forward', n)).value; }

  // ---- routers ---------------------------------------------------------------------------

  /**
   * Checks a router's subnets: each exists, is on no other router, and no two overlap (a
   * router could not tell where an address in both lives). Returns the conditions that
   * keep it so: each subnet as read, and its claim on the subnet.
   */
  private async routerSubnets(router: string, subnets: string[], old: string[] = []): Promise<{ conditions: Condition[]; claims: string[] }> {
    const conditions: Condition[] = [];
    const found: Subnet[] = [];
    for (const [i, n] of subnets.entries()) {
      const e = await this.store.get<Subnet>(Keys.subnet(n));
      if (!e) throw new ApiError(422, 'Unprocessable', `there is no subnet named ${n}`, [{ field: `subnets[${i}]`, message: 'no such subnet' }]);
      const net = (await this.store.get<Network>(Keys.network(e.value.network)))?.value;
      if (net?.provider) throw new ApiError(422, 'Unprocessable', `subnet ${n} is on provider network ${net.name}, whose router is on the physical network; a Weft router joins overlay subnets`, [{ field: `subnets[${i}]`, message: 'on a provider network' }]);
      const owner = await this.store.get<string>(Keys.routerOf(n));
      if (owner && owner.value !== router) throw new ApiError(409, 'Conflict', `subnet ${n} is attached to router ${owner.value} already`, [{ field: `subnets[${i}]`, message: 'on another router' }]);
      const clash = found.find((f) => overlaps(parseCidr(f.cidr), parseCidr(e.value.cidr)));
      if (clash) throw new ApiError(409, 'Conflict', `subnet ${n} (${e.value.cidr}) overlaps subnet ${clash.name} (${clash.cidr}) on the same router`, [{ field: `subnets[${i}]`, message: 'overlaps' }]);
      found.push(e.value);
      conditions.push({ key: Keys.subnet(n), modRevision: e.modRevision });
      if (!old.includes(n)) conditions.push({ key: Keys.routerOf(n), modRevision: 0 });
    }
    return { conditions, claims: subnets.filter((n) => !old.includes(n)) };
  }

  /** Each static route's next hop must be a host address in one of the router's subnets. */
  private async checkRoutes(subnets: string[], routes: Array<{ cidr: string; nextHop: string }>): Promise<void> {
    const cidrs: Array<{ name: string; c: ReturnType<typeof parseCidr>; gateway: string }> = [];
    for (const n of subnets) {
      const s = (await this.store.get<Subnet>(Keys.subnet(n)))?.value;
      if (s) cidrs.push({ name: s.name, c: parseCidr(s.cidr), gateway: s.gateway });
    }
    routes.forEach((r, i) => {
      const hop = parseIpv4(r.nextHop);
      const s = cidrs.find((x) => contains(x.c, hop) && hop !== x.c.first && hop !== x.c.last);
      if (!s) {
        throw new ApiError(422, 'Unprocessable', `next hop ${r.nextHop} of route ${r.cidr} is outside every subnet of the router${cidrs.length ? ` (${cidrs.map((x) => x.name).join(', ')})` : ': it has none'}`, [{ field: `routes[${i}].nextHop`, message: 'outside the subnets' }]);
      }
      if (r.nextHop === s.gateway) throw new ApiError(422, 'Unprocessable', `next hop ${r.nextHop} is the router's own gateway on ${s.name}`, [{ field: `routes[${i}].nextHop`, message: 'the router itself' }]);
    });
  }

  /**
   * Checks a router's way out and what it claims: a provider network with a subnet, an
   * address free there (allocated when not given), a host that reaches it when pinned. An
   * unchanged network and address keep their claims; a removed or moved one frees them.
   */
  private async gatewayChange(router: string, want: z.infer<typeof routerCreate>['externalGateway'] | null, old: Router['externalGateway'] | undefined, held: Held): Promise<{ gateway?: Router['externalGateway']; conditions: Condition[]; ops: Operation[] }> {
    const release = (g: NonNullable<Router['externalGateway']>): Operation[] => [{ type: 'delete', key: Keys.ip(g.network, g.ip) }, { type: 'delete', key: Keys.mac(g.network, g.mac) }];
    if (!want) {
      if (old) await this.mustHaveNoNat(router);
      return { conditions: [], ops: old ? release(old) : [] };
    }
    const net = (await this.store.get<Network>(Keys.network(want.network)))?.value;
    if (!net) throw new ApiError(422, 'Unprocessable', `there is no network named ${want.network}`, [{ field: 'externalGateway.network', message: 'no such network' }]);
    if (!net.provider) throw new ApiError(422, 'Unprocessable', `network ${want.network} is not a provider network: a router's way out is on the physical network (create one with --provider)`, [{ field: 'externalGateway.network', message: 'not a provider network' }]);
    if (want.host !== undefined) {
      await this.mustHost(want.host);
      await this.mustReach(want.host, [net], ['externalGateway.host']);
    }
    const pin = want.host === undefined ? {} : { host: want.host };
    if (old && old.network === want.network && (want.ip === undefined || want.ip === old.ip)) return { gateway: { ...old, host: undefined, ...pin }, conditions: [], ops: [] };
    if (old) await this.mustHaveNoNat(router);
    const [ip] = await this.addressesFor(want.network, want.ip === undefined ? undefined : [want.ip], 'externalGateway.ip', held);
    if (ip === undefined) throw new ApiError(422, 'Unprocessable', `network ${want.network} has no subnet to give the router an address from`, [{ field: 'externalGateway.network', message: 'no subnet' }]);
    const mac = randomMac();
    const claims = [Keys.ip(want.network, ip), Keys.mac(want.network, mac)];
    return {
      gateway: { network: want.network, ip, mac, ...pin },
      conditions: claims.map((key) => ({ key, modRevision: 0 })),
      ops: [...claims.map((key) => ({ type: 'put' as const, key, value: `router ${router}` })), ...(old ? release(old) : [])],
    };
  }

  /** A router's way out stays while port forwards or floating addresses go through it. */
  private async mustHaveNoNat(router: string): Promise<void> {
    const forwards = (await this.list<PortForward>('port-forwards')).filter((f) => f.router === router);
    if (forwards.length > 0) throw new ApiError(409, 'Conflict', `router ${router} still has port forwards: ${names(forwards)}; delete them first`);
    const floating = [];
    for (const f of await this.list<FloatingIp>('floating-ips')) {
      const port = (await this.store.get<Port>(Keys.port(f.port)))?.value;
      if (port && (await this.routerOfPort(port))?.name === router) floating.push(f);
    }
    if (floating.length > 0) throw new ApiError(409, 'Conflict', `router ${router} still carries floating addresses: ${names(floating)}; delete them first`);
  }

  /** The router of the subnet holding a port's first IPv4 address on its untagged network. */
  private async routerOfPort(port: Port): Promise<Router | undefined> {
    const v4 = port.ips.find(isIpv4);
    if (port.network === undefined || v4 === undefined) return undefined;
    const subnets = (await this.store.list<Subnet>(`/index/subnet/${port.network}/`)).map((e) => e.value);
    const s = subnets.find((x) => contains(parseCidr(x.cidr), parseIpv4(v4)));
    const owner = s && (await this.store.get<string>(Keys.routerOf(s.name)))?.value;
    return owner ? (await this.store.get<Router>(Keys.router(owner)))?.value : undefined;
  }

  async createRouter(body: z.infer<typeof routerCreate>): Promise<Router> {
    const { conditions, claims } = await this.routerSubnets(body.name, body.subnets);
    await this.checkRoutes(body.subnets, body.routes);
    return this.holding(async (held) => {
      const gw = await this.gatewayChange(body.name, body.externalGateway, undefined, held);
      const router: Router = { name: body.name, subnets: body.subnets, routes: body.routes, ...(gw.gateway ? { externalGateway: gw.gateway } : {}) };
      await this.commit([{ key: Keys.router(body.name), modRevision: 0 }, ...conditions, ...gw.conditions],
        [{ type: 'put', key: Keys.router(body.name), value: router }, ...claims.map((n) => ({ type: 'put' as const, key: Keys.routerOf(n), value: body.name })), ...gw.ops],
        (f) => f.key === Keys.router(body.name)
          ? new ApiError(409, 'Conflict', `a router named ${body.name} exists already`, [{ field: 'name', message: 'taken' }])
          : new ApiError(409, 'Conflict', `${f.key.startsWith('/index/router/') ? `subnet ${f.key.split('/').pop()} was attached to another router` : 'a subnet changed'} meanwhile; try again`));
      return router;
    });
  }

  async updateRouter(n: string, body: z.infer<typeof routerUpdate>): Promise<Router> {
    const e = await this.entry<Router>(Keys.router(n), 'router', n);
    const subnets = changeList(`router ${n}`, 'subnet', 'joins', body.subnets ?? e.value.subnets, body.addSubnets, body.removeSubnets, (s) => s, (s) => s);
    const routes = changeList(`router ${n}`, 'route', 'has', body.routes ?? e.value.routes ?? [], body.addRoutes, body.removeRoutes, (r) => r.cidr, (r) => `${r.cidr} via ${r.nextHop}`);
    const { conditions, claims } = await this.routerSubnets(n, subnets, e.value.subnets);
    await this.checkRoutes(subnets, routes);
    const released = e.value.subnets.filter((s) => !subnets.includes(s));
    return this.holding(async (held) => {
      const gw = body.externalGateway === undefined ? { gateway: e.value.externalGateway, conditions: [], ops: [] } : await this.gatewayChange(n, body.externalGateway, e.value.externalGateway, held);
      const router: Router = { name: n, subnets, routes, ...(gw.gateway ? { externalGateway: gw.gateway } : {}) };
      await this.commit([{ key: Keys.router(n), modRevision: e.modRevision }, ...conditions, ...gw.conditions], [
        { type: 'put', key: Keys.router(n), value: router },
        ...claims.map((s) => ({ type: 'put' as const, key: Keys.routerOf(s), value: n })),
        ...released.map((s) => ({ type: 'delete' as const, key: Keys.routerOf(s) })),
        ...gw.ops,
      ], () => new ApiError(409, 'Conflict', `router ${n} or one of its subnets changed meanwhile; read it again and retry`));
      return router;
    });
  }

  async deleteRouter(n: string): Promise<void> {
    const e = await this.entry<Router>(Keys.router(n), 'router', n);
    const gw = await this.gatewayChange(n, null, e.value.externalGateway, []);
    await this.commit([{ key: Keys.router(n), modRevision: e.modRevision }],
      [{ type: 'delete', key: Keys.router(n) }, ...e.value.subnets.map((s) => ({ type: 'delete' as const, key: Keys.routerOf(s) })), ...gw.ops],
      () => new ApiError(409, 'Conflict', `router ${n} changed meanwhile; try again`));
  }

  // ---- floating addresses and port forwards ----------------------------------------------

  /** A VM's port behind a router with a way out on `network` (when given): the port, its
   * address, and the router. */
  private async natTarget(portName: string, field: string, network?: string, router?: string): Promise<{ port: Entry<Port>; ip: string; router: Router }> {
    const port = await this.store.get<Port>(Keys.port(portName));
    if (!port) throw new ApiError(422, 'Unprocessable', `there is no port named ${portName}`, [{ field, message: 'no such port' }]);
    const ip = port.value.ips.find(isIpv4);
    if (port.value.network === undefined || ip === undefined) throw new ApiError(422, 'Unprocessable', `port ${portName} has no IPv4 address on an untagged network`, [{ field, message: 'no address' }]);
    const r = await this.routerOfPort(port.value);
    if (!r || (router !== undefined && r.name !== router)) {
      throw new ApiError(422, 'Unprocessable', `port ${portName}'s subnet is on ${router !== undefined ? `no router ${router}` : 'no router'}${r ? ` (it is on router ${r.name})` : ''}`, [{ field, message: 'not behind the router' }]);
    }
    if (!r.externalGateway || (network !== undefined && r.externalGateway.network !== network)) {
      throw new ApiError(422, 'Unprocessable', `router ${r.name}, which port ${portName}'s subnet is on, has no external gateway${network !== undefined ? ` on network ${network}` : ''}`, [{ field, message: 'no way out' }]);
    }
    return { port, ip, router: r };
  }

  async createFloatingIp(body: z.infer<typeof floatingIpCreate>): Promise<FloatingIp> {
    return this.holding(async (held) => {
      const net = (await this.store.get<Network>(Keys.network(body.network)))?.value;
      if (!net) throw new ApiError(422, 'Unprocessable', `there is no network named ${body.network}`, [{ field: 'network', message: 'no such network' }]);
      const { port } = await this.natTarget(body.port, 'port', body.network);
      const [address] = await this.addressesFor(body.network, body.address === undefined ? undefined : [body.address], 'address', held);
      if (address === undefined) throw new ApiError(422, 'Unprocessable', `network ${body.network} has no subnet to give an address from`, [{ field: 'network', message: 'no subnet' }]);
      const f: FloatingIp = { name: body.name, network: body.network, address, port: body.port };
      await this.commit(
        [{ key: Keys.floatingIp(f.name), modRevision: 0 }, { key: Keys.ip(f.network, address), modRevision: 0 }, { key: Keys.floatingOf(f.port), modRevision: 0 }, { key: port.key, modRevision: port.modRevision }],
        [{ type: 'put', key: Keys.floatingIp(f.name), value: f }, { type: 'put', key: Keys.ip(f.network, address), value: `floating ${f.name}` }, { type: 'put', key: Keys.floatingOf(f.port), value: f.name }],
        (failed) => failed.key === Keys.floatingIp(f.name) ? new ApiError(409, 'Conflict', `a floating address named ${f.name} exists already`, [{ field: 'name', message: 'taken' }])
          : failed.key === Keys.floatingOf(f.port) ? new ApiError(409, 'Conflict', `port ${f.port} has a floating address already`, [{ field: 'port', message: 'has one' }])
            : failed.key === port.key ? new ApiError(409, 'Conflict', `port ${f.port} changed meanwhile; try again`)
              : new ApiError(409, 'Conflict', `${address} is in use on network ${f.network}`, [{ field: 'address', message: 'taken' }]),
      );
      return f;
    });
  }

  async deleteFloatingIp(n: string): Promise<void> {
    const e = await this.entry<FloatingIp>(Keys.floatingIp(n), 'floating address', n);
    await this.commit([{ key: e.key, modRevision: e.modRevision }],
      [{ type: 'delete', key: e.key }, { type: 'delete', key: Keys.ip(e.value.network, e.value.address) }, { type: 'delete', key: Keys.floatingOf(e.value.port) }],
      () => new ApiError(409, 'Conflict', `floating address ${n} changed meanwhile; try again`));
  }

  async createPortForward(body: z.infer<typeof portForwardCreate>): Promise<PortForward> {
    const r = await this.store.get<Router>(Keys.router(body.router));
    if (!r) throw new ApiError(422, 'Unprocessable', `there is no router named ${body.router}`, [{ field: 'router', message: 'no such router' }]);
    if (!r.value.externalGateway) throw new ApiError(422, 'Unprocessable', `router ${body.router} has no external gateway to forward from`, [{ field: 'router', message: 'no way out' }]);
    const { port } = await this.natTarget(body.port, 'port', undefined, body.router);
    const f: PortForward = { name: body.name, router: body.router, protocol: body.protocol, externalPort: body.externalPort, port: body.port, internalPort: body.internalPort ?? body.externalPort };
    const index = Keys.forwardOf(f.router, f.protocol, f.externalPort);
    await this.commit(
      [{ key: Keys.portForward(f.name), modRevision: 0 }, { key: index, modRevision: 0 }, { key: r.key, modRevision: r.modRevision }, { key: port.key, modRevision: port.modRevision }],
      [{ type: 'put', key: Keys.portForward(f.name), value: f }, { type: 'put', key: index, value: f.name }],
      async (failed) => failed.key === Keys.portForward(f.name) ? new ApiError(409, 'Conflict', `a port forward named ${f.name} exists already`, [{ field: 'name', message: 'taken' }])
        : failed.key === index ? new ApiError(409, 'Conflict', `${f.protocol}/${f.externalPort} of router ${f.router} is forwarded already (by ${(await this.store.get<string>(index))?.value ?? 'a forward deleted meanwhile'})`, [{ field: 'externalPort', message: 'taken' }])
          : new ApiError(409, 'Conflict', `router ${f.router} or port ${f.port} changed meanwhile; try again`),
    );
    return f;
  }

  async deletePortForward(n: string): Promise<void> {
    const e = await this.entry<PortForward>(Keys.portForward(n), 'port forward', n);
    await this.commit([{ key: e.key, modRevision: e.modRevision }],
      [{ type: 'delete', key: e.key }, { type: 'delete', key: Keys.forwardOf(e.value.router, e.value.protocol, e.value.externalPort) }],
      () => new ApiError(409, 'Conflict', `port forward ${n} changed meanwhile; try again`));
  }

  // ---- security groups -------------------------------------------------------------------

  async getSecurityGroup(n: string): Promise<SecurityGroup> { return (await this.entry<SecurityGroup>(Keys.securityGroup(n), 'security group', n)).value; }

  /** Each rule's remote group exists (or is the group itself, being made). */
  private async checkRemoteGroups(group: string, rules: Array<z.infer<typeof securityGroupRule>>, field: (i: number) => string): Promise<void> {
    for (const [i, r] of rules.entries()) {
      if (!r.remote || !('group' in r.remote) || r.remote.group === group) continue;
      if (!(await this.store.get(Keys.securityGroup(r.remote.group)))) {
        throw new ApiError(422, 'Unprocessable', `there is no security group named ${r.remote.group}, which a rule names as its remote`, [{ field: field(i), message: 'no such group' }]);
      }
    }
  }

  async createSecurityGroup(body: z.infer<typeof securityGroupCreate>): Promise<SecurityGroup> {
    await this.checkRemoteGroups(body.name, body.rules, (i) => `rules[${i}].remote.group`);
    const g: SecurityGroup = { name: body.name, ...(body.description ? { description: body.description } : {}), rules: body.rules.map((r) => ({ ...r, id: ruleId() })) };
    await this.commit([{ key: Keys.securityGroup(g.name), modRevision: 0 }], [{ type: 'put', key: Keys.securityGroup(g.name), value: g }],
      () => new ApiError(409, 'Conflict', `a security group named ${g.name} exists already`, [{ field: 'name', message: 'taken' }]));
    return g;
  }

  /** The `default` group as users expect it: in from its own members, out to anywhere. */
  private async ensureDefaultGroup(): Promise<void> {
    if (await this.store.get(Keys.securityGroup(DEFAULT_GROUP))) return;
    const rules = (['ipv4', 'ipv6'] as const).flatMap((ethertype) => [
      { direction: 'ingress' as const, ethertype, protocol: 'any' as const, remote: { group: DEFAULT_GROUP } },
      { direction: 'egress' as const, ethertype, protocol: 'any' as const },
    ]);
    const g: SecurityGroup = { name: DEFAULT_GROUP, description: 'in from its members, out to anywhere', rules: rules.map((r) => ({ ...r, id: ruleId() })) };
    // Made once; a concurrent maker's group is as good.
    await this.write([{ key: Keys.securityGroup(DEFAULT_GROUP), modRevision: 0 }], [{ type: 'put', key: Keys.securityGroup(DEFAULT_GROUP), value: g }]);
  }

  async addSecurityGroupRule(n: string, rule: z.infer<typeof securityGroupRule>): Promise<SecurityGroup> {
    const e = await this.entry<SecurityGroup>(Keys.securityGroup(n), 'security group', n);
    await this.checkRemoteGroups(n, [rule], () => 'remote.group');
    const g: SecurityGroup = { ...e.value, rules: [...e.value.rules, { ...rule, id: ruleId() }] };
    await this.commit([{ key: e.key, modRevision: e.modRevision }], [{ type: 'put', key: e.key, value: g }],
      () => new ApiError(409, 'Conflict', `security group ${n} changed meanwhile; try again`));
    return g;
  }

  /** Sets a group's rules whole (what `weft apply` does): a rule kept keeps its id. */
  async setSecurityGroupRules(n: string, rules: Array<z.infer<typeof securityGroupRule>>): Promise<SecurityGroup> {
    const e = await this.entry<SecurityGroup>(Keys.securityGroup(n), 'security group', n);
    await this.checkRemoteGroups(n, rules, (i) => `rules[${i}].remote.group`);
    const old = [...e.value.rules];
    const kept = rules.map((r) => {
      const i = old.findIndex(({ id: _, ...o }) => JSON.stringify(o) === JSON.stringify(r));
      return i >= 0 ? old.splice(i, 1)[0] : { ...r, id: ruleId() };
    });
    const g: SecurityGroup = { ...e.value, rules: kept };
    await this.commit([{ key: e.key, modRevision: e.modRevision }], [{ type: 'put', key: e.key, value: g }],
      () => new ApiError(409, 'Conflict', `security group ${n} changed meanwhile; try again`));
    return g;
  }

  async deleteSecurityGroupRule(n: string, id: string): Promise<SecurityGroup> {
    const e = await this.entry<SecurityGroup>(Keys.securityGroup(n), 'security group', n);
    if (!e.value.rules.some((r) => r.id === id)) throw new ApiError(404, 'Not Found', `security group ${n} has no rule ${id} (its rules: ${e.value.rules.map((r) => r.id).join(', ') || 'none'})`);
    const g: SecurityGroup = { ...e.value, rules: e.value.rules.filter((r) => r.id !== id) };
    await this.commit([{ key: e.key, modRevision: e.modRevision }], [{ type: 'put', key: e.key, value: g }],
      () => new ApiError(409, 'Conflict', `security group ${n} changed meanwhile; try again`));
    return g;
  }

  async deleteSecurityGroup(n: string): Promise<void> {
    const e = await this.entry<SecurityGroup>(Keys.securityGroup(n), 'security group', n);
    const users = (await this.list<Port>('ports')).filter((p) => p.securityGroups?.includes(n));
    if (users.length > 0) throw new ApiError(409, 'Conflict', `security group ${n} is used by port(s) ${names(users)}; take it off them first`);
    const naming = (await this.list<SecurityGroup>('security-groups')).filter((g) => g.name !== n && g.rules.some((r) => r.remote && 'group' in r.remote && r.remote.group === n));
    if (naming.length > 0) throw new ApiError(409, 'Conflict', `security group ${n} is the remote of rules in ${names(naming)}; delete those rules first`);
    await this.commit([{ key: e.key, modRevision: e.modRevision }], [{ type: 'delete', key: e.key }],
      () => new ApiError(409, 'Conflict', `security group ${n} changed meanwhile; try again`));
  }

  /** A port's security groups: given ones must exist; none given is `default`. */
  private async portGroups(given: string[] | undefined): Promise<string[]> {
    if (given === undefined) {
      await this.ensureDefaultGroup();
      return [DEFAULT_GROUP];
    }
    for (const [i, g] of given.entries()) {
      if (!(await this.store.get(Keys.securityGroup(g)))) {
        const all = (await this.list<SecurityGroup>('security-groups')).map((x) => ({ name: x.name }));
        throw new ApiError(422, 'Unprocessable', `there is no security group named ${g}${all.length ? ` (groups: ${names(all)})` : ''}`, [{ field: `securityGroups[${i}]`, message: 'no such group' }]);
      }
    }
    return given;
  }

  /** Commits, turning a failed condition into the conflict `explain` names. */
  private async commit(conditions: Condition[], ops: Operation[], explain: (failed: Condition) => ApiError | Promise<ApiError>): Promise<number> {
    const r = await this.write(conditions, ops);
    if (!r.ok) throw await explain(r.failed);
    return r.revision;
  }

  /** Every commit of the service: the address pools follow the addresses it claims and
   * gives back. */
  private async write(conditions: Condition[], ops: Operation[]): Promise<CommitResult> {
    const r = await this.store.commit(conditions, ops);
    if (r.ok) this.track(ops.map((op) => ({ key: op.key, gone: op.type === 'delete' })));
    return r;
  }

  /** Keeps the pools current with address claims put or deleted. */
  private track(changes: Array<{ key: string; gone: boolean }>): void {
    if (this.pools.size === 0) return;
    for (const c of changes) {
      if (!c.key.startsWith(IP_INDEX)) continue;
      const slash = c.key.indexOf('/', IP_INDEX.length);
      const pool = this.pools.get(c.key.slice(IP_INDEX.length, slash));
      const text = c.key.slice(slash + 1);
      if (!pool || !isIpv4(text)) continue;
      if (c.gone) pool.free(parseIpv4(text));
      else pool.take(parseIpv4(text));
    }
  }

  /** The taken addresses of `network`, as a pool kept current (see `pools`). */
  private async pool(network: string): Promise<AddressPool> {
    // Following the feed before listing: a change committed meanwhile is in the list, in
    // the feed, or both (taking and freeing again what is already so changes nothing, and
    // the feed comes in order).
    if (!this.following) {
      this.store.subscribe((changes) => this.track(changes.map((c) => ({ key: c.key, gone: c.value === null }))));
      this.following = true;
    }
    let pool = this.pools.get(network);
    if (!pool) {
      const prefix = Keys.ip(network, '');
      const listed = new AddressPool((await this.store.list(prefix)).map((e) => e.key.slice(prefix.length)).filter(isIpv4).map(parseIpv4));
      pool = this.pools.get(network) ?? listed;
      this.pools.set(network, pool);
    }
    return pool;
  }

  /** Runs `f` with a list for the addresses it allocates, and gives them back after (their
   * claims committed, or given up). */
  private async holding<T>(f: (held: Held) => Promise<T>): Promise<T> {
    const held: Held = [];
    try {
      return await f(held);
    } finally {
      this.letGo(held);
    }
  }

  /** Gives back addresses allocated and held while their claims were committed. */
  private letGo(held: Held): void {
    for (const [network, ip] of held) this.pools.get(network)?.release(ip);
    held.length = 0;
  }

  // ---- hosts -----------------------------------------------------------------------------

  /**
   * An administrator registers (or registers again) a host: its record, and a join token
   * for its agent, single use, good for `ttlSeconds` (a new one replaces the last). The
   * identity the host enrolled with and the tunnel key its agent reported are kept: only
   * the agent knows them.
   */
  async registerHost(body: HostBody, ttlSeconds = JOIN_TOKEN_SECONDS): Promise<Host & { joinToken: string; joinTokenExpiresAt: string }> {
    const { identityKey: _ignored, ...rest } = body;
    const host = await this.saveHost(rest, null);
    return { ...host, ...(await this.issueJoinToken(body.name, ttlSeconds)) };
  }

  /** A fresh join token for a registered host (its agent was reinstalled, or revoked). */
  async issueJoinToken(name: string, ttlSeconds = JOIN_TOKEN_SECONDS): Promise<{ joinToken: string; joinTokenExpiresAt: string }> {
    await this.entry<Host>(Keys.host(name), 'host', name);
    // The secret, then the fingerprint of the controller's TLS authority: the agent checks
    // the controller is the one the token came from before it sends the token.
    const fingerprint = this.opts.tlsFingerprint;
    const joinToken = `${randomBytes(32).toString('base64url')}${fingerprint ? `.${fingerprint}` : ''}`;
    const joinTokenExpiresAt = new Date(Date.now() + ttlSeconds * 1000).toISOString();
    const value: JoinToken = { sha256: sha256(joinToken), expiresAt: joinTokenExpiresAt };
    await this.write([], [{ type: 'put', key: Keys.joinToken(name), value }]);
    return { joinToken, joinTokenExpiresAt };
  }

  /**
   * An agent joins (at start, and again when its address changes): enrolling with its
   * host's join token, which pins the identity key it sends and is spent; or signed with the
   * identity pinned before. It can join only as the host the token or the key is for.
   */
  async agentJoin(auth: AgentAuth, body: HostBody): Promise<Host> {
    if (auth.kind === 'admin') return this.saveHost(body, null);
    if (auth.kind === 'token') {
      const e = await this.store.get<JoinToken>(Keys.joinToken(body.name));
      if (!e || !sameText(e.value.sha256, sha256(auth.token))) {
        throw new ApiError(401, 'Unauthorized', `this join token is not host ${body.name}'s: it is another host's, spent, or replaced by a newer one (weft host create ${body.name} makes a new one)`);
      }
      if (Date.parse(e.value.expiresAt) < Date.now()) throw new ApiError(401, 'Unauthorized', `host ${body.name}'s join token expired at ${e.value.expiresAt} (weft host create ${body.name} makes a new one)`);
      if (!body.identityKey) throw new ApiError(400, 'Bad Request', 'identityKey: an agent enrolling with a join token sends its identity key', [{ field: 'identityKey', message: 'required with a join token' }]);
      return this.saveHost(body, { key: Keys.joinToken(body.name), modRevision: e.modRevision });
    }
    const prev = (await this.store.get<Host>(Keys.host(auth.signed.host)))?.value;
    if (auth.signed.host !== body.name) throw new ApiError(403, 'Forbidden', `signed as host ${auth.signed.host}: it cannot join as ${body.name}`);
    if (!prev?.identityKey) {
      throw new ApiError(401, 'Unauthorized', `host ${body.name} is not enrolled${prev?.revokedAt ? ` (revoked at ${prev.revokedAt})` : ''}: start its agent with a join token (weft host create ${body.name} makes one)`);
    }
    const now = Date.now();
    if (!verifyAgentAuth(auth.signed, prev.identityKey, auth.request, now)) {
      throw new ApiError(401, 'Unauthorized', `the signature is not host ${body.name}'s for this request and body (or its clock is more than two minutes off the controller's)`);
    }
    const seen = this.signatures.admit(auth.signed, now);
    if (seen === 'replayed') throw new ApiError(401, 'Unauthorized', `this signature of host ${body.name} was used before: each signed request is taken once`);
    if (seen === 'full') throw new ApiError(429, 'Too Many Requests', `host ${body.name} signed more requests in the last minutes than the controller keeps track of; try again in a minute or two`);
    if (body.identityKey !== undefined && body.identityKey !== prev.identityKey) {
      throw new ApiError(403, 'Forbidden', `host ${body.name} enrolled with another identity key; to change it, enroll again with a new join token`);
    }
    return this.saveHost(body, null);
  }

  /** Cuts a host off: its identity is forgotten (its agent is refused and its watch closed)
   * and no host takes its tunnel traffic any more. A new join token brings it back. */
  async revokeHost(name: string): Promise<Host> {
    const e = await this.entry<Host>(Keys.host(name), 'host', name);
    const { identityKey: _forgotten, ...rest } = e.value;
    const host: Host = { ...rest, revokedAt: new Date().toISOString() };
    await this.commit([{ key: Keys.host(name), modRevision: e.modRevision }], [{ type: 'put', key: Keys.host(name), value: host }, { type: 'delete', key: Keys.joinToken(name) }],
      () => new ApiError(409, 'Conflict', `host ${name} changed meanwhile; try again`));
    return host;
  }

  /** Stores a host's record. `enrolling`: the join token being spent in the same commit
   * (the identity key in `body` is pinned, and a revocation lifted). */
  private async saveHost(body: HostBody, enrolling: { key: string; modRevision: number } | null): Promise<Host> {
    const ip = parseIpv4(body.address);
    const why = notUnicast(ip);
    if (why && !(this.opts.loopbackUnderlay && ip >>> 24 === 127)) {
      const hint = ip >>> 24 === 127 ? ' (a controller started with --allow-loopback-underlay takes loopback addresses, for agents that all run on one machine)' : '';
      throw new ApiError(422, 'Unprocessable', `underlay address ${body.address} ${why}; give an address other hosts can reach${hint}`, [{ field: 'address', message: `${why}` }]);
    }
    const others = (await this.list<Host>('hosts')).filter((h) => h.name !== body.name && h.address === body.address && h.port === body.port);
    if (others.length > 0) throw new ApiError(409, 'Conflict', `underlay address ${body.address}:${body.port} is used by host ${others[0].name}`, [{ field: 'address', message: 'in use' }]);
    const prev = await this.store.get<Host>(Keys.host(body.name));
    const { identityKey: sent, ...rest } = body;
    const tunnelKey = body.tunnelKey ?? prev?.value.tunnelKey;
    const identityKey = enrolling ? sent : prev?.value.identityKey;
    const revokedAt = enrolling ? undefined : prev?.value.revokedAt;
    const host: Host = {
      ...rest, ...(tunnelKey ? { tunnelKey } : {}), ...(identityKey ? { identityKey } : {}), ...(revokedAt ? { revokedAt } : {}),
      joinedAt: prev?.value.joinedAt ?? new Date().toISOString(),
    };
    if (prev && !enrolling && JSON.stringify(prev.value) === JSON.stringify(host)) return host;
    await this.commit(
      [{ key: Keys.host(body.name), modRevision: prev?.modRevision ?? 0 }, ...(enrolling ? [enrolling] : [])],
      [{ type: 'put', key: Keys.host(body.name), value: host }, ...(enrolling ? [{ type: 'delete' as const, key: enrolling.key }] : [])],
      () => new ApiError(enrolling ? 401 : 409, enrolling ? 'Unauthorized' : 'Conflict', enrolling ? `host ${body.name}'s join token was spent meanwhile` : `host ${body.name} changed while joining; try again`));
    return host;
  }

  async deleteHost(n: string): Promise<void> {
    const e = await this.entry<Host>(Keys.host(n), 'host', n);
    const ports = (await this.list<Port>('ports')).filter((p) => p.host === n);
    if (ports.length > 0) throw new ApiError(409, 'Conflict', `host ${n} still has ${ports.length} port(s): ${names(ports)}; delete or move them first`);
    await this.commit([{ key: Keys.host(n), modRevision: e.modRevision }], [{ type: 'delete', key: Keys.host(n) }],
      () => new ApiError(409, 'Conflict', `host ${n} changed meanwhile; try again`));
  }

  // ---- networks --------------------------------------------------------------------------

  async createNetwork(body: z.infer<typeof networkCreate>): Promise<Network> {
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      let vni = body.vni;
      if (vni === undefined) {
        const taken = new Set((await this.store.list(`/index/vni/`)).map((e) => Number(e.key.slice('/index/vni/'.length))));
        vni = allocate(1, VNI_MAX, taken)!;
      }
      if (body.provider && body.ipv6) throw new ApiError(422, 'Unprocessable', 'a provider network\'s IPv6 is the physical network\'s (its own router advertises it); leave ipv6 out', [{ field: 'ipv6', message: 'on a provider network' }]);
      // Encrypted by default where it can be: an overlay network carried in VXLAN.
      const plainOnly = body.provider ? 'a provider network is on the physical network, not in tunnels' : body.encapsulation !== 'vxlan' ? `encrypted tunnels carry VXLAN; ${body.encapsulation} is for interoperating with other VTEPs` : null;
      if (body.encryption === 'noise' && plainOnly) throw new ApiError(422, 'Unprocessable', `network ${body.name} cannot be encrypted: ${plainOnly}; give encryption none`, [{ field: 'encryption', message: 'not possible here' }]);
      const encryption = body.encryption ?? (plainOnly ? 'none' : 'noise');
      const net: Network = { name: body.name, vni, encapsulation: body.encapsulation, ...(body.mtu ? { mtu: body.mtu } : {}), ...(body.provider ? { provider: body.provider } : {}), ...(body.ipv6 ? { ipv6: body.ipv6 } : {}), encryption };
      const provider = body.provider ? [Keys.provider(body.provider.physicalNetwork, body.provider.vlan)] : [];
      const r = await this.write(
        [{ key: Keys.network(net.name), modRevision: 0 }, { key: Keys.vni(vni), modRevision: 0 }, ...provider.map((key) => ({ key, modRevision: 0 }))],
        [{ type: 'put', key: Keys.network(net.name), value: net }, { type: 'put', key: Keys.vni(vni), value: net.name }, ...provider.map((key) => ({ type: 'put' as const, key, value: net.name }))],
      );
      if (r.ok) return net;
      if (r.failed.key === Keys.network(net.name)) throw new ApiError(409, 'Conflict', `a network named ${net.name} exists already`, [{ field: 'name', message: 'taken' }]);
      if (r.failed.key === provider[0]) {
        const owner = (await this.store.get<string>(provider[0]))?.value ?? '(deleted meanwhile)';
        const where = body.provider!.vlan === undefined ? `physical network ${body.provider!.physicalNetwork} (flat)` : `VLAN ${body.provider!.vlan} of physical network ${body.provider!.physicalNetwork}`;
        throw new ApiError(409, 'Conflict', `${where} is network ${owner}'s`, [{ field: 'provider', message: 'taken' }]);
      }
      if (body.vni !== undefined) {
        const owner = await this.store.get<string>(Keys.vni(vni));
        throw new ApiError(409, 'Conflict', `VNI ${vni} is used by network ${owner?.value ?? '(deleted meanwhile)'}`, [{ field: 'vni', message: 'taken' }]);
      }
      // An allocated VNI was taken by a concurrent create: allocate again.
    }
    throw new ApiError(503, 'Busy', 'could not allocate a VNI: too many concurrent creates; try again');
  }

  async updateNetwork(n: string, body: z.infer<typeof networkUpdate>): Promise<Network> {
    const e = await this.entry<Network>(Keys.network(n), 'network', n);
    const net: Network = { ...e.value };
    if (body.mtu === null) delete net.mtu;
    else if (body.mtu !== undefined) net.mtu = body.mtu;
    if (body.ipv6 === null) delete net.ipv6;
    else if (body.ipv6 !== undefined) {
      if (net.provider) throw new ApiError(422, 'Unprocessable', 'a provider network\'s IPv6 is the physical network\'s (its own router advertises it)', [{ field: 'ipv6', message: 'on a provider network' }]);
      net.ipv6 = body.ipv6;
    }
    await this.commit([{ key: Keys.network(n), modRevision: e.modRevision }], [{ type: 'put', key: Keys.network(n), value: net }],
      () => new ApiError(409, 'Conflict', `network ${n} changed meanwhile; read it again and retry`));
    return net;
  }

  async deleteNetwork(n: string): Promise<void> {
    const e = await this.entry<Network>(Keys.network(n), 'network', n);
    const ports = (await this.list<Port>('ports')).filter((p) => attachments(p).some((a) => a.network === n));
    const subnets = (await this.store.list<Subnet>(`/index/subnet/${n}/`)).map((e) => e.value);
    if (ports.length > 0) throw new ApiError(409, 'Conflict', `network ${n} still has ${ports.length} port(s): ${names(ports)}; delete them first`);
    if (subnets.length > 0) throw new ApiError(409, 'Conflict', `network ${n} still has ${subnets.length} subnet(s): ${names(subnets)}; delete them first`);
    await this.commit([{ key: Keys.network(n), modRevision: e.modRevision }],
      [{ type: 'delete', key: Keys.network(n) }, { type: 'delete', key: Keys.vni(e.value.vni) },
        ...(e.value.provider ? [{ type: 'delete' as const, key: Keys.provider(e.value.provider.physicalNetwork, e.value.provider.vlan) }] : [])],
      () => new ApiError(409, 'Conflict', `network ${n} changed meanwhile; try again`));
  }

  // ---- subnets ---------------------------------------------------------------------------

  async createSubnet(body: z.infer<typeof subnetCreate>): Promise<Subnet> {
    const net = await this.store.get<Network>(Keys.network(body.network));
    if (!net) throw new ApiError(422, 'Unprocessable', `there is no network named ${body.network}`, [{ field: 'network', message: 'no such network' }]);
    const c = parseOrField(() => parseCidr(body.cidr), 'cidr');
    if (c.prefix > 30) throw new ApiError(422, 'Unprocessable', `${body.cidr} leaves no room for a gateway and hosts; use /30 or larger`, [{ field: 'cidr', message: 'too small' }]);
    const gateway = body.gateway ? parseIpv4(body.gateway) : c.first + 1;
    if (gateway <= c.first || gateway >= c.last) {
      throw new ApiError(422, 'Unprocessable', `gateway ${formatIpv4(gateway)} is not a host address of ${body.cidr}`, [{ field: 'gateway', message: 'outside the subnet' }]);
    }
    // By default the range is every host address above the gateway; given, it must leave
    // the gateway out.
    const start = body.allocation ? parseIpv4(body.allocation.start) : gateway + 1;
    const end = body.allocation ? parseIpv4(body.allocation.end) : c.last - 1;
    checkRange(c, start, end, body.cidr, gateway);
    const clash = (await this.store.list<Subnet>(`/index/subnet/${body.network}/`)).map((e) => e.value).find((s) => overlaps(parseCidr(s.cidr), c));
    if (clash) throw new ApiError(409, 'Conflict', `${body.cidr} overlaps subnet ${clash.name} (${clash.cidr}) on network ${body.network}`, [{ field: 'cidr', message: 'overlaps' }]);
    const subnet: Subnet = { name: body.name, network: body.network, cidr: body.cidr, gateway: formatIpv4(gateway), allocation: { start: formatIpv4(start), end: formatIpv4(end) }, dns: body.dns, ...(body.domain ? { domain: body.domain } : {}), dhcp: body.dhcp };
    await this.commit([{ key: Keys.subnet(subnet.name), modRevision: 0 }, { key: Keys.network(body.network), modRevision: net.modRevision }],
      [{ type: 'put', key: Keys.subnet(subnet.name), value: subnet }, { type: 'put', key: Keys.subnetOf(subnet.network, subnet.name), value: subnet }],
      (f) => f.key === Keys.subnet(subnet.name)
        ? new ApiError(409, 'Conflict', `a subnet named ${subnet.name} exists already`, [{ field: 'name', message: 'taken' }])
        : new ApiError(409, 'Conflict', `network ${body.network} changed meanwhile; try again`));
    return subnet;
  }

  async updateSubnet(n: string, body: z.infer<typeof subnetUpdate>): Promise<Subnet> {
    const e = await this.entry<Subnet>(Keys.subnet(n), 'subnet', n);
    const subnet: Subnet = { ...e.value, ...(body.dns ? { dns: body.dns } : {}), ...(body.domain ? { domain: body.domain } : {}), ...(body.dhcp !== undefined ? { dhcp: body.dhcp } : {}) };
    if (body.domain === null) delete subnet.domain;
    if (body.allocation) {
      checkRange(parseCidr(subnet.cidr), parseIpv4(body.allocation.start), parseIpv4(body.allocation.end), subnet.cidr, parseIpv4(subnet.gateway));
      subnet.allocation = body.allocation;
    }
    await this.commit([{ key: Keys.subnet(n), modRevision: e.modRevision }],
      [{ type: 'put', key: Keys.subnet(n), value: subnet }, { type: 'put', key: Keys.subnetOf(subnet.network, n), value: subnet }],
      () => new ApiError(409, 'Conflict', `subnet ${n} changed meanwhile; read it again and retry`));
    return subnet;
  }

  async deleteSubnet(n: string): Promise<void> {
    const e = await this.entry<Subnet>(Keys.subnet(n), 'subnet', n);
    const c = parseCidr(e.value.cidr);
    const users = (await this.list<Port>('ports')).filter((p) => attachments(p).some((a) => a.network === e.value.network && a.ips.some((ip) => isIpv4(ip) && contains(c, parseIpv4(ip)))));
    if (users.length > 0) throw new ApiError(409, 'Conflict', `subnet ${n} still has ${users.length} port(s) with addresses in it: ${names(users)}`);
    const router = await this.store.get<string>(Keys.routerOf(n));
    if (router) throw new ApiError(409, 'Conflict', `subnet ${n} is attached to router ${router.value}; detach it first`);
    await this.commit([{ key: Keys.subnet(n), modRevision: e.modRevision }],
      [{ type: 'delete', key: Keys.subnet(n) }, { type: 'delete', key: Keys.subnetOf(e.value.network, n) }],
      () => new ApiError(409, 'Conflict', `subnet ${n} changed meanwhile; try again`));
  }

  // ---- ports -----------------------------------------------------------------------------

  /** Checks requested IPs against the network's subnets, or allocates one. */
  private async addressesFor(network: string, requested: string[] | undefined, field = 'ips', held: Held = []): Promise<string[]> {
    const subnets = (await this.store.list<Subnet>(`/index/subnet/${network}/`)).map((e) => e.value);
    if (requested !== undefined) {
      requested.forEach((text, i) => {
        if (!isIpv4(text)) {
          if (text.startsWith('ff')) throw new ApiError(422, 'Unprocessable', `${text} is a multicast address`, [{ field: `${field}[${i}]`, message: 'multicast' }]);
          if (text === '::' || text === '::1') throw new ApiError(422, 'Unprocessable', `${text} cannot be a port's address`, [{ field: `${field}[${i}]`, message: 'reserved' }]);
          return; // IPv6: given, not allocated; unique on the network through its index key
        }
        const ip = parseIpv4(text);
        const s = subnets.find((x) => contains(parseCidr(x.cidr), ip));
        if (!s) {
          throw new ApiError(422, 'Unprocessable', `${text} is outside every subnet of network ${network}${subnets.length ? ` (${subnets.map((x) => x.cidr).join(', ')})` : ': it has none'}`, [{ field: `${field}[${i}]`, message: 'outside the subnets' }]);
        }
        const c = parseCidr(s.cidr);
        if (ip === c.first || ip === c.last || text === s.gateway) {
          throw new ApiError(422, 'Unprocessable', `${text} is the ${ip === c.first ? 'network address' : ip === c.last ? 'broadcast address' : 'gateway'} of subnet ${s.name}`, [{ field: `${field}[${i}]`, message: 'reserved' }]);
        }
      });
      if (new Set(requested).size !== requested.length) throw new ApiError(422, 'Unprocessable', 'an address is listed twice', [{ field, message: 'duplicate' }]);
      return requested;
    }
    if (subnets.length === 0) return [];
    const pool = await this.pool(network);
    for (const s of subnets) {
      const ip = pool.allocate(parseIpv4(s.allocation.start), parseIpv4(s.allocation.end), parseIpv4(s.gateway));
      if (ip === null) continue;
      pool.hold(ip);
      held.push([network, ip]);
      return [formatIpv4(ip)];
    }
    throw new ApiError(409, 'Conflict', `network ${network} has no free address left in ${names(subnets)}`, [{ field, message: 'exhausted' }]);
  }

  /**
   * A port is bound to a registered host: `weft host create` registers one before its agent
   * joins, so a port can be made ahead of its host, but never for a misspelled one.
   */
  private async mustHost(host: string): Promise<void> {
    if (await this.store.get(Keys.host(host))) return;
    const hosts = (await this.list<Host>('hosts')).map((h) => h.name);
    throw new ApiError(422, 'Unprocessable', `there is no host named ${host}${hosts.length ? ` (hosts: ${names(hosts.map((n) => ({ name: n })))})` : ''}; register it with weft host create`, [{ field: 'host', message: 'no such host' }]);
  }

  /** A port on a provider network needs an interface on its physical network on its host. */
  private async mustReach(host: string, nets: Network[], fields: string[]): Promise<void> {
    const h = (await this.store.get<Host>(Keys.host(host)))?.value;
    nets.forEach((net, i) => {
      const physnet = net.provider?.physicalNetwork;
      if (physnet === undefined || hasOwnKey(h?.physicalNetworks, physnet)) return;
      const has = Object.keys(h?.physicalNetworks ?? {});
      throw new ApiError(422, 'Unprocessable', `host ${host} has no interface on physical network ${physnet}, which network ${net.name} is on${has.length ? ` (it has: ${has.join(', ')})` : ''}; give its agent --physical-network ${physnet}=INTERFACE`, [{ field: fields[i], message: 'not on this host' }]);
    });
  }

  /** A QEMU port's socket must be where agents keep QEMU sockets: an agent runs as root,
   * and would otherwise bind (and replace a stale socket) wherever a request says. */
  private mustConfineSocket(backend: Port['backend'] | undefined): void {
    if (backend?.type !== 'qemu') return;
    const dir = socketDirText(this.opts.qemuSocketDir ?? DEFAULT_QEMU_SOCKET_DIR);
    const why = qemuSocketOutside(backend.socket, dir);
    if (why) throw new ApiError(422, 'Unprocessable', `backend.socket: ${why} (weft controller --qemu-socket-dir)`, [{ field: 'backend.socket', message: `not inside ${dir}/` }]);
  }

  async createPort(body: z.infer<typeof portCreate>): Promise<Port> {
    // Its networks: the access (or native) one untagged, then a trunk's tagged ones.
    const wanted = [
      ...(body.network === undefined ? [] : [{ network: body.network, ips: body.ips, at: '' }]),
      ...(body.vlans ?? []).map((v, k) => ({ network: v.network, ips: v.ips, at: `vlans[${k}].` })),
    ];
    const nets: Array<Entry<Network>> = [];
    for (const w of wanted) {
      const net = await this.store.get<Network>(Keys.network(w.network));
      if (!net) throw new ApiError(422, 'Unprocessable', `there is no network named ${w.network}`, [{ field: `${w.at}network`, message: 'no such network' }]);
      nets.push(net);
    }
    this.mustConfineSocket(body.backend);
    await this.mustHost(body.host);
    await this.mustReach(body.host, nets.map((e) => e.value), wanted.map((w) => `${w.at}network`));
    const securityGroups = await this.portGroups(body.securityGroups);
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const held: Held = [];
      try {
        const mac = body.mac ?? randomMac();
        const addresses: string[][] = [];
        for (const w of wanted) addresses.push(await this.addressesFor(w.network, w.ips, `${w.at}ips`, held));
        const native = body.network === undefined ? 0 : 1;
        const port: Port = {
          name: body.name,
          ...(body.network === undefined ? {} : { network: body.network }),
          host: body.host,
          mac,
          ips: native ? addresses[0] : [],
          ...(body.vlans === undefined ? {} : { vlans: body.vlans.map((v, k) => ({ vid: v.vid, network: v.network, ips: addresses[native + k] })) }),
          backend: body.backend,
          portSecurity: body.portSecurity,
          ...(body.allowedAddresses.length ? { allowedAddresses: body.allowedAddresses } : {}),
          ...(body.allowedEtherTypes.length ? { allowedEtherTypes: body.allowedEtherTypes } : {}),
          securityGroups,
          ...(body.connectionLimit ? { connectionLimit: body.connectionLimit } : {}),
        };
        const claims = attachments(port).flatMap((a) => [Keys.mac(a.network, mac), ...a.ips.map((ip) => Keys.ip(a.network, ip))]);
        const r = await this.write(
          [
            { key: Keys.port(port.name), modRevision: 0 },
            ...nets.map((net) => ({ key: net.key, modRevision: net.modRevision })),
            ...claims.map((key) => ({ key, modRevision: 0 })),
          ],
          [{ type: 'put', key: Keys.port(port.name), value: port }, ...claims.map((key) => ({ type: 'put' as const, key, value: port.name }))],
        );
        if (r.ok) return port;
        const f = r.failed.key;
        if (f === Keys.port(port.name)) throw new ApiError(409, 'Conflict', `a port named ${port.name} exists already`, [{ field: 'name', message: 'taken' }]);
        if (f.startsWith('/networks/')) throw new ApiError(409, 'Conflict', `network ${f.slice('/networks/'.length)} changed meanwhile; try again`);
        const owner = (await this.store.get<string>(f))?.value ?? '(deleted meanwhile)';
        const [, , kind, network, value] = f.split('/');
        if (kind === 'mac' && body.mac !== undefined) {
          throw new ApiError(409, 'Conflict', `MAC ${mac} is used by port ${owner} on network ${network}`, [{ field: 'mac', message: 'taken' }]);
        }
        const w = wanted.find((x) => x.network === network);
        if (kind === 'ip' && w?.ips !== undefined) {
          throw new ApiError(409, 'Conflict', `${value} is used by port ${owner} on network ${network}`, [{ field: `${w.at}ips`, message: 'taken' }]);
        }
        // An allocated MAC or address was taken by a concurrent create (or another
        // controller): allocate again, that address known taken.
        if (kind === 'ip' && isIpv4(value)) this.pools.get(network)?.take(parseIpv4(value));
      } finally {
        this.letGo(held);
      }
    }
    throw new ApiError(503, 'Busy', 'could not allocate an address: too many concurrent creates; try again');
  }

  /** Moves a port to another host, changes its backend, or (on its untagged network) its
   * addresses. A trunk's VLANs and a port's networks do not change in place. */
  async updatePort(n: string, body: z.infer<typeof portUpdate>): Promise<Port> {
    const e = await this.entry<Port>(Keys.port(n), 'port', n);
    const old = e.value;
    this.mustConfineSocket(body.backend);
    if (body.host !== undefined && body.host !== old.host) {
      await this.mustHost(body.host);
      const nets = await Promise.all(attachments(old).map((a) => this.getNetwork(a.network)));
      await this.mustReach(body.host, nets, nets.map(() => 'host'));
    }
    if (body.ips !== undefined && old.network === undefined) {
      throw new ApiError(422, 'Unprocessable', `port ${n} is a trunk without an untagged network: its addresses are per VLAN and do not change in place`, [{ field: 'ips', message: 'no untagged network' }]);
    }
    const network = old.network ?? '';
    const ips = body.ips === undefined ? old.ips : await this.addressesFor(network, body.ips);
    const port: Port = {
      ...old, ...(body.host ? { host: body.host } : {}), ...(body.backend ? { backend: body.backend } : {}), ips,
      ...(body.portSecurity !== undefined ? { portSecurity: body.portSecurity } : {}),
      ...(body.allowedAddresses !== undefined ? { allowedAddresses: body.allowedAddresses } : {}),
      ...(body.allowedEtherTypes !== undefined ? { allowedEtherTypes: body.allowedEtherTypes } : {}),
      ...(body.securityGroups !== undefined ? { securityGroups: await this.portGroups(body.securityGroups) } : {}),
      ...(body.addSecurityGroups || body.removeSecurityGroups
        ? { securityGroups: await this.portGroups(changeList(`port ${n}`, 'security group', 'is in', old.securityGroups ?? [], body.addSecurityGroups, body.removeSecurityGroups, (g) => g, (g) => g)) }
        : {}),
      ...(body.connectionLimit !== undefined ? { connectionLimit: body.connectionLimit } : {}),
    };
    if (port.allowedAddresses?.length === 0) delete port.allowedAddresses;
    if (port.allowedEtherTypes?.length === 0) delete port.allowedEtherTypes;
    const released = old.ips.filter((ip) => !ips.includes(ip));
    const claimed = ips.filter((ip) => !old.ips.includes(ip));
    await this.commit(
      [{ key: Keys.port(n), modRevision: e.modRevision }, ...claimed.map((ip) => ({ key: Keys.ip(network, ip), modRevision: 0 }))],
      [
        { type: 'put', key: Keys.port(n), value: port },
        ...released.map((ip) => ({ type: 'delete' as const, key: Keys.ip(network, ip) })),
        ...claimed.map((ip) => ({ type: 'put' as const, key: Keys.ip(network, ip), value: n })),
      ],
      (f) => f.key === Keys.port(n)
        ? new ApiError(409, 'Conflict', `port ${n} changed meanwhile; read it again and retry`)
        : new ApiError(409, 'Conflict', `${f.key.split('/').pop()} is used by another port on network ${network}`, [{ field: 'ips', message: 'taken' }]),
    );
    return port;
  }

  async deletePort(n: string): Promise<void> {
    const e = await this.entry<Port>(Keys.port(n), 'port', n);
    const p = e.value;
    const floating = (await this.store.get<string>(Keys.floatingOf(n)))?.value;
    if (floating) throw new ApiError(409, 'Conflict', `port ${n} has floating address ${floating}; delete it first`);
    const forwards = (await this.list<PortForward>('port-forwards')).filter((f) => f.port === n);
    if (forwards.length > 0) throw new ApiError(409, 'Conflict', `port ${n} is the target of port forwards: ${names(forwards)}; delete them first`);
    await this.commit([{ key: Keys.port(n), modRevision: e.modRevision }], [
      { type: 'delete', key: Keys.port(n) },
      ...attachments(p).flatMap((a) => [Keys.mac(a.network, p.mac), ...a.ips.map((ip) => Keys.ip(a.network, ip))]).map((key) => ({ type: 'delete' as const, key })),
    ], () => new ApiError(409, 'Conflict', `port ${n} changed meanwhile; try again`));
  }
}

const DEFAULT_GROUP = 'default';
/** Where Keys.ip keeps the addresses of every network. */
const IP_INDEX = '/index/ip/';
/** Addresses allocated and held (network, address) until their claims are committed. */
type Held = Array<[network: string, ip: number]>;

function ruleId(): string {
  return randomBytes(4).toString('hex');
}

/**
 * A list setting changed one item at a time: `remove` names items by key (each must be
 * there), `add` appends items (none there yet). A 422 names what is there otherwise.
 */
function changeList<T, R>(owner: string, what: string, verb: string, list: T[], add: T[] | undefined, remove: R[] | undefined, key: (item: T) => R, show: (item: T) => string): T[] {
  const field = (op: string) => `${op}${what.split(' ').map((w) => w[0].toUpperCase() + w.slice(1)).join('')}s`;
  const has = (k: R) => list.some((x) => key(x) === k);
  const missing = (remove ?? []).filter((k) => !has(k));
  if (missing.length > 0) {
    throw new ApiError(422, 'Unprocessable', `${owner} ${verb} no ${what} ${missing.join(', ')} (${list.length ? `it ${verb}: ${list.map(show).join(', ')}` : `it ${verb} none`})`, [{ field: field('remove'), message: 'not there' }]);
  }
  if (add && new Set(add.map(key)).size !== add.length) throw new ApiError(422, 'Unprocessable', `a ${what} to add is listed twice`, [{ field: field('add'), message: 'duplicate' }]);
  const kept = list.filter((x) => !(remove ?? []).includes(key(x)));
  const already = (add ?? []).filter((x) => kept.some((k) => key(k) === key(x)));
  if (already.length > 0) throw new ApiError(422, 'Unprocessable', `${owner} ${verb} ${what} ${already.map(show).join(', ')} already`, [{ field: field('add'), message: 'there already' }]);
  return [...kept, ...(add ?? [])];
}

function names(items: Array<{ name: string }>): string {
  const shown = items.slice(0, 5).map((i) => i.name).join(', ');
  return items.length > 5 ? `${shown} and ${items.length - 5} more` : shown;
}

function parseOrField<T>(f: () => T, field: string): T {
  try {
    return f();
  } catch (err) {
    throw new ApiError(422, 'Unprocessable', (err as Error).message, [{ field, message: (err as Error).message }]);
  }
}

function checkRange(c: ReturnType<typeof parseCidr>, start: number, end: number, cidr: string, gateway: number): void {
  if (start > end || start <= c.first || end >= c.last) {
    throw new ApiError(422, 'Unprocessable', `allocation ${formatIpv4(start)}-${formatIpv4(end)} must be an ascending range of host addresses inside ${cidr}`, [{ field: 'allocation', message: 'outside the subnet' }]);
  }
  if (gateway >= start && gateway <= end) {
    throw new ApiError(422, 'Unprocessable', `allocation ${formatIpv4(start)}-${formatIpv4(end)} includes the gateway ${formatIpv4(gateway)}; leave it out of the range`, [{ field: 'allocation', message: 'includes the gateway' }]);
  }
}

/** A random locally administered unicast MAC (02:xx:xx:xx:xx:xx). */
function randomMac(): string {
  const b = randomBytes(5);
  return ['02', ...[...b].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}
