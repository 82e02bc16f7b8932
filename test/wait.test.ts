/** The end-to-end tests' waits (test/support/wait.ts): bounded, and a wait that runs out
 * says what it waited for and what it saw last. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from './support/env.js';
import { pingReplies, waitFor, waitForCapture } from './support/wait.js';

test('waitFor returns the condition\'s value once it holds; a throw counts as not yet', async () => {
  let calls = 0;
  const v = await waitFor(() => {
    calls++;
    if (calls < 3) throw new Error('not up yet');
    return calls >= 4 && { calls };
  }, { what: 'the fourth call', everyMs: 1 });
  assert.deepEqual(v, { calls: 4 });
});

test('waitFor that runs out fails naming what it waited for and the last thing it saw', async () => {
  await assert.rejects(waitFor(() => 0, { what: 'a counter to reach 5', timeoutMs: 30, everyMs: 5 }),
    /timed out after 30 ms waiting for a counter to reach 5 \(last saw: 0\)/);
  await assert.rejects(waitFor(() => { throw new Error('connection refused'); }, { what: 'the server', timeoutMs: 30, everyMs: 5 }),
    /waiting for the server \(last saw: connection refused\)/);
});

test('waitForCapture fails, with what the capture said, when it ends before it is capturing', async () => {
  const child = spawn(process.execPath, ['-e', 'process.stderr.write("tcpdump: eth9: No such device exists\\n"); process.exit(1)'], { stdio: ['ignore', 'ignore', 'pipe'] });
  await assert.rejects(waitForCapture(child, 'tcpdump on h1'), /tcpdump on h1 exited \(1\) before it was capturing: tcpdump: eth9: No such device/);
  const ready = spawn(process.execPath, ['-e', 'process.stderr.write("listening on eth0, link-type EN10MB\\n"); setTimeout(() => {}, 5000)'], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    await waitForCapture(ready);
  } finally {
    ready.kill();
  }
});

test('pingReplies counts the answers a running ping printed', () => {
  assert.equal(pingReplies('PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.1 ms\n64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=0.1 ms\n'), 2);
});
