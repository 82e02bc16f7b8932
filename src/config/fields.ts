/**
 * The fields a person writes, in API requests, agent config files and lab topologies alike:
 * names, addresses, prefixes, MACs, interface and namespace names. Each schema accepts one
 * written form (or several that mean the same, such as an upper-case MAC) and turns it into
 * the one canonical form that is compared, indexed and stored, so that two spellings of one
 * address can never be two things.
 *
 * Strictness follows the resolvers people rely on (glibc's inet_pton, Go's net/netip): an
 * IPv4 address is four decimal numbers 0..255 without leading zeros (`010.0.0.1` is octal to
 * some parsers and decimal to others, so it is refused, not guessed); IPv6 is stored in its
 * RFC 5952 form; an IPv4-mapped IPv6 address is refused where an address of a port is meant.
 */
import { z } from 'zod';
import { formatIpv4, formatIpv6, formatMac, parseIpv4, parseIpv6, parseMac } from '../wire/bytes.js';

/**
 * A resource's name, Kubernetes-style: lower case, so that `Blue` and `blue` can never be
 * two networks (nor `INH` and `inh` two hosts). An upper-case name is refused with its
 * lower-case form suggested. Names are looked up only in Maps or through `own()`: `constructor`
 * is a fine name, and must not find Object.prototype's.
 */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
/** What names were before they were lower case: what a path may still name, so that a
 * resource stored then can be read and deleted. */
export const LEGACY_NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;
const NAME_RULE = 'a name of lower-case letters, digits, "-", "_" and ".", up to 63 characters, starting with a letter or digit';
export const name = z.string().superRefine((text, ctx) => {
  if (NAME_PATTERN.test(text)) return;
  const lower = text.toLowerCase();
  ctx.addIssue({ code: 'custom', message: NAME_PATTERN.test(lower) ? `names are lower case: give ${quoted(lower)}, not ${quoted(text)}` : NAME_RULE });
}).meta({ pattern: NAME_PATTERN.source }); // the rule, for the OpenAPI document

/**
 * Characters no stored text may hold: C0 and C1 controls (an escape sequence drives a
 * terminal; a newline forges a line), the line and paragraph separators, and Unicode's
 * bidirectional formatting characters (which reorder what a terminal shows: "Trojan
 * Source", CVE-2021-42574).
 */
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const NO_CONTROL = 'no control or bidirectional-formatting characters (newlines, escapes, U+202E and the like)';
const CONTROL_CHARACTERS_ALL = new RegExp(CONTROL_CHARACTERS.source, 'g');

