/**
 * Cut frames, end to end: IPv4 frames whose headers say more than they carry (a total length
 * beyond the frame, a zero-length IP header, a TCP or UDP header cut off) are dropped and
 * counted as `malformed` where they enter, from a VM's port and out of a tunnel, before port
 * security and security groups; a group allowing only tcp/80 lets a whole SYN to port 80 in
 * and nothing cut, nor a fragment without ports. A tag of EtherType 0x9100 and an EtherType
 * the port does not list are refused at the access port. tcpdump in the receiving VM (an
 * observer independent of Weft) sees only the whole SYNs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { parseIpv4, parseMac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { TcpRepr } from '../src/wire/tcp.js';
import { VXLAN_PORT } from '../src/wire/udp.js';
import type { DropReason } from '../src/datapath/counters.js';
import { e2eSkipReason } from './support/env.js';
import { observe, withLab } from './support/lab.js';
import { cutFrames, cutList } from './support/cut-frames.js';

const skip = e2eSkipReason('python3', 'tcpdump');
const SENDER = fileURLToPath(new URL('./support/send-datagrams.js', import.meta.url));
const RAW_SEND = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(("eth0",0))\nfor h in sys.argv[1:]: s.send(bytes.fromhex(h))';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// The lab gives VMs MACs in order: a, then b.
const A_MAC = parseMac('02:57:46:00:00:01');
const B_MAC = parseMac('02:57:46:00:00:02');
const A = parseIpv4('10.10.0.1');
const B = parseIpv4('10.10.0.2');
/** A station behind h1 that only the injected datagrams speak for. */
const STRANGER_MAC = parseMac('02:00:00:00:00:97');

/** A whole SYN from `srcMac`/A to B:80, the cut ones, and a later fragment (whole, but
 * without ports). */
function frames(srcMac: number) {
  const f = cutFrames({ dstMac: B_MAC, srcMac, src: A, dst: B });
  return { syn: f.syn, cut: cutList(f), fragment: f.fragment };
}

const delta = (after: Partial<Record<DropReason, number>>, before: Partial<Record<DropReason, number>>, reasons: DropReason[]) =>
  Object.fromEntries(reasons.map((r) => [r, (after[r] ?? 0) - (before[r] ?? 0)]));
const REASONS: DropReason[] = ['malformed', 'sg-refused', 'vlan-not-allowed', 'ethertype-not-allowed', 'spoofed-ip', 'spoofed-mac'];

test('cut frames are malformed at the port and out of the tunnel; tcp/80 only lets the whole SYN in; 0x9100 tags and unlisted EtherTypes are refused', { skip, timeout: 120_000 }, async () => {
  await withLab({
    name: 'e2ecut',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    // Plain VXLAN, so that h1's underlay address can inject datagrams as a remote host.
    networks: [{ name: 'blue', vni: 100, encryption: 'none' }],
    securityGroups: [
      { name: 'out', rules: [{ direction: 'egress' }] },
      { name: 'web', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 } }, { direction: 'egress' }] },
    ],
    vms: [
      { name: 'a', host: 'h1', network: 'blue', ip: '10.10.0.1/24', securityGroups: ['out'] },
      { name: 'b', host: 'h2', network: 'blue', ip: '10.10.0.2/24', securityGroups: ['web'] },
    ],
  }, async (lab) => {
    const fromA = frames(A_MAC);
    const injected = frames(STRANGER_MAC);
    const tagged9100 = compose.ethernet(B_MAC, A_MAC, EtherType.Ipv4, compose.tcpV4(A, B, new TcpRepr(40001, 80, 1, 0, 0x02, 1000)), [{ vid: 1, tpid: 0x9100 }]);
    const lldp = compose.ethernet(0x0180c200000e, A_MAC, 0x88cc, new Uint8Array(46));
    const h1Before = await lab.stats('h1');
    const h2Before = await lab.stats('h2');
    const seen = await observe(lab.name, ['b'], `ether src ${'02:00:00:00:00:97'} or ether proto 0x9100 or ether proto 0x88cc or (ether src 02:57:46:00:00:01 and ip and not icmp)`, async () => {
      // From VM a: the cut frames, a fragment, a 0x9100-tagged SYN, LLDP, and a whole SYN.
      await lab.run('a', 'python3', '-c', RAW_SEND, ...fromA.cut.map(hex), hex(fromA.fragment), hex(tagged9100), hex(lldp), hex(fromA.syn));
      // Into h2 from h1's underlay address (a remote host of blue): the same, inside VXLAN.
      await lab.run('h1', process.execPath, SENDER, '10.99.0.2', String(VXLAN_PORT), ...[...injected.cut, injected.fragment, injected.syn].map((f) => hex(compose.vxlan(100, f))));
    });
    const h1 = await lab.stats('h1');
    const h2 = await lab.stats('h2');
    const port = (s: typeof h1, name: string) => s.ports.find((p) => p.name === name)!.drops;
    const tunnel = (s: typeof h1) => s.tunnels.find((t) => t.remote === `10.99.0.1:${VXLAN_PORT}`)!.drops;
    // At a's port (h1): the cut frames before port security and groups; the tag; LLDP; and
    // the fragment: even a group letting everything out opens no TCP connection without a
    // SYN, and a fragment has no flags to show one.
    assert.deepEqual(delta(port(h1, 'a'), port(h1Before, 'a'), REASONS), { malformed: 4, 'sg-refused': 1, 'vlan-not-allowed': 1, 'ethertype-not-allowed': 1, 'spoofed-ip': 0, 'spoofed-mac': 0 });
    // Out of the tunnel (h2): the cut frames, counted on the tunnel from h1.
    assert.deepEqual(delta(tunnel(h2), h2Before.tunnels.find((t) => t.remote === `10.99.0.1:${VXLAN_PORT}`)!.drops, REASONS), { malformed: 4, 'sg-refused': 0, 'vlan-not-allowed': 0, 'ethertype-not-allowed': 0, 'spoofed-ip': 0, 'spoofed-mac': 0 });
    // At b's port: tcp/80 only, so the injected fragment (without ports) is refused.
    assert.equal((port(h2, 'b')['sg-refused'] ?? 0) - (port(h2Before, 'b')['sg-refused'] ?? 0), 1);
    // What b's kernel saw: the two whole SYNs to port 80, nothing cut, no fragment, no tag.
    const lines = seen.b;
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.ok(lines.every((l) => /> 10\.10\.0\.2\.80: Flags \[S\]/.test(l) && !l.includes('truncated')), lines.join('\n'));
  });
});
