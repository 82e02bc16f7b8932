/**
 * Counters of the data path: frames and bytes each way, and drops by reason. Every drop
 * in the data path names one of these reasons; nothing is lost without a count.
 */

export const DROP_REASONS = [
  /** A frame shorter than an Ethernet header (from a port). */
  'runt',
  /** A frame that filled the whole receive slot: it may have been cut, so it is not trusted. */
  'oversize',
  /** From a TAP with offloads: a frame whose virtio-net header asks for what cannot be done
   * (a TCP super-frame that is not TCP, cut to under 88 bytes or to segments larger than a
   * frame may be; a checksum to finish outside the frame). */
  'offload-refused',
  /** A source MAC that no station can have: a group (multicast/broadcast) address or all
   * zeros. Never learned; from a port or inside a datagram from a tunnel. */
  'invalid-src-mac',
  /** From a port: tagged on an access port, untagged on a trunk with no native network, a
   * VLAN the trunk does not carry, or a second tag inside a trunk's tag (VLAN hopping). From
   * a tunnel: any tagged inner frame (frames cross the underlay untagged; the VNI is the
   * network). A tag is any of the tag EtherTypes 0x8100, 0x88a8, 0x9100 and 0x9200; on a
   * trunk only 0x8100 selects a VLAN, and a frame of its native network may not be tagged
   * with the others. */
  'vlan-not-allowed',
  /** An IP packet larger than the network's MTU, from a port or from a tunnel. */
  'mtu-exceeded',
  /** From a port or inside a datagram from a tunnel: an IPv4, IPv6 or ARP frame whose
   * headers are cut or say more than arrived (an IP total length beyond the frame, a zero
   * or short IP header, a truncated TCP, UDP or ICMP header; flow.ts has the list). Dropped
   * before port security and security groups look at it. */
  'malformed',
  /** A unicast frame whose destination is where it came from (its port, or for a frame
   * from a tunnel, any remote host: split horizon). */
  'hairpin',
  /** A source MAC that the controller placed at another port or host: a spoofed frame. The
   * pinned entry stays where it is. */
  'src-mac-pinned',
  /** Port security (port-security.ts): a source MAC that is not the port's. */
  'spoofed-mac',
  /** Port security: an IPv4 or IPv6 source that is not the port's. */
  'spoofed-ip',
  /** Port security: ARP whose sender fields are not the port's MAC and address. */
  'spoofed-arp',
  /** Port security: a neighbour advertisement for an address not the port's, or link-layer
   * options naming another MAC. */
  'spoofed-nd',
  /** Port security: a VM answering as a DHCP or DHCPv6 server. */
  'dhcp-server',
  /** Port security: a VM sending IPv6 router advertisements. */
  'router-advertisement',
  /** Port security: an EtherType other than IPv4, IPv6 and ARP that the port's
   * `allowedEtherTypes` do not list (an 802.3 frame with a length field is one too). */
  'ethertype-not-allowed',
  /** Security groups (firewall.ts): no rule of the port's groups allows the connection this
   * packet would open (or, for TCP, it is not a SYN). Counted on the port it was for. */
  'sg-refused',
  /** Security groups: a tracked connection that the port's rules, changed since, no longer
   * allow; it is forgotten at this packet. */
  'sg-revoked',
  /** Security groups: the port's connection table is full; tracked connections carry on. */
  'conntrack-full',
  /** Security groups: a multicast listener report or done (MLD, RFC 3810 §5), sent or
   * received. They are for multicast routers, which an overlay has none of (it floods
   * multicast to every port of the network); every IPv6 VM sends a few as it boots and
   * joins groups. Expected, not a refusal. */
  'listener-report',
  /** A DHCP message the agent could not answer: malformed, not from the port's own MAC,
   * relayed, or meant for another server (the port's DHCP counters say which). */
  'dhcp-refused',
  /** Sent to the gateway's MAC, and no route leads to its destination (or it is not IP). */
  'no-route',
  /** Sent to be routed or translated with an IPv4 header that does not add up: a bad header
   * checksum, or a total length beyond the frame (RFC 1812 §5.2.2: a router must check). */
  'bad-ip-header',
  /** Routed with a TTL of 1 or less (an ICMP time-exceeded comes with ICMP errors, next). */
  'ttl-exceeded',
  /** Routed towards an address no port on the next network has. */
  'no-neighbor',
  /** Not translated by a router's NAT: a fragment or a protocol other than TCP, UDP and ICMP
   * echo (source NAT; floating addresses take all), or an ICMP error a VM sends out. */
  'nat-unsupported',
  /** At a router's external address and matching no connection or port forward; or a TCP
   * segment other than a SYN opening a connection. */
  'nat-no-mapping',
  /** A new connection refused: the router's NAT table (or its ports for that remote) full. */
  'nat-table-full',
  /** The next hop on the external network has no known MAC yet: it was asked for (ARP). */
  'nat-arp-pending',
  /** The output (a TAP queue or the underlay socket) was full. */
  'tx-busy',
  /** The output refused the frame for another reason (see the agent's log), or no underlay
   * socket carries the network's encapsulation. */
  'tx-error',
  /** A datagram too short for the encapsulation header (with its options) and an inner
   * Ethernet header. */
  'truncated',
  /** A datagram longer than the receive buffer (the kernel cut it). */
  'datagram-oversize',
  /** VXLAN without the I flag (RFC 7348 §5). */
  'vxlan-bad-flags',
  /** A Geneve version other than 0 (RFC 8926 §3.4: MUST drop). */
  'geneve-bad-version',
  /** A Geneve control message (the O bit): for the endpoint, never forwarded as a frame
   * (RFC 8926 §3.4); Weft has no control messages yet, so it is dropped. */
  'geneve-oam',
  /** A Geneve protocol type other than Ethernet. */
  'geneve-bad-protocol',
  /** Geneve with a critical option; Weft understands none (RFC 8926 §3.5.1: MUST drop). */
  'geneve-critical-option',
  /** The VNI names no network on this host. */
  'unknown-vni',
  /** The VNI names a network of the other encapsulation: VXLAN arrives on the VXLAN socket
   * (4789) only, Geneve on the Geneve socket (6081) only. */
  'wrong-encapsulation',
  /** The sender is not a remote host of the network (for an encrypted network: the host
   * whose session opened the datagram does not share that network). */
  'unknown-vtep',
  /** A plain VXLAN or Geneve datagram for an encrypted network: only sealed datagrams from
   * an authenticated peer reach it (the forged-source attack plain overlays are open to). */
  'not-encrypted',
  /** To an encrypted network's remote host with no session yet: a handshake is under way
   * (the frame is not queued; the VM's stack retries, as it would after ARP). */
  'tunnel-no-session',
  /** A tunnel datagram that is too short or of no known type. */
  'tunnel-malformed',
  /** Sealed for a session this host does not have (never made, or expired and forgotten). */
  'tunnel-unknown-session',
  /** Sealed, and authentication failed: not sealed by the peer, or altered on the way. */
  'tunnel-auth-failed',
  /** A counter seen already, or older than the replay window. */
  'tunnel-replay',
  /** Sealed with keys past their lifetime. */
  'tunnel-expired',
  /** A handshake refused: an unknown or revoked host's key, a bad MAC, a replayed
   * initiation, or one that does not decrypt. Never answered. */
  'tunnel-handshake-refused',
  /** A handshake over the budget for its source address (or, under load, without a
   * cookie: it is answered with one instead). */
  'tunnel-rate-limited',
  /** The backend failed a read (the agent logs the error). */
  'rx-error',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

/**
 * What a drop reason means, in one line, for people: `weft stats --explain`, the web
 * console's tooltips and the README's table all read it from here. `expected`: what healthy
 * VMs do (a VM booting, joining a multicast group), counted apart from the problems.
 * Typed by DropReason, so a new reason without its line is a compile error.
 */
export interface DropExplanation {
  readonly text: string;
  readonly expected?: true;
}

export const DROP_EXPLANATIONS: { readonly [R in DropReason]: DropExplanation } = {
  'malformed': { text: 'a frame whose IP or transport header is cut short, or whose IP length is more than arrived; also a TCP fragment overlapping the header (RFC 1858)' },
  'ethertype-not-allowed': { text: 'port security: an EtherType other than IPv4, IPv6 and ARP that the port\'s allowedEtherTypes do not list' },
  'runt': { text: 'a frame from a port shorter than an Ethernet header' },
  'oversize': { text: 'a frame that filled the whole receive slot (it may have been cut)' },
  'offload-refused': { text: 'a TAP frame whose offload request (TCP segmentation, checksum) cannot be carried out' },
  'invalid-src-mac': { text: 'a source MAC no station can have: multicast, broadcast or all zeros' },
  'vlan-not-allowed': { text: 'a VLAN tag where none belongs: on an access port, a VLAN the trunk lacks, a second tag, any tag from a tunnel' },
  'mtu-exceeded': { text: 'an IP packet larger than the network\'s MTU (set the VM\'s MTU to the network\'s)' },
  'hairpin': { text: 'a unicast frame for where it came from (its own port; from a tunnel, any remote host)' },
  'src-mac-pinned': { text: 'a source MAC the controller placed at another port or host: spoofed' },
  'spoofed-mac': { text: 'port security: a source MAC that is not the port\'s' },
  'spoofed-ip': { text: 'port security: an IPv4 or IPv6 source address that is not the port\'s' },
  'spoofed-arp': { text: 'port security: ARP whose sender MAC or address is not the port\'s' },
  'spoofed-nd': { text: 'port security: a neighbour advertisement for another\'s address, or naming another MAC' },
  'dhcp-server': { text: 'port security: a VM answering as a DHCP or DHCPv6 server' },
  'router-advertisement': { text: 'port security: a VM sending IPv6 router advertisements' },
  'sg-refused': { text: 'security groups: no rule of the port\'s groups allows the connection this packet opens' },
  'sg-revoked': { text: 'security groups: a tracked connection that the port\'s changed rules no longer allow' },
  'conntrack-full': { text: 'security groups: the port\'s connection table is full; new connections are refused' },
  'listener-report': { text: 'a VM\'s multicast listener report (MLD), for routers an overlay has none of: sent at boot and on joining a group', expected: true },
  'dhcp-refused': { text: 'a DHCP message the agent could not answer (malformed, another MAC, relayed, for another server)' },
  'no-route': { text: 'sent to the gateway, and no route leads to its destination (or it is not IP)' },
  'bad-ip-header': { text: 'sent to be routed with a broken IPv4 header (checksum, or a length beyond the frame)' },
  'ttl-exceeded': { text: 'routed with a TTL of 1 or less (answered with ICMP time exceeded)' },
  'no-neighbor': { text: 'routed towards an address that no port on the next network has' },
  'nat-unsupported': { text: 'NAT: a fragment, a protocol other than TCP, UDP and ICMP echo, or an ICMP error from a VM' },
  'nat-no-mapping': { text: 'NAT: at the external address, matching no connection or port forward' },
  'nat-table-full': { text: 'NAT: the router\'s table (or its ports towards that remote) is full' },
  'nat-arp-pending': { text: 'NAT: a first packet out while the external next hop\'s MAC is asked for (the VM retries)', expected: true },
  'tx-busy': { text: 'the output (a TAP queue or the underlay socket) was full' },
  'tx-error': { text: 'the output refused the frame (see the agent\'s log), or no socket carries the encapsulation' },
  'truncated': { text: 'a datagram too short for its encapsulation header and an inner Ethernet header' },
  'datagram-oversize': { text: 'a datagram longer than the receive buffer (the kernel cut it)' },
  'vxlan-bad-flags': { text: 'VXLAN without the I flag (RFC 7348)' },
  'geneve-bad-version': { text: 'a Geneve version other than 0 (RFC 8926)' },
  'geneve-oam': { text: 'a Geneve control message (O bit); Weft has none, so it is dropped' },
  'geneve-bad-protocol': { text: 'Geneve carrying something other than Ethernet' },
  'geneve-critical-option': { text: 'Geneve with a critical option, which Weft does not understand (RFC 8926: must drop)' },
  'unknown-vni': { text: 'the VNI names no network on this host' },
  'wrong-encapsulation': { text: 'the VNI names a network of the other encapsulation (VXLAN on 4789, Geneve on 6081 only)' },
  'unknown-vtep': { text: 'from an address that is not a remote host of the network' },
  'not-encrypted': { text: 'a plain datagram for an encrypted network: forged, or a misconfigured host' },
  'tunnel-no-session': { text: 'to an encrypted tunnel with no session yet: a handshake is under way (the VM retries)', expected: true },
  'tunnel-malformed': { text: 'a tunnel datagram too short or of no known type' },
  'tunnel-unknown-session': { text: 'sealed for a session this host does not have (never made, or expired)' },
  'tunnel-auth-failed': { text: 'sealed, and authentication failed: not from the peer, or altered on the way' },
  'tunnel-replay': { text: 'a tunnel counter seen already, or older than the replay window' },
  'tunnel-expired': { text: 'sealed with keys past their lifetime' },
  'tunnel-handshake-refused': { text: 'a handshake refused: unknown or revoked key, bad MAC, replayed, or undecryptable' },
  'tunnel-rate-limited': { text: 'a handshake over its source\'s budget (or, under load, without a cookie)' },
  'rx-error': { text: 'the backend failed a read (see the agent\'s log)' },
};

/** Whether `reason` is what healthy VMs do (counted apart from the problems). */
export function isExpectedDrop(reason: string): boolean {
  return (DROP_EXPLANATIONS as Record<string, DropExplanation | undefined>)[reason]?.expected === true;
}

/** Index of each reason in a counter array. */
export const Drop = Object.fromEntries(DROP_REASONS.map((r, i) => [r, i])) as { readonly [R in DropReason]: number };

const RX_FRAMES = 0;
const RX_BYTES = 1;
const TX_FRAMES = 2;
const TX_BYTES = 3;
const DROPS = 4;

/** Told of every drop while a traced probe is handled (trace.ts); null otherwise. */
let dropWatch: ((reason: number) => void) | null = null;

export function setDropWatch(watch: ((reason: number) => void) | null): void {
  dropWatch = watch;
}

/** One set of counters: a port's, a tunnel's or the underlay's. Increments allocate nothing. */
export class Counters {
  readonly values = new Float64Array(DROPS + DROP_REASONS.length);

  rx(bytes: number): void {
    this.values[RX_FRAMES]++;
    this.values[RX_BYTES] += bytes;
  }

  tx(bytes: number): void {
    this.values[TX_FRAMES]++;
    this.values[TX_BYTES] += bytes;
  }

  /** `reason` is an index from `Drop`. */
  drop(reason: number): void {
    this.values[DROPS + reason]++;
    if (dropWatch !== null) dropWatch(reason);
  }

  drops(reason: DropReason): number {
    return this.values[DROPS + Drop[reason]];
  }

  snapshot(): CounterSnapshot {
    const drops: Partial<Record<DropReason, number>> = {};
    DROP_REASONS.forEach((r, i) => {
      if (this.values[DROPS + i] > 0) drops[r] = this.values[DROPS + i];
    });
    return {
      rx: { frames: this.values[RX_FRAMES], bytes: this.values[RX_BYTES] },
      tx: { frames: this.values[TX_FRAMES], bytes: this.values[TX_BYTES] },
      drops,
    };
  }
}

export interface CounterSnapshot {
  rx: { frames: number; bytes: number };
  tx: { frames: number; bytes: number };
  /** Only the reasons that happened. */
  drops: Partial<Record<DropReason, number>>;
}
