import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6, hex, parseMac, poisoned, WireError } from './bytes.js';
import { Icmpv6Packet, Icmpv6Repr, Icmpv6Type, NdOption } from './icmpv6.js';
import { Ipv6Packet } from './ipv6.js';
import { icmpv6EchoRequest, icmpv6NeighborAdvertisement, icmpv6NeighborSolicitation } from './testdata/captured.js';

function split(vector: string) {
  const bytes = hex(vector);
  const ip = Ipv6Packet.checked(bytes, 14) as Ipv6Packet;
  const icmp = Icmpv6Packet.checked(bytes, ip.payloadOffset, ip.payloadLen) as Icmpv6Packet;
  return { bytes, ip, icmp };
}

test('a captured neighbor solicitation: target and source link-layer option', () => {
  const { ip, icmp } = split(icmpv6NeighborSolicitation);
  assert.equal(icmp.type, Icmpv6Type.NeighborSolicitation);
  assert.ok(icmp.verifyChecksum(ip.src, ip.dst));
  assert.equal(formatIpv6(icmp.ndTarget), 'fd00::2');
  assert.equal(icmp.ndLinkLayerOption(NdOption.SourceLinkLayerAddress), parseMac('02:00:00:00:00:0a'));
  assert.equal(icmp.ndLinkLayerOption(NdOption.TargetLinkLayerAddress), null);
});

test('the advertisement Weft would send equals the one Linux sent, byte for byte', () => {
  const { bytes, ip, icmp } = split(icmpv6NeighborAdvertisement);
  const repr = Icmpv6Repr.neighborAdvertisement(icmp.ndTarget, parseMac('02:00:00:00:00:0b'));
  const out = poisoned(repr.bufferLen());
  repr.emit(out, 0, ip.src, ip.dst);
  assert.deepEqual(out, bytes.subarray(ip.payloadOffset));
});

test('a captured echo request parses and re-emits exactly; corruption fails the checksum', () => {
  const { bytes, ip, icmp } = split(icmpv6EchoRequest);
  const repr = Icmpv6Repr.parse(icmp, ip.src, ip.dst) as Icmpv6Repr;
  assert.equal(repr.type, Icmpv6Type.EchoRequest);
  const out = poisoned(repr.bufferLen());
  repr.emit(out, 0, ip.src, ip.dst);
  assert.deepEqual(out, bytes.subarray(ip.payloadOffset));
  bytes[ip.payloadOffset + 10] ^= 1;
  assert.ok(Icmpv6Repr.parse(icmp, ip.src, ip.dst) instanceof WireError);
});

test('an NDP option list with a zero length ends the search instead of looping', () => {
  const { bytes, ip } = split(icmpv6NeighborSolicitation);
  bytes[ip.payloadOffset + 25] = 0; // option length 0
  const icmp = Icmpv6Packet.checked(bytes, ip.payloadOffset, ip.payloadLen) as Icmpv6Packet;
  assert.equal(icmp.ndLinkLayerOption(NdOption.SourceLinkLayerAddress), null);
  assert.equal((Icmpv6Packet.checked(bytes, ip.payloadOffset, 20) as WireError).code, 'truncated');
});
