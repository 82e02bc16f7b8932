/**
 * Forwarding state pushed, not flooded: with a controller, a VM's first ARP request and
 * IPv6 neighbor solicitation for a port on another host are answered by its own host's
 * agent. tcpdump on the other VM, an observer independent of Weft, sees neither.
 */
import assert from 'node:assert/strict';
import { test, e2eSkipReason } from './support/env.js';
import { observe, withLab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'tcpdump');

test('ARP and neighbor solicitations for known ports are answered locally, never flooded', { skip, timeout: 60_000 }, async () => {
  await withLab({
    name: 'e2esupp',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }],
    vms: [
      { name: 'blue1', host: 'h1', network: 'blue', ip: '10.10.0.1/24', ip6: 'fd00:10::1/64' },
      { name: 'blue2', host: 'h2', network: 'blue', ip: '10.10.0.2/24', ip6: 'fd00:10::2/64' },
    ],
  }, async (lab) => {
    const seen = await observe(lab.name, ['blue2'], 'arp or (icmp6 and ip6[40] == 135)', async () => {
      await lab.run('blue1', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
      await lab.run('blue1', 'ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', 'fd00:10::2');
    });
    // Frames blue1 sent: its requests must not arrive. (Duplicate address detection, from
    // the unspecified address, is not suppressed: it must reach every VM.)
    const fromBlue1 = seen.blue2.filter((l) => / 02:57:46:00:00:01 > /.test(l));
    const solicitations = fromBlue1.filter((l) => /Request who-has|neighbor solicitation/.test(l) && !/ :: > /.test(l));
    assert.deepEqual(solicitations, [], `blue2 saw blue1's solicitations:\n${seen.blue2.join('\n')}`);
    const blue = (await lab.stats('h1')).networks.find((n) => n.name === 'blue')!;
    assert.ok(blue.arpAnswered >= 1, `ARP answered: ${blue.arpAnswered}`);
    assert.ok(blue.ndAnswered >= 1, `ND answered: ${blue.ndAnswered}`);
  });
});
