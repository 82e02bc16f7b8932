/**
 * The controller's resources: hosts, networks, subnets and ports, with the schemas that
 * validate what clients send. The same schemas produce the OpenAPI document.
 */
import { z } from 'zod';
import { ENCAPSULATIONS, type Encapsulation } from '../datapath/encapsulation.js';
import { isIpv4, isIpv6 } from './ipam.js';
import { VNI_MAX } from '../wire/vxlan.js';

export const name = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/i, 'a name of letters, digits, "-", "_" and ".", up to 63 characters, starting with a letter or digit');
const ipv4 = z.string().refine(isIpv4, 'an IPv4 address such as 10.0.0.1');
/** A port's address: IPv4 (checked against the network's subnets, or allocated) or IPv6
 * (given, not allocated; unique on its network). */
const portAddress = z.string().refine((t) => isIpv4(t) || isIpv6(t), 'an IPv4 or IPv6 address');
const mac = z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'a MAC address in lowercase, such as 02:00:00:00:00:01')
  .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0 /* the I/G bit, as isGroupMac */, 'a unicast MAC address (the lowest bit of the first byte clear)');
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'an IPv4 prefix such as 10.0.0.0/24');
const ifname = z.string().regex(/^[^\s/:]{1,15}$/, 'an interface name of 1 to 15 characters without "/", ":" or spaces');

export const backendSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('tap'), device: ifname, netns: z.string().min(1).max(255).optional() }).strict(),
  z.object({ type: z.literal('memory') }).strict(),
]);

export const networkCreate = z.object({
  name,
  vni: z.number().int().min(1).max(VNI_MAX).optional(),
  encapsulation: z.enum(ENCAPSULATIONS as [Encapsulation, ...Encapsulation[]]).default('vxlan'),
  /** The largest IP packet VMs may send; at most what each host's underlay allows. */
  mtu: z.number().int().min(576).max(9000).optional(),
}).strict();
export const networkUpdate = z.object({ mtu: z.number().int().min(576).max(9000).nullable() }).partial().strict();

export const subnetCreate = z.object({
  name,
  network: name,
  cidr,
  gateway: ipv4.optional(),
  allocation: z.object({ start: ipv4, end: ipv4 }).strict().optional(),
  dns: z.array(ipv4).max(8).default([]),
}).strict();
export const subnetUpdate = z.object({
  allocation: z.object({ start: ipv4, end: ipv4 }).strict(),
  dns: z.array(ipv4).max(8),
}).partial().strict();

export const portCreate = z.object({
  name,
  network: name,
  host: name,
  mac: mac.optional(),
  ips: z.array(portAddress).max(16).optional(),
  backend: backendSchema.default({ type: 'memory' }),
}).strict();
export const portUpdate = z.object({
  host: name,
  ips: z.array(portAddress).max(16),
  backend: backendSchema,
}).partial().strict();

export const hostJoin = z.object({
  name,
  address: ipv4,
  port: z.number().int().min(1).max(65535).default(4789),
  mtu: z.number().int().min(576).max(65535).default(1500),
}).strict();

export type Backend = z.infer<typeof backendSchema>;

export interface Network {
  name: string;
  vni: number;
  encapsulation: Encapsulation;
  mtu?: number;
}

export interface Subnet {
  name: string;
  network: string;
  cidr: string;
  gateway: string;
  allocation: { start: string; end: string };
  dns: string[];
}

export interface Port {
  name: string;
  network: string;
  host: string;
  mac: string;
  ips: string[];
  backend: Backend;
}

export interface Host {
  name: string;
  address: string;
  port: number;
  mtu: number;
  joinedAt: string;
}

/** Store keys: one prefix per resource, plus unique indexes that a commit's conditions use
 * to refuse duplicates atomically. */
export const Keys = {
  host: (n: string) => `/hosts/${n}`,
  network: (n: string) => `/networks/${n}`,
  subnet: (n: string) => `/subnets/${n}`,
  port: (n: string) => `/ports/${n}`,
  vni: (v: number) => `/index/vni/${v}`,
  /** A copy of each subnet under its network, so a port's subnets are one prefix read. */
  subnetOf: (network: string, n: string) => `/index/subnet/${network}/${n}`,
  mac: (network: string, m: string) => `/index/mac/${network}/${m}`,
  ip: (network: string, ip: string) => `/index/ip/${network}/${ip}`,
} as const;
