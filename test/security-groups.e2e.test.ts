/**
 * Security groups, end to end, with real kernel stacks: the default group lets its members
 * reach each other and keeps everyone else out; a group with a rule opens one port to a
 * prefix, another a port to the members of a group (on the same host and across hosts);
 * replies to what a VM opened come back without a rule; a full table refuses the next
 * connection and counts it; a rule added or removed through the API takes effect on the
 * other host at once: a running ping the new rules no longer allow stops at its next
 * packet, a running TCP stream they still allow carries on.
 */
import assert from 'node:assert/strict';
import { labApi, readLabState } from '../src/lab/lab.js';
import { test, e2eSkipReason } from './support/env.js';
import { withLab } from './support/lab.js';
import { pingReplies, waitFor, waitForListening } from './support/wait.js';

const skip = e2eSkipReason('ping', 'busybox', 'ss', 'python3', 'iperf3');

/** A TCP server in a VM that answers every connection with "ok" (until the lab goes). */
const SERVER = 'import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(("0.0.0.0",22))\ns.listen(8)\nwhile True:\n  c,_=s.accept(); c.sendall(b"ok"); c.close()';
/** Connects to HOST:22 and prints what it says; fails after 2 s. */
const CLIENT = 'import socket,sys\nc=socket.create_connection((sys.argv[1],22),timeout=2)\nprint(c.recv(10).decode())';

