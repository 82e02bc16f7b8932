/**
 * Whole frames from their parts, built with the codecs' reprs. These allocate: they are for
 * tests, tools and the control plane (answers such as ARP replies), not the per-packet path.
 */
import { type Ipv4Number, type MacNumber } from './bytes.js';
import { ArpOperation, ArpRepr } from './arp.js';
import { EthernetRepr, EtherType, HEADER_LEN as ETH_LEN } from './ethernet.js';
import { Icmpv4Repr } from './icmpv4.js';
import { Icmpv6Repr } from './icmpv6.js';
import { IpProtocol, Ipv4Repr, HEADER_LEN as IPV4_LEN } from './ipv4.js';
import { Ipv6Repr, HEADER_LEN as IPV6_LEN } from './ipv6.js';
import { TcpRepr } from './tcp.js';
import { UdpRepr, HEADER_LEN as UDP_LEN } from './udp.js';
import { VlanRepr, HEADER_LEN as VLAN_LEN } from './vlan.js';
import { GeneveRepr, type GeneveOption } from './geneve.js';
import { VxlanRepr } from './vxlan.js';

export interface VlanSpec {
  vid: number;
  /** 0x8100 (default) for a C-tag, 0x88a8 for a QinQ S-tag. */
  tpid?: number;
  pcp?: number;
}

/** An Ethernet frame around `payload`, with the VLAN tags listed outermost first. */
export function ethernet(dst: MacNumber, src: MacNumber, ethertype: number, payload: Uint8Array, vlans: VlanSpec[] = []): Uint8Array {
  const out = new Uint8Array(ETH_LEN + vlans.length * VLAN_LEN + payload.length);
  new EthernetRepr(dst, src, vlans.length > 0 ? (vlans[0].tpid ?? EtherType.Vlan) : ethertype).emit(out, 0);
  let o = ETH_LEN;
  vlans.forEach((tag, i) => {
    const next = i + 1 < vlans.length ? (vlans[i + 1].tpid ?? EtherType.Vlan) : ethertype;
    new VlanRepr(tag.vid, next, tag.pcp ?? 0).emit(out, o);
    o += VLAN_LEN;
  });
  out.set(payload, o);
  return out;
}

export function ipv4(src: Ipv4Number, dst: Ipv4Number, protocol: number, payload: Uint8Array, ttl = 64): Uint8Array {
  const out = new Uint8Array(IPV4_LEN + payload.length);
  new Ipv4Repr(src, dst, protocol, payload.length, ttl).emit(out, 0);
  out.set(payload, IPV4_LEN);
  return out;
}

export function ipv6(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array, hopLimit = 64): Uint8Array {
  const out = new Uint8Array(IPV6_LEN + payload.length);
  new Ipv6Repr(src, dst, nextHeader, payload.length, hopLimit).emit(out, 0);
  out.set(payload, IPV6_LEN);
  return out;
}

/** A UDP datagram around `payload`, its checksum filled by `checksum`. */
function udp(srcPort: number, dstPort: number, payload: Uint8Array, checksum: (repr: UdpRepr, datagram: Uint8Array) => void): Uint8Array {
  const repr = new UdpRepr(srcPort, dstPort, payload.length);
  const datagram = new Uint8Array(repr.bufferLen());
  datagram.set(payload, UDP_LEN);
  repr.emit(datagram, 0);
  checksum(repr, datagram);
  return datagram;
}

/** A UDP datagram with its checksum, in IPv4. */
export function udpV4(src: Ipv4Number, dst: Ipv4Number, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  return ipv4(src, dst, IpProtocol.Udp, udp(srcPort, dstPort, payload, (r, d) => r.fillChecksumV4(d, 0, src, dst)));
}

/** A UDP datagram with its checksum, in IPv6. */
export function udpV6(src: Uint8Array, dst: Uint8Array, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  return ipv6(src, dst, IpProtocol.Udp, udp(srcPort, dstPort, payload, (r, d) => r.fillChecksumV6(d, 0, src, dst)));
}

export function tcpV4(src: Ipv4Number, dst: Ipv4Number, tcp: TcpRepr): Uint8Array {
  const seg = new Uint8Array(tcp.bufferLen());
  tcp.emitV4(seg, 0, src, dst);
  return ipv4(src, dst, IpProtocol.Tcp, seg);
}

export function tcpV6(src: Uint8Array, dst: Uint8Array, tcp: TcpRepr): Uint8Array {
  const seg = new Uint8Array(tcp.bufferLen());
  tcp.emitV6(seg, 0, src, dst);
  return ipv6(src, dst, IpProtocol.Tcp, seg);
}

export function icmpEchoV4(src: Ipv4Number, dst: Ipv4Number, ident: number, seq: number, data: Uint8Array): Uint8Array {
  const repr = Icmpv4Repr.echoRequest(ident, seq, data);
  const icmp = new Uint8Array(repr.bufferLen());
  repr.emit(icmp, 0);
  return ipv4(src, dst, IpProtocol.Icmp, icmp);
}

export function icmpv6(src: Uint8Array, dst: Uint8Array, repr: Icmpv6Repr): Uint8Array {
  const icmp = new Uint8Array(repr.bufferLen());
  repr.emit(icmp, 0, src, dst);
  return ipv6(src, dst, IpProtocol.Icmpv6, icmp, 255);
}

export function arp(operation: number, senderMac: MacNumber, senderIp: Ipv4Number, targetMac: MacNumber, targetIp: Ipv4Number): Uint8Array {
  const repr = new ArpRepr(operation, senderMac, senderIp, targetMac, targetIp);
  const out = new Uint8Array(repr.bufferLen());
  repr.emit(out, 0);
  return out;
}

export function arpRequest(senderMac: MacNumber, senderIp: Ipv4Number, targetIp: Ipv4Number): Uint8Array {
  return arp(ArpOperation.Request, senderMac, senderIp, 0, targetIp);
}

export function vxlan(vni: number, inner: Uint8Array): Uint8Array {
  const repr = new VxlanRepr(vni);
  const out = new Uint8Array(repr.bufferLen() + inner.length);
  repr.emit(out, 0);
  out.set(inner, repr.bufferLen());
  return out;
}

export function geneve(vni: number, inner: Uint8Array, options: GeneveOption[] = []): Uint8Array {
  const repr = new GeneveRepr(vni, EtherType.TransparentEthernetBridging, options);
  const out = new Uint8Array(repr.bufferLen() + inner.length);
  repr.emit(out, 0);
  out.set(inner, repr.bufferLen());
  return out;
}
