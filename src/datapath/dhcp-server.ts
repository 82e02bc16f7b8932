/**
 * The DHCPv4 server each agent runs for its own ports (RFC 2131): a port's lease comes from
 * the controller (its address, subnet, gateway, DNS servers), so answering is a lookup, not
 * an allocation, and every host answers for its VMs without a central server.
 *
 * `answerDhcp` is one stage of `Datapath.inside`: given a frame a port sent to UDP port 67,
 * it writes the reply frame (Ethernet, IPv4, UDP, DHCP; checksums done) into the caller's
 * buffer, or says why there is none. Clock-free; the only allocation is in building the
 * reply's option strings, which is control traffic, not the forwarding path.
 */
import { type Ipv4Number, type MacNumber, readMac, readU16, writeMac, writeU16, writeU32 } from '../wire/bytes.js';
import { finish, pseudoHeaderV4, sumBytes } from '../wire/checksum.js';
import { CLIENT_PORT, DhcpPacket, DhcpRepr, FLAG_BROADCAST, HTYPE_ETHERNET, MessageType, Op, Option, SERVER_PORT } from '../wire/dhcp.js';
import { EtherType } from '../wire/ethernet.js';
import { IpProtocol } from '../wire/ipv4.js';

/** What one port is offered. */
export interface DhcpLease {
  /** The port's MAC: only its own requests are answered. */
  mac: MacNumber;
  ip: Ipv4Number;
  prefixLength: number;
  /** The subnet's gateway: the router option, and the server identifier. */
  gateway: Ipv4Number;
  dns: Ipv4Number[];
  leaseSeconds: number;
  hostName?: string;
  domainName?: string;
  search?: string[];
}

/** How a DHCP message from a port ended (each is counted per port). */
export type DhcpOutcome =
  | 'offer' | 'ack' | 'nak' | 'inform'
  /** RELEASE and DECLINE: nothing to answer (the address stays the port's). */
  | 'released' | 'declined'
  /** Not a DHCP message we can read (truncated, bad cookie, options overrun). */
  | 'malformed'
  /** chaddr is not the port's MAC, or the hardware type is not Ethernet. */
  | 'wrong-client'
  /** A REQUEST for another server, a relayed message, or a type a server does not take. */
  | 'not-for-us';

export const DHCP_OUTCOMES: readonly DhcpOutcome[] = ['offer', 'ack', 'nak', 'inform', 'released', 'declined', 'malformed', 'wrong-client', 'not-for-us'];

const ETH = 14;
const IP = 20;
const UDP = 8;
const BROADCAST_MAC = 0xffff_ffff_ffff;

export interface DhcpAnswer {
  outcome: DhcpOutcome;
  /** The reply frame's length at `out`, or 0 when there is none. */
  length: number;
}

/**
 * Answers the DHCP message in the frame mem[off, off+len) (an IPv4/UDP frame to port 67,
 * as the caller checked) from `lease`, sourced from `serverMac`. `mtu` is the network's:
 * option 26, so a guest never sends what the overlay cannot carry.
 */