/** `\u001b` for a control or bidi character: how one is written when it must be shown. */
function escapeCharacter(c: string): string {
  const code = c.charCodeAt(0);
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Text with each control and bidi character written as an escape (`\x1b`, `\n`,
 * `\u202e`), so that it shows as what it is and cannot drive a terminal. */
export function printable(text: string): string {
  return text.replace(CONTROL_CHARACTERS_ALL, escapeCharacter);
}

/** `text` in quotes, as JSON writes it, with every control and bidi character escaped:
 * how an error message shows what it refuses. */
export function quoted(text: string): string {
  return printable(JSON.stringify(text));
}

/** Why `text` cannot be stored (its first control or bidi character, and where), or null. */
export function controlCharacterIn(text: string): string | null {
  const m = CONTROL_CHARACTERS.exec(text);
  return m ? `has a control or bidirectional-formatting character (${escapeCharacter(m[0])} at position ${m.index}); these are not allowed` : null;
}

/** Free text a person writes (a description): at most `max` characters, none of them
 * control or bidi characters. */
export function plainText(max: number) {
  return z.string().max(max).superRefine((text, ctx) => {
    const why = controlCharacterIn(text);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });
}

/** Has `dict` an entry of its own for `key`: never one it inherits (`constructor`,
 * `toString`, `__proto__`). The way to look up a user-named key in a plain object. */
export function hasOwnKey(dict: object | undefined | null, key: string): boolean {
  return dict != null && Object.hasOwn(dict, key);
}

/** `dict[key]` if `dict` has an entry of its own for `key`; undefined otherwise. */
export function own<V>(dict: Readonly<Record<string, V>> | undefined | null, key: string): V | undefined {
  return dict != null && Object.hasOwn(dict, key) ? dict[key] : undefined;
}

/**
 * A JSON object used as a dictionary keyed by names (`{"physnet1": "eth1"}`). zod drops a
 * `__proto__` key silently (it would set the result's prototype); here it is refused like
 * any other key that is not a name, naming it.
 */
export function nameRecord<V extends z.ZodType>(key: z.ZodType<string, string>, value: V) {
  return z.preprocess((input, ctx) => {
    if (input !== null && typeof input === 'object' && Object.hasOwn(input, '__proto__')) {
      const keyIssue = key.safeParse('__proto__');
      ctx.addIssue({ code: 'custom', path: ['__proto__'], message: keyIssue.success ? '"__proto__" cannot be a key' : keyIssue.error.issues[0].message, input });
    }
    return input;
  }, z.record(key, value));
}

/** Linux's own rule for interface names (dev_valid_name): 1 to 15 bytes, not "." or "..",
 * no "/", ":" or white space. */
export const ifname = z.string()
  .regex(/^[^\s/:\u0000-\u001f\u007f-\u009f]{1,15}$/, 'an interface name of 1 to 15 characters without "/", ":", white space or control characters')
  .refine((t) => t !== '.' && t !== '..' && Buffer.byteLength(t) <= 15, 'an interface name cannot be "." or ".." and has at most 15 bytes')
  .refine((t) => !CONTROL_CHARACTERS.test(t), NO_CONTROL);

/** A network namespace name as `ip netns` takes it: one file name under /run/netns. */
export const netnsName = z.string()
  .regex(/^[^\s/\u0000-\u001f\u007f-\u009f]{1,255}$/, 'a network namespace name of 1 to 255 characters without "/", white space or control characters')
  .refine((t) => t !== '.' && t !== '..', 'a network namespace name cannot be "." or ".."')
  .refine((t) => !CONTROL_CHARACTERS.test(t), NO_CONTROL);

/** A unix socket's path, as the kernel takes it: absolute, at most 107 bytes (sun_path),
 * no "." or ".." component. */
export const unixSocketPath = z.string()
  .regex(/^\/[^\u0000]*$/, 'an absolute path without NUL characters')
  .refine((p) => Buffer.byteLength(p) <= 107, 'at most 107 bytes (a unix socket path)')
  .refine((p) => !p.split('/').some((c) => c === '.' || c === '..'), 'no "." or ".." in the path')
  .refine((p) => !CONTROL_CHARACTERS.test(p), NO_CONTROL);

/** Parses IPv4 text into its number, or null. Leading zeros are refused by parseIpv4. */
function ipv4Number(text: string): number | null {
  try {
    return parseIpv4(text);
  } catch {
    return null;
  }
}

/** Any IPv4 address, in its canonical form. */
export const ipv4 = z.string().transform((text, ctx) => {
  const ip = ipv4Number(text);
  if (ip === null) {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an IPv4 address such as 10.0.0.1 (four numbers 0-255, no leading zeros)` });
    return z.NEVER;
  }
  return formatIpv4(ip);
});

/** Why an IPv4 address cannot be a unicast address of a host, or null when it can. */
export function notUnicast(ip: number): string | null {
  const first = ip >>> 24;
  if (first === 0) return 'is in 0.0.0.0/8 ("this network")';
  if (first === 127) return 'is a loopback address';
  if (first >= 224 && first < 240) return 'is a multicast address';
  if (ip === 0xffffffff) return 'is the broadcast address';
  if (first >= 240) return 'is in the reserved 240.0.0.0/4';
  return null;
}

/** A unicast IPv4 address: a host's underlay address, a DNS server. */
export const unicastIpv4 = ipv4.superRefine((text, ctx) => {
  const why = notUnicast(parseIpv4(text));
  if (why) ctx.addIssue({ code: 'custom', message: `${text} ${why}; give a unicast address` });
});

/** A host's own underlay address in its config: unicast, or loopback (agents that all run
 * on one machine; a controller decides whether it accepts those). */
export const underlayAddress = ipv4.superRefine((text, ctx) => {
  const ip = parseIpv4(text);
  const why = notUnicast(ip);
  if (why && ip >>> 24 !== 127) ctx.addIssue({ code: 'custom', message: `${text} ${why}; give the address of this host's underlay interface` });
});

/** An IPv6 address in its RFC 5952 form. */
export const ipv6 = z.string().transform((text, ctx) => {
  try {
    return formatIpv6(parseIpv6(text));
  } catch {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an IPv6 address such as fd00::1` });
    return z.NEVER;
  }
});

/** An IPv6 /64 prefix, canonical (`fd00:10::/64`), with no host bits set: a network's
 * prefix, whose addresses VMs make themselves (SLAAC needs 64 bits of interface id). */
export const ipv6Prefix64 = z.string().transform((text, ctx) => {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  let bytes: Uint8Array | null = null;
  try {
    bytes = m ? parseIpv6(m[1]) : null;
  } catch {
    bytes = null;
  }
  if (!m || bytes === null) {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an IPv6 prefix such as fd00:10::/64` });
    return z.NEVER;
  }
  if (m[2] !== '64') {
    ctx.addIssue({ code: 'custom', message: `${text} is a /${m[2]}; a network's IPv6 prefix is a /64 (stateless autoconfiguration needs 64 bits of interface identifier)` });
    return z.NEVER;
  }
  if (bytes.subarray(8).some((b) => b !== 0)) {
    ctx.addIssue({ code: 'custom', message: `${text} has host bits set; the prefix is ${formatIpv6(new Uint8Array([...bytes.subarray(0, 8), 0, 0, 0, 0, 0, 0, 0, 0]))}/64` });
    return z.NEVER;
  }
  if (bytes[0] === 0xff || (bytes[0] === 0xfe && (bytes[1] & 0xc0) === 0x80)) {
    ctx.addIssue({ code: 'custom', message: `${text} is ${bytes[0] === 0xff ? 'multicast' : 'link-local'}; give a global or unique local prefix (fd00::/8)` });
    return z.NEVER;
  }
  return `${formatIpv6(bytes)}/64`;
});

