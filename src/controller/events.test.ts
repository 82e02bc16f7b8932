import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENTS_KEPT, EventLog } from './events.js';

test('events of one commit beyond what the log keeps: the last EVENTS_KEPT are there, numbered as if all had been', () => {
  const log = new EventLog();
  log.add('controller.started', 'the controller started at revision 0');
  const many = EVENTS_KEPT + 1500;
  log.addAll(Array.from({ length: many }, (_, i) => ['port.created', `port p${i} created on h1`, 'h1'] as [string, string, string]));
  const kept = log.since(0);
  assert.equal(kept.length, EVENTS_KEPT);
  assert.deepEqual([kept[0].id, kept[0].message], [many + 1 - EVENTS_KEPT + 1, `port p${many - EVENTS_KEPT} created on h1`]);
  assert.deepEqual([kept.at(-1)!.id, kept.at(-1)!.message, kept.at(-1)!.host], [many + 1, `port p${many - 1} created on h1`, 'h1']);
  log.add('agent.connected', 'the agent of h1 connected', 'h1');
  assert.deepEqual(log.since(many + 1).map((e) => [e.id, e.kind]), [[many + 2, 'agent.connected']]);
});
