import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_AUTH_SKEW_MS, type SignedRequest } from '../view/agent-auth.js';
import { SeenSignatures } from './seen-signatures.js';

const sig = (host: string, nonce: string, ms: number): SignedRequest => ({ host, ms, nonce: nonce.padEnd(22, 'A'), signature: Buffer.alloc(64) });

test('each host\'s nonce is taken once while its time is in the window, and forgotten after', () => {
  const seen = new SeenSignatures();
  const t = 1_800_000_000_000;
  assert.equal(seen.admit(sig('h1', 'a', t), t), 'fresh');
  assert.equal(seen.admit(sig('h1', 'a', t), t + 1000), 'replayed');
  assert.equal(seen.admit(sig('h2', 'a', t), t), 'fresh', 'another host\'s nonce is its own');
  // A signature made ahead of the controller's clock stays remembered for as long as it is valid.
  assert.equal(seen.admit(sig('h1', 'b', t + AGENT_AUTH_SKEW_MS), t), 'fresh');
  assert.equal(seen.admit(sig('h1', 'b', t + AGENT_AUTH_SKEW_MS), t + 2 * AGENT_AUTH_SKEW_MS), 'replayed');
  // Past the window (where the time check refuses it anyway), a nonce is forgotten.
  seen.admit(sig('h3', 'c', t + 3 * AGENT_AUTH_SKEW_MS), t + 3 * AGENT_AUTH_SKEW_MS);
  assert.equal(seen.size, 1, 'only h3\'s newest is kept');
});

test('a host that fills its set is refused until its oldest age out; other hosts are not', () => {
  const seen = new SeenSignatures(3);
  const t = 1_800_000_000_000;
  for (const n of ['a', 'b', 'c']) assert.equal(seen.admit(sig('h1', n, t), t), 'fresh');
  assert.equal(seen.admit(sig('h1', 'd', t), t), 'full');
  assert.equal(seen.admit(sig('h1', 'a', t), t), 'replayed', 'full or not, a replay is a replay');
  assert.equal(seen.admit(sig('h2', 'd', t), t), 'fresh');
  assert.equal(seen.admit(sig('h1', 'd', t + AGENT_AUTH_SKEW_MS + 1), t + AGENT_AUTH_SKEW_MS + 1), 'fresh', 'the window passed');
});
