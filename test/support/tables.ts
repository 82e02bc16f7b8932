/**
 * A data path's compiled tables as plain values, for comparing two data paths that should
 * hold the same network: member and local ids (the builders' own numbering) become the
 * endpoints and port names they stand for.
 */
import type { Datapath } from '../../src/datapath/datapath.js';
import { formatIpv4, formatIpv6, formatMac } from '../../src/wire/bytes.js';
import { isLocalPin, localOf } from '../../src/datapath/tables.js';

export function tablesSnapshot(dp: Datapath, network: string): unknown {
  const t = dp.tablesOf(network);
  const member = new Map(t.members.map((m) => [m.id, `${formatIpv4(m.address)}:${m.port}${m.key ? ` ${m.key}` : ''}`]));
  const pinTo = (code: number) => (isLocalPin(code) ? `port ${t.locals[localOf(code)]}` : `host ${member.get(code) ?? `(gone: ${code})`}`);
  const sorted = <T>(xs: T[]) => xs.sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
  return {
    mtu: dp.networkMtu(network),
    members: sorted([...member.values()]),
    pins: sorted([...t.pins.entries()].map(([mac, code]) => `${formatMac(mac)} ${pinTo(code)}`)),
    arp: t.arp === null ? null : sorted([...t.arp.entries()].map(([ip, mac]) => `${formatIpv4(ip)} ${formatMac(mac)}`)),
    nd: t.nd === null ? null : sorted([...t.nd.entries()].map(([ip, mac]) => `${ip} ${formatMac(mac)}`)),
    routes: t.routes.map((r) => `${formatIpv4(r.prefix)}/${r.mask} ${r.network} ${formatIpv4(r.nextHop)}`),
    routes6: t.routes6.map((r) => `${[...r.prefix.words].join(':')}/${r.prefix.length} ${r.network}`),
    gateways: t.gateways.map((g) => `${formatIpv4(g.address)}/${g.mask}`),
    ipv6: t.ipv6 === null ? null : { ...t.ipv6, prefix: formatIpv6(t.ipv6.prefix), dns: t.ipv6.dns.map((d) => formatIpv6(d)) },
    external: t.external === null ? null : 'router' in t.external ? `router ${t.external.router}` : `host ${member.get(t.external.member)}`,
  };
}