export function answerDhcp(mem: Uint8Array, off: number, len: number, lease: DhcpLease, serverMac: MacNumber, mtu: number, out: Uint8Array, outOff: number): DhcpAnswer {
  const ihl = (mem[off + ETH] & 0x0f) * 4;
  const udp = off + ETH + ihl;
  const p = DhcpPacket.checked(mem, udp + UDP, Math.min(len - (udp + UDP - off), readU16(mem, udp + 4) - UDP));
  if (!(p instanceof DhcpPacket) || p.op !== Op.Request) return { outcome: 'malformed', length: 0 };
  const type = p.messageType();
  if (type < 0) return { outcome: 'malformed', length: 0 };
  if (p.htype !== HTYPE_ETHERNET || p.hlen !== 6 || p.chaddr !== lease.mac || readMac(mem, off + 6) !== lease.mac) return { outcome: 'wrong-client', length: 0 };
  if (p.giaddr !== 0) return { outcome: 'not-for-us', length: 0 };

  let reply: number;
  let yiaddr = 0;
  let withLease = true;
  let nakWhy = '';
  switch (type) {
    case MessageType.Discover:
      reply = MessageType.Offer;
      yiaddr = lease.ip;
      break;
    case MessageType.Request: {
      // RFC 2131 §4.3.2: SELECTING names a server; INIT-REBOOT asks for an address;
      // RENEWING and REBINDING put it in ciaddr.
      const server = p.addressOption(Option.ServerId);
      if (server >= 0 && server !== lease.gateway) return { outcome: 'not-for-us', length: 0 };
      const requested = p.addressOption(Option.RequestedIp);
      const asked = requested >= 0 ? requested : p.ciaddr;
      if (asked === lease.ip) {
        reply = MessageType.Ack;
        yiaddr = lease.ip;
      } else {
        reply = MessageType.Nak;
        withLease = false;
        nakWhy = 'that address is not this port\'s';
      }
      break;
    }
    case MessageType.Inform:
      // §4.3.5: configuration only; the client has its address, no lease is given.
      reply = MessageType.Ack;
      withLease = false;
      break;
    case MessageType.Release:
      return { outcome: 'released', length: 0 };
    case MessageType.Decline:
      return { outcome: 'declined', length: 0 };
    default:
      return { outcome: 'not-for-us', length: 0 };
  }

  const mask = lease.prefixLength === 0 ? 0 : (0xffff_ffff << (32 - lease.prefixLength)) >>> 0;
  const repr = new DhcpRepr(Op.Reply, p.xid, p.flags & FLAG_BROADCAST, reply === MessageType.Nak ? 0 : p.ciaddr, yiaddr, 0, 0, lease.mac,
    reply === MessageType.Nak
      ? { messageType: reply, serverId: lease.gateway, message: nakWhy }
      : {
        messageType: reply,
        serverId: lease.gateway,
        ...(withLease ? { leaseSeconds: lease.leaseSeconds } : {}),
        subnetMask: mask,
        routers: [lease.gateway],
        dnsServers: lease.dns,
        hostName: lease.hostName,
        domainName: lease.domainName,
        search: lease.search,
        mtu,
      });

  // Where the reply goes (§4.1): a NAK and a client that asked for broadcast get broadcast;
  // a client with an address (renewing, INFORM) gets it there; else yiaddr, to its MAC.
  let dstIp: number;
  let dstMac: number;
  if (reply === MessageType.Nak || (p.flags & FLAG_BROADCAST) !== 0) {
    dstIp = 0xffff_ffff;
    dstMac = BROADCAST_MAC;
  } else if (p.ciaddr !== 0) {
    dstIp = p.ciaddr;
    dstMac = lease.mac;
  } else {
    dstIp = yiaddr;
    dstMac = lease.mac;
  }
  const dhcpLen = repr.emit(out, outOff + ETH + IP + UDP);
  const frameLen = ETH + IP + UDP + dhcpLen;
  writeMac(out, outOff, dstMac);
  writeMac(out, outOff + 6, serverMac);
  writeU16(out, outOff + 12, EtherType.Ipv4);
  const ip = outOff + ETH;
  out[ip] = 0x45;
  out[ip + 1] = 0;
  writeU16(out, ip + 2, IP + UDP + dhcpLen);
  writeU32(out, ip + 4, 0); // id, flags, fragment offset
  out[ip + 8] = 64;
  out[ip + 9] = IpProtocol.Udp;
  writeU16(out, ip + 10, 0);
  writeU32(out, ip + 12, lease.gateway);
  writeU32(out, ip + 16, dstIp);
  writeU16(out, ip + 10, finish(sumBytes(out, ip, IP, 0)));
  const u = ip + IP;
  writeU16(out, u, SERVER_PORT);
  writeU16(out, u + 2, CLIENT_PORT);
  writeU16(out, u + 4, UDP + dhcpLen);
  writeU16(out, u + 6, 0);
  const sum = finish(sumBytes(out, u, UDP + dhcpLen, pseudoHeaderV4(lease.gateway, dstIp, IpProtocol.Udp, UDP + dhcpLen)));
  writeU16(out, u + 6, sum === 0 ? 0xffff : sum);
  const outcome: DhcpOutcome = type === MessageType.Inform ? 'inform' : reply === MessageType.Offer ? 'offer' : reply === MessageType.Ack ? 'ack' : 'nak';
  return { outcome, length: frameLen };
}

/** Whether the frame at mem[off, off+len) is IPv4/UDP to the DHCP server port. */
export function isDhcpToServer(mem: Uint8Array, off: number, len: number): boolean {
  if (len < ETH + IP + UDP || readU16(mem, off + 12) !== EtherType.Ipv4) return false;
  const ihl = (mem[off + ETH] & 0x0f) * 4;
  if ((mem[off + ETH] >>> 4) !== 4 || ihl < IP || mem[off + ETH + 9] !== IpProtocol.Udp || len < ETH + ihl + UDP) return false;
  // Fragments are not DHCP messages a server reassembles.
  if ((readU16(mem, off + ETH + 6) & 0x3fff) !== 0) return false;
  return readU16(mem, off + ETH + ihl + 2) === SERVER_PORT;
}
