/**
 * How a network is carried between hosts, and what that costs in MTU.
 *
 * The overlay MTU follows from the underlay's: outer IPv4 (20) + UDP (8) + the encapsulation
 * header + the inner Ethernet header (14) must fit the underlay MTU (RFC 7348 §4.3: VTEPs
 * MUST NOT fragment). Inner frames cross the underlay untagged: the VNI is the network.
 */
import { HEADER_LEN as ETHERNET_HEADER_LEN } from '../wire/ethernet.js';
import { HEADER_LEN as GENEVE_HEADER_LEN } from '../wire/geneve.js';
import { HEADER_LEN as IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { HEADER_LEN as UDP_HEADER_LEN } from '../wire/udp.js';
import { HEADER_LEN as VXLAN_HEADER_LEN } from '../wire/vxlan.js';

export type Encapsulation = 'vxlan' | 'geneve';
export const ENCAPSULATIONS: readonly Encapsulation[] = ['vxlan', 'geneve'];

/** Bytes in front of the inner frame inside the UDP payload (Weft sends Geneve without options). */
export function encapHeaderLen(encap: Encapsulation): number {
  return encap === 'vxlan' ? VXLAN_HEADER_LEN : GENEVE_HEADER_LEN;
}

/** What an encrypted tunnel adds around a VXLAN datagram it seals: its 16-byte header
 * (type, receiver index, counter) and the 16-byte authentication tag (src/tunnel). */
export const SEALED_OVERHEAD = 16 + 16;

/** The largest IP packet a VM can send across the overlay without it being dropped. */
export function overlayMtu(underlayMtu: number, encap: Encapsulation, encrypted = false): number {
  return underlayMtu - IPV4_HEADER_LEN - UDP_HEADER_LEN - encapHeaderLen(encap) - ETHERNET_HEADER_LEN - (encrypted ? SEALED_OVERHEAD : 0);
}