/** A port's address: IPv4 or IPv6, canonical; an IPv4-mapped IPv6 address is refused, since
 * it would be a second spelling of an IPv4 address. */
export const portAddress = z.string().transform((text, ctx) => {
  const v4 = ipv4Number(text);
  if (v4 !== null) return formatIpv4(v4);
  let bytes: Uint8Array;
  try {
    bytes = parseIpv6(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an IPv4 address (no leading zeros) or an IPv6 address` });
    return z.NEVER;
  }
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    const mapped = formatIpv4(((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15]) >>> 0);
    ctx.addIssue({ code: 'custom', message: `${text} is an IPv4-mapped IPv6 address; give the IPv4 address ${mapped}` });
    return z.NEVER;
  }
  return formatIpv6(bytes);
});

/** An IPv4 or IPv6 address, or a prefix of either (`10.0.0.5`, `10.0.0.0/24`, `fd00::/64`),
 * canonical: what an allowed address pair names. */
export const addressOrPrefix = z.string().transform((text, ctx) => {
  const [addr, len, extra] = text.split('/');
  const v6 = addr.includes(':');
  const most = v6 ? 128 : 32;
  if (extra !== undefined || (len !== undefined && !(/^\d{1,3}$/.test(len) && Number(len) <= most && !(len.length > 1 && len[0] === '0')))) {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an address or a prefix such as 10.0.0.5 or 10.0.0.0/24` });
    return z.NEVER;
  }
  const parsed = (v6 ? ipv6 : ipv4).safeParse(addr);
  if (!parsed.success) {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an address or a prefix such as 10.0.0.5 or 10.0.0.0/24` });
    return z.NEVER;
  }
  return len === undefined || Number(len) === most ? parsed.data : `${parsed.data}/${Number(len)}`;
});

/** An IPv4 prefix, canonical (`10.0.0.0/24`), with no host bits set. */
export const ipv4Cidr = z.string().transform((text, ctx) => {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const ip = m ? ipv4Number(m[1]) : null;
  const len = m ? Number(m[2]) : NaN;
  if (ip === null || !(len >= 0 && len <= 32) || (m![2].length > 1 && m![2][0] === '0')) {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not an IPv4 prefix such as 10.0.0.0/24` });
    return z.NEVER;
  }
  const size = 2 ** (32 - len);
  const network = ip - (ip % size);
  if (network !== ip) {
    ctx.addIssue({ code: 'custom', message: `${text} has host bits set; the prefix is ${formatIpv4(network)}/${len}` });
    return z.NEVER;
  }
  return `${formatIpv4(ip)}/${len}`;
});

/** A unicast MAC other than all zeros, written with ":" or "-" in either case; stored in
 * lower case with ":". */
