/**
 * Bad input is normal input: malformed, wrong-VNI, wrong-encapsulation and unknown-sender
 * datagrams on the underlay, and garbage frames from a VM, are dropped with a counted
 * reason, the agent keeps running, and good traffic still flows. Inside and outside apply
 * the same rules (source MAC, VLAN tags, MTU), and a MAC the controller gave a port cannot
 * be taken from it by one spoofed frame, from the underlay or from another VM.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { parseMac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { processAlive, readLabState } from '../src/lab/lab.js';
import type { AgentStats } from '../src/cli/stats.js';
import { VXLAN_PORT, GENEVE_PORT } from '../src/wire/udp.js';
import { test, e2eSkipReason } from './support/env.js';
import { twoNetworks, withLab } from './support/lab.js';
import { waitFor } from './support/wait.js';

const skip = e2eSkipReason('ping', 'python3');
const SENDER = fileURLToPath(new URL('./support/send-datagrams.js', import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('bad datagrams and garbage frames are dropped by reason; the agent and good traffic carry on', { skip, timeout: 60_000 }, async () => {
  await withLab(twoNetworks('e2ebad', ['h3']), async (lab) => {
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');
    const inner = compose.ethernet(0xffffffffffff, parseMac('02:00:00:00:00:99'), EtherType.Arp,
      compose.arpRequest(parseMac('02:00:00:00:00:99'), 0x0a0a0063, 0x0a0a0001));
    const noIFlag = compose.vxlan(100, inner);
    noIFlag[0] = 0;
    const critical = compose.geneve(200, inner);
    critical[1] = 0x40;
    const oam = compose.geneve(200, inner);
    oam[1] = 0x80;
    // Geneve whose first byte reads as VXLAN's I flag, sent where VXLAN is expected.
    const geneveAsVxlan = compose.geneve(100, inner);
    geneveAsVxlan[0] = 0x08;
    const taggedInner = compose.ethernet(0xffffffffffff, parseMac('02:00:00:00:00:98'), EtherType.Arp, new Uint8Array(28), [{ vid: 7 }]);
    const zeroSource = compose.ethernet(0xffffffffffff, 0, EtherType.Arp, new Uint8Array(28));
    const overMtu = compose.ethernet(parseMac('02:57:46:00:00:01'), parseMac('02:00:00:00:00:97'), EtherType.Ipv4, new Uint8Array(1500)); // blue's MTU is 1450
    // From h2, a remote host of both networks: malformed datagrams.
    await lab.run('h2', process.execPath, SENDER, '10.99.0.1', String(VXLAN_PORT),
      hex(new Uint8Array(5)), // truncated
      hex(compose.vxlan(999, inner)), // no such VNI
      hex(noIFlag), // VXLAN without the I flag
      hex(compose.vxlan(200, inner)), // red's VNI on the VXLAN port
      hex(compose.vxlan(100, taggedInner)), // a tagged frame for an access port
      hex(compose.vxlan(100, zeroSource)), // the all-zero source MAC
      hex(compose.vxlan(100, overMtu))); // larger than blue's MTU
    await lab.run('h2', process.execPath, SENDER, '10.99.0.1', String(GENEVE_PORT),
      hex(critical), // Geneve with critical options
      hex(oam), // a Geneve control message
      hex(geneveAsVxlan)); // blue (a VXLAN network) on the Geneve port
    // From h3, which shares no network with h1: a well-formed datagram from a stranger.
    await lab.run('h3', process.execPath, SENDER, '10.99.0.1', String(VXLAN_PORT), hex(compose.vxlan(100, inner)));
    // From inside blue1: a group source MAC, the zero MAC, a VLAN-tagged frame on an access
    // port, and a frame over the MTU (the VM's interface allows it; the network does not).
    const groupSource = compose.ethernet(0xffffffffffff, 0x010000000001, EtherType.Arp, new Uint8Array(28));
    const tagged = compose.ethernet(0xffffffffffff, parseMac('02:57:46:00:00:01'), EtherType.Arp, new Uint8Array(28), [{ vid: 7 }]);
    const bigFromVm = compose.ethernet(parseMac('02:57:46:00:00:03'), parseMac('02:57:46:00:00:01'), EtherType.Ipv4, new Uint8Array(1460));
    await lab.run('blue1', 'ip', 'link', 'set', 'eth0', 'mtu', '1500');
    await lab.run('blue1', 'python3', '-c',
      'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(("eth0",0))\nfor h in sys.argv[1:]: s.send(bytes.fromhex(h))',
      hex(groupSource), hex(zeroSource), hex(tagged), hex(bigFromVm));

    // Fifteen bad frames were sent (eleven datagrams, four frames from blue1): wait until h1
    // has counted as many drops where it counts them, then check each counter.
    const where = (s: AgentStats) => ({
      vxlan: s.underlays.find((u) => u.encapsulation === 'vxlan')!,
      geneve: s.underlays.find((u) => u.encapsulation === 'geneve')!,
      h2vx: s.tunnels.find((t) => t.remote === `10.99.0.2:${VXLAN_PORT}`)!,
      h2gn: s.tunnels.find((t) => t.remote === `10.99.0.2:${GENEVE_PORT}`)!,
      blue1: s.ports.find((p) => p.name === 'blue1')!,
    });
    const counted = (s: AgentStats) => Object.values(where(s)).reduce((n, o) => n + Object.values(o.drops as Record<string, number>).reduce((a, b) => a + b, 0), 0);
    const s = await waitFor(async () => { const s = await lab.stats('h1'); return counted(s) >= 15 && s; }, { what: 'h1 to count the 15 bad frames' });
    const { vxlan, geneve, h2vx, h2gn, blue1 } = where(s);
    assert.deepEqual(vxlan.drops, { truncated: 1, 'unknown-vni': 1, 'unknown-vtep': 1, 'wrong-encapsulation': 1 });
    assert.deepEqual(geneve.drops, { 'wrong-encapsulation': 1 });
    assert.deepEqual(h2vx.drops, { 'vxlan-bad-flags': 1, 'vlan-not-allowed': 1, 'invalid-src-mac': 1, 'mtu-exceeded': 1 });
    assert.deepEqual(h2gn.drops, { 'geneve-critical-option': 1, 'geneve-oam': 1 });
    assert.deepEqual(blue1.drops, { 'invalid-src-mac': 2, 'vlan-not-allowed': 1, 'mtu-exceeded': 1 });

    assert.ok(processAlive(readLabState(lab.name)!.agents.h1), 'the agent is still running');
    await lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
    await lab.run('red1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.20.0.2');
  });
});

test('a spoofed datagram or a VM using its neighbour\'s MAC cannot take a VM\'s MAC away', { skip, timeout: 90_000 }, async () => {
  // Plain VXLAN: an encrypted network refuses every unsealed datagram before its frame is
  // looked at (test/secure-overlay.e2e.test.ts), so the spoofed one must be plain to get in.
  const plain = { ...twoNetworks('e2espoof'), controller: true, networks: [{ name: 'blue', vni: 100, encryption: 'none' }, { name: 'red', vni: 200, encapsulation: 'geneve' }] };
  await withLab(plain, async (lab) => {
    await lab.run('blue1', 'ping', '-c', '1', '-W', '2', '10.10.0.2');
    const blue1Mac = parseMac('02:57:46:00:00:01');
    const blue2Mac = parseMac('02:57:46:00:00:03');
    // From h2's own address: a VXLAN frame claiming to come from blue1 (a VM on h1).
    const claim = compose.ethernet(0xffffffffffff, blue1Mac, EtherType.Arp, compose.arpRequest(blue1Mac, 0x0a0a0001, 0x0a0a0063));
    await lab.run('h2', process.execPath, SENDER, '10.99.0.1', String(VXLAN_PORT), hex(compose.vxlan(100, claim)), hex(compose.vxlan(100, claim)));
    // From blue1 itself: frames with blue2's MAC (a VM on the other host) as the source.
    const stolen = compose.ethernet(0xffffffffffff, blue2Mac, EtherType.Arp, compose.arpRequest(blue2Mac, 0x0a0a0002, 0x0a0a0063));
    await lab.run('blue1', 'python3', '-c',
      'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(("eth0",0))\nfor h in sys.argv[1:]: s.send(bytes.fromhex(h))',
      hex(stolen), hex(stolen), hex(stolen));

    const pinned = (s: AgentStats) => s.tunnels.find((t) => t.remote === `10.99.0.2:${VXLAN_PORT}`)!.drops['src-mac-pinned'] ?? 0;
    const spoofed = (s: AgentStats) => s.ports.find((p) => p.name === 'blue1')!.drops['spoofed-mac'] ?? 0;
    const h1 = await waitFor(async () => { const s = await lab.stats('h1'); return pinned(s) + spoofed(s) >= 5 && s; }, { what: 'h1 to count the 2 spoofed datagrams and 3 stolen-MAC frames' });
    assert.equal(h1.tunnels.find((t) => t.remote === `10.99.0.2:${VXLAN_PORT}`)!.drops['src-mac-pinned'], 2);
    // Port security stops these before the MAC is looked up.
    assert.equal(h1.ports.find((p) => p.name === 'blue1')!.drops['spoofed-mac'], 3);
    // Both VMs are still where the controller put them: traffic to each still arrives at once.
    await lab.run('blue2', 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.10.0.1');
    await lab.run('blue1', 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.10.0.2');
    assert.equal((await lab.stats('h1')).ports.find((p) => p.name === 'blue1')!.drops.hairpin, undefined, 'no frame for blue1 was turned back');
  });
});
