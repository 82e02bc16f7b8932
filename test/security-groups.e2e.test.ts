/**
 * Security groups, end to end, with real kernel stacks: the default group lets its members
 * reach each other and keeps everyone else out; a group with a rule opens one port to a
 * prefix; replies to what a VM opened come back without a rule; a rule added or removed
 * through the API takes effect on the other host at once: a running flow the new rules no
 * longer allow stops at its next packet, one they still allow carries on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labApi, readLabState } from '../src/lab/lab.js';
import { e2eSkipReason } from './support/env.js';
import { withLab, type Lab } from './support/lab.js';

const skip = e2eSkipReason('ping', 'busybox', 'ss');

async function listening(lab: Lab, vm: string, port: number): Promise<void> {
  for (let i = 0; i < 50 && !(await lab.exec(vm, 'ss', '-ltn')).stdout.includes(`:${port} `); i++) await new Promise((r) => setTimeout(r, 100));
}

test('security groups: members in, strangers out, a port opened by a rule, replies stateful, changes live', { skip, timeout: 120_000 }, async () => {
  await withLab({
    name: 'e2esg',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }],
    securityGroups: [
      { name: 'web', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 }, remote: { cidr: '10.10.0.0/24' } }] },
      // Out to anywhere, nothing in: a client only.
      { name: 'client', rules: [{ direction: 'egress' }] },
    ],
    vms: [
      { name: 'a', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'b', host: 'h2', network: 'blue', ip: '10.10.0.2/24', securityGroups: ['default', 'web'] },
      { name: 'c', host: 'h1', network: 'blue', ip: '10.10.0.3/24', securityGroups: ['client'] },
    ],
  }, async (lab) => {
    const api = labApi(readLabState(lab.name)!.plan);
    const drops = async (host: string, port: string) => ((await lab.stats(host)).ports.find((p) => p.name === port)!.drops as Record<string, number>);
    // Members of default reach each other, across hosts.
    await lab.run('a', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
    // c is no member: its pings to b are refused at b's host, counted there; its own
    // connections out are fine, and their replies come back.
    assert.notEqual((await lab.exec('c', 'ping', '-c', '2', '-i', '0.2', '-W', '1', '10.10.0.2')).code, 0);
    assert.ok((await drops('h2', 'b'))['sg-refused'] >= 2);
    // But the web rule opens port 80 of b to the subnet, c included; replies pass.
    await lab.run('b', 'sh', '-c', 'mkdir -p /tmp/www && echo hello from b > /tmp/www/index.html');
    void lab.exec('b', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/tmp/www');
    await listening(lab, 'b', 80);
    assert.match(await lab.run('c', 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', 'http://10.10.0.2/'), /hello from b/);
    // Nothing comes in to c: a (a member of default, which c is not in) cannot ping it.
    assert.notEqual((await lab.exec('a', 'ping', '-c', '1', '-W', '1', '10.10.0.3')).code, 0);
    assert.ok((await drops('h1', 'c'))['sg-refused'] >= 1);
    const c = (await lab.stats('h1')).ports.find((p) => p.name === 'c')!;
    assert.ok(c.conntrack !== null && c.conntrack.entries >= 1, `c tracks its connections: ${JSON.stringify(c.conntrack)}`);

    // Live: allow pings into c; a running ping from a starts to get answers.
    const added = await api.call('POST', '/v1/security-groups/client/rules', { direction: 'ingress', protocol: 'icmp', remote: { cidr: '10.10.0.0/24' } }) as { rules: Array<{ id: string }> };
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) ok = (await lab.exec('a', 'ping', '-c', '1', '-W', '1', '10.10.0.3')).code === 0;
    assert.ok(ok, 'the new rule let the ping in');
    // A long ping runs; the rule goes; the ping stops at its next packet (counted as
    // revoked), while a's other connection, to b, carries on.
    const running = lab.exec('a', 'ping', '-c', '30', '-i', '0.1', '-W', '1', '10.10.0.3');
    await new Promise((r) => setTimeout(r, 1000));
    await api.call('DELETE', `/v1/security-groups/client/rules/${added.rules[1].id}`);
    const result = await running;
    const received = Number(/(\d+) received/.exec(result.stdout)?.[1] ?? 0);
    assert.ok(received >= 5 && received < 28, `the ping was answered until the rule went, then not: ${received} of 30`);
    assert.ok((await drops('h1', 'c'))['sg-revoked'] >= 1 || (await drops('h1', 'c'))['sg-refused'] >= 1);
    await lab.run('a', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');
  });
});