export const unicastMac = z.string().transform((text, ctx) => {
  let mac: number;
  try {
    mac = parseMac(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `${quoted(text)} is not a MAC address such as 02:00:00:00:00:01` });
    return z.NEVER;
  }
  if (mac === 0) {
    ctx.addIssue({ code: 'custom', message: 'the all-zero MAC address is not a valid source; give a unicast MAC such as 02:00:00:00:00:01' });
    return z.NEVER;
  }
  if (Math.floor(mac / 2 ** 40) & 1) {
    ctx.addIssue({ code: 'custom', message: `${text} is a group (multicast) MAC: the lowest bit of the first byte must be clear` });
    return z.NEVER;
  }
  return formatMac(mac);
});

/** An underlay MTU: at least what carries IPv6 (RFC 8200 §5), at most a jumbo frame. */
export const underlayMtu = z.number().int().min(1280).max(9216);

/** The EtherTypes a port always sends with port security on (IPv4, ARP, IPv6), and those
 * that mean a VLAN tag follows (802.1Q, 802.1ad, pre-standard QinQ): neither is listed. */
const ETHERTYPES_ALWAYS = new Map([[0x0800, 'IPv4'], [0x0806, 'ARP'], [0x86dd, 'IPv6']]);
const ETHERTYPES_TAG = new Set([0x8100, 0x88a8, 0x9100, 0x9200]);

/** An EtherType a port may send besides IPv4, IPv6 and ARP: written `0x88cc` (hex, as
 * EtherTypes are written) or as a number, stored as four lower-case hex digits (`0x88cc`).
 * At least 0x0600 (below, the field is an 802.3 length, RFC 894 / IEEE 802.3 §3.2.6); not a
 * VLAN tag's (a trunk port carries tags), nor one always allowed. */
export const etherType = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const n = typeof value === 'number' ? value : /^0x[0-9a-f]{1,4}$/i.test(value) ? parseInt(value, 16) : NaN;
  const text = typeof value === 'number' ? String(value) : JSON.stringify(value);
  if (!Number.isInteger(n) || n < 0x0600 || n > 0xffff) {
    ctx.addIssue({ code: 'custom', message: `${text} is not an EtherType such as 0x88cc (0x0600 to 0xffff; below 0x0600 the field is an 802.3 length)` });
    return z.NEVER;
  }
  const hex = `0x${n.toString(16).padStart(4, '0')}`;
  if (ETHERTYPES_TAG.has(n)) {
    ctx.addIssue({ code: 'custom', message: `${hex} is a VLAN tag: an access port never sends tags (a trunk port carries VLANs)` });
    return z.NEVER;
  }
  const always = ETHERTYPES_ALWAYS.get(n);
  if (always !== undefined) {
    ctx.addIssue({ code: 'custom', message: `${hex} is ${always}, which a port always sends; list only other EtherTypes` });
    return z.NEVER;
  }
  return hex;
});

/** An interface's IPv4 address with its prefix length (`10.0.0.5/24`), canonical: a unicast
 * host address of its prefix, so neither the prefix's own address nor its broadcast address
 * (a /31 or /32 has neither, RFC 3021). */
export const ipv4Interface = z.string().transform((text, ctx) => {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const ip = m ? ipv4Number(m[1]) : null;
  const len = m ? Number(m[2]) : NaN;
  if (ip === null || !(len >= 1 && len <= 32) || (m![2].length > 1 && m![2][0] === '0')) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not an IPv4 address with a prefix length such as 10.0.0.5/24 (four numbers 0-255, no leading zeros; a length 1-32)` });
    return z.NEVER;
  }
  const why = notUnicast(ip);
  if (why) {
    ctx.addIssue({ code: 'custom', message: `${text}: ${formatIpv4(ip)} ${why}; give a unicast address` });
    return z.NEVER;
  }
  const size = 2 ** (32 - len);
  const network = ip - (ip % size);
  if (len <= 30 && (ip === network || ip === network + size - 1)) {
    ctx.addIssue({ code: 'custom', message: `${text} is the ${ip === network ? 'network' : 'broadcast'} address of ${formatIpv4(network)}/${len}; give a host address (${formatIpv4(network + 1)} to ${formatIpv4(network + size - 2)})` });
    return z.NEVER;
  }
  return `${formatIpv4(ip)}/${len}`;
});

/** An interface's IPv6 address with its prefix length (`fd00:10::5/64`), in RFC 5952 form. */
export const ipv6Interface = z.string().transform((text, ctx) => {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  const address = m ? ipv6.safeParse(m[1]) : null;
  if (!m || !address?.success || Number(m[2]) > 128 || (m[2].length > 1 && m[2][0] === '0')) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not an IPv6 address with a prefix length such as fd00:10::5/64` });
    return z.NEVER;
  }
  return `${address.data}/${Number(m[2])}`;
});
