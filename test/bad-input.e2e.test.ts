/**
 * Bad input is normal input: malformed, wrong-VNI and unknown-sender datagrams on the
 * underlay, and garbage frames from a VM, are dropped with a counted reason, the agent keeps
 * running, and good traffic still flows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { parseMac } from '../src/wire/bytes.js';
import * as compose from '../src/wire/compose.js';
import { EtherType } from '../src/wire/ethernet.js';
import { processAlive, readLabState } from '../src/lab/lab.js';
import { e2eSkipReason } from './support/env.js';
import { twoNetworks, withLab } from './support/lab.js';

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
    // From h2, a remote host of both networks: malformed datagrams.
    await lab.run('h2', process.execPath, SENDER, '10.99.0.1', '4789',
      hex(new Uint8Array(5)), // truncated
      hex(compose.vxlan(999, inner)), // no such VNI
      hex(noIFlag), // VXLAN without the I flag
      hex(critical)); // Geneve with critical options
    // From h3, which shares no network with h1: a well-formed datagram from a stranger.
    await lab.run('h3', process.execPath, SENDER, '10.99.0.1', '4789', hex(compose.vxlan(100, inner)));
    // From inside blue1: a group source MAC, and a VLAN-tagged frame on an access port.
    const groupSource = compose.ethernet(0xffffffffffff, 0x010000000001, EtherType.Arp, new Uint8Array(28));
    const tagged = compose.ethernet(0xffffffffffff, parseMac('02:57:46:00:00:01'), EtherType.Arp, new Uint8Array(28), [{ vid: 7 }]);
    await lab.run('blue1', 'python3', '-c',
      'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(("eth0",0))\nfor h in sys.argv[1:]: s.send(bytes.fromhex(h))',
      hex(groupSource), hex(tagged));
    await new Promise((r) => setTimeout(r, 300));

    const s = await lab.stats('h1');
    assert.equal(s.underlay!.drops.truncated, 1);
    assert.equal(s.underlay!.drops['unknown-vni'], 1);
    assert.equal(s.underlay!.drops['unknown-vtep'], 1);
    const h2 = s.tunnels.find((t) => t.remote.startsWith('10.99.0.2:'))!;
    assert.equal(h2.drops['vxlan-bad-flags'], 1);
    assert.equal(h2.drops['geneve-critical-option'], 1);
    const blue1 = s.ports.find((p) => p.name === 'blue1')!;
    assert.equal(blue1.drops['invalid-src-mac'], 1);
    assert.equal(blue1.drops['vlan-not-allowed'], 1);

    assert.ok(processAlive(readLabState(lab.name)!.agents.h1), 'the agent is still running');
    await lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
    await lab.run('red1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.20.0.2');
  });
});