test('security groups: members in, strangers out, a port opened by a rule, replies stateful, changes live', { skip, timeout: 120_000 }, async () => {
  await withLab({
    name: 'e2esg',
    controller: true,
    hosts: [{ name: 'h1' }, { name: 'h2' }],
    networks: [{ name: 'blue', vni: 100 }],
    securityGroups: [
      { name: 'web', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 80, max: 80 }, remote: { cidr: '10.10.0.0/24' } }, { direction: 'ingress', protocol: 'tcp', ports: { min: 5201, max: 5201 } }] },
      // Out to anywhere, nothing in: a client only.
      { name: 'client', rules: [{ direction: 'egress' }] },
      { name: 'admins', rules: [{ direction: 'egress' }] },
      // SSH only from the admins' ports.
      { name: 'ssh', rules: [{ direction: 'ingress', protocol: 'tcp', ports: { min: 22, max: 22 }, remote: { group: 'admins' } }] },
    ],
    vms: [
      { name: 'a', host: 'h1', network: 'blue', ip: '10.10.0.1/24' },
      { name: 'b', host: 'h2', network: 'blue', ip: '10.10.0.2/24', securityGroups: ['default', 'web', 'ssh'] },
      { name: 'c', host: 'h1', network: 'blue', ip: '10.10.0.3/24', securityGroups: ['client'] },
      { name: 'admin1', host: 'h1', network: 'blue', ip: '10.10.0.4/24', securityGroups: ['admins'] },
      { name: 'admin2', host: 'h2', network: 'blue', ip: '10.10.0.5/24', securityGroups: ['admins'] },
      // A client whose table holds two connections.
      { name: 'd', host: 'h1', network: 'blue', ip: '10.10.0.6/24', securityGroups: ['client'], connectionLimit: 2 },
      { name: 'e', host: 'h2', network: 'blue', ip: '10.10.0.7/24', securityGroups: ['client'] },
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
    await waitForListening(lab, 'b', 80);
    assert.match(await lab.run('c', 'timeout', '5', 'busybox', 'wget', '-q', '-O', '-', 'http://10.10.0.2/'), /hello from b/);
    // Nothing comes in to c: a (a member of default, which c is not in) cannot ping it.
    assert.notEqual((await lab.exec('a', 'ping', '-c', '1', '-W', '1', '10.10.0.3')).code, 0);
    assert.ok((await drops('h1', 'c'))['sg-refused'] >= 1);
    const c = (await lab.stats('h1')).ports.find((p) => p.name === 'c')!;
    assert.ok(c.conntrack !== null && c.conntrack.entries >= 1, `c tracks its connections: ${JSON.stringify(c.conntrack)}`);

    // SSH on b from the admins group only: from admin2 on b's own host, from admin1 across
    // hosts; not from e (on b's host) nor c (across), in no group that lets them in.
    void lab.exec('b', 'python3', '-c', SERVER);
    await waitForListening(lab, 'b', 22);
    assert.equal((await lab.run('admin2', 'python3', '-c', CLIENT, '10.10.0.2')).trim(), 'ok');
    assert.equal((await lab.run('admin1', 'python3', '-c', CLIENT, '10.10.0.2')).trim(), 'ok');
    for (const vm of ['e', 'c']) assert.notEqual((await lab.exec(vm, 'python3', '-c', CLIENT, '10.10.0.2')).code, 0, `${vm} reached b's port 22`);

    // The table limit: d's third flow is refused and counted; its first two carry on.
    await lab.run('d', 'python3', '-c', 'import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in (9001,9002,9003,9001): s.sendto(b"x",("10.10.0.2",p))');
    const d = (await lab.stats('h1')).ports.find((p) => p.name === 'd')!;
    assert.deepEqual([d.conntrack?.entries, d.conntrack?.limit, d.conntrack?.refused, d.drops['conntrack-full']], [2, 2, 1, 1]);

    // Live: allow pings into c; a running ping from a starts to get answers.
    const added = await api.call('POST', '/v1/security-groups/client/rules', { direction: 'ingress', protocol: 'icmp', remote: { cidr: '10.10.0.0/24' } }) as { rules: Array<{ id: string }> };
    await waitFor(async () => (await lab.exec('a', 'ping', '-c', '1', '-W', '1', '10.10.0.3')).code === 0, { what: 'the new rule to let a\'s ping into c' });
    // A long ping runs; the rule goes; the ping stops at its next packet (counted as
    // revoked), while a's other connection, to b, carries on.
    const revokedAtC = (await drops('h1', 'c'))['sg-revoked'] ?? 0;
    const running = lab.start('a', 'ping', '-c', '30', '-i', '0.1', '-W', '1', '10.10.0.3');
    await waitFor(() => pingReplies(running.output()) >= 5, { what: 'five answers to a\'s running ping' });
    await api.call('DELETE', `/v1/security-groups/client/rules/${added.rules[1].id}`);
    const result = await running.done;
    const received = Number(/(\d+) received/.exec(result.stdout)?.[1] ?? 0);
    // A window, not an exact count: the rule goes while pings are in flight, and how many
    // more are answered before the agent has the new rules depends on the machine. At least
    // the five waited for; well short of all 30, or the revoked rule still let them in.
    assert.ok(received >= 5 && received < 28, `the ping was answered until the rule went, then not: ${received} of 30`);
    // The ping's one connection was revoked (once; its later packets are refused as new).
    assert.equal((await drops('h1', 'c'))['sg-revoked'] ?? 0, revokedAtC + 1, 'the running ping\'s connection was revoked');
    await lab.run('a', 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.10.0.2');

    // Under a running TCP stream and a running ping from c to b: the rule letting pings in
    // goes; the ping stops, the stream (still allowed) carries on to its end.
    const icmp = await api.call('POST', '/v1/security-groups/web/rules', { direction: 'ingress', protocol: 'icmp', remote: { cidr: '10.10.0.0/24' } }) as { rules: Array<{ id: string }> };
    await lab.run('b', 'iperf3', '-s', '-D', '-1');
    await waitForListening(lab, 'b', 5201);
    const revokedAtB = (await drops('h2', 'b'))['sg-revoked'] ?? 0;
    const stream = lab.exec('c', 'iperf3', '-c', '10.10.0.2', '-t', '5', '-J');
    const pings = lab.start('c', 'ping', '-c', '40', '-i', '0.1', '-W', '1', '10.10.0.2');
    // The stream is running (iperf3's control and data connections are up on b) and the
    // ping is answered, before the rule goes.
    await waitFor(async () => (await lab.run('b', 'ss', '-Htn', 'state', 'established', 'sport = :5201')).trim().split('\n').filter(Boolean).length >= 2,
      { what: 'the iperf3 stream from c to be established on b' });
    await waitFor(() => pingReplies(pings.output()) >= 5, { what: 'five answers to c\'s running ping' });
    await api.call('DELETE', `/v1/security-groups/web/rules/${icmp.rules[2].id}`);
    const [s, p] = await Promise.all([stream, pings.done]);
    const answered = Number(/(\d+) received/.exec(p.stdout)?.[1] ?? 0);
    // A window, for the same reason as above.
    assert.ok(answered >= 5 && answered < 38, `the ping stopped when its rule went: ${answered} of 40 answered`);
    assert.equal((await drops('h2', 'b'))['sg-revoked'] ?? 0, revokedAtB + 1, 'the running ping\'s connection was revoked, the stream\'s not');
    assert.equal(s.code, 0, s.stdout + s.stderr);
    const intervals = (JSON.parse(s.stdout) as { intervals: Array<{ sum: { bytes: number } }> }).intervals;
    assert.ok(intervals.length >= 5 && intervals.every((i) => i.sum.bytes > 0), 'the stream ran every second to its end');
  });
});
