/**
 * Text as hostile clients write it: escape sequences, newlines, C1 controls and bidi
 * overrides in every stored text field are refused with the field named; what an enrolled
 * agent reports in its own words (an error) is kept with them escaped, and a status naming
 * a port with them is ignored. No event holds a raw control character.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { EventLog } from './events.js';
import { ModelCache } from './model-cache.js';
import { MemoryStore } from './store/memory-store.js';
import { inProcessApi } from '../../test/support/api.js';
import { WatchHub } from './watch.js';
import { hostStateFrom } from '../agent/config.js';
import { printable } from '../config/fields.js';

/** One of each kind a terminal acts on: ESC (a CSI sequence), newline, CR, BEL, DEL, a C1
 * CSI, NEL, the line separator, and each bidi formatting character. */
const HOSTILE = ['\u001b[2J', '\n', '\r', '\u0007', '\u007f', '\u009b2J', '\u0085', '\u2028',
  '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c'];
const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

async function setup() {
  const { call, store } = inProcessApi();
  assert.equal((await call('POST', '/v1/hosts', { name: 'h1', address: '192.0.2.1' })).status, 201);
  assert.equal((await call('POST', '/v1/networks', { name: 'blue' })).status, 201);
  return { call, store };
}

test('every stored text field refuses control and bidi characters, naming the field', async () => {
  const { call } = await setup();
  for (const c of HOSTILE) {
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/v1/security-groups', { name: 'web', description: `web${c}servers` }, 'description'],
      ['POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', backend: { type: 'tap', device: `tap${c}` } }, 'backend.device'],
      ['POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', backend: { type: 'tap', device: 'tap1', netns: `ns${c}` } }, 'backend.netns'],
      ['POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', backend: { type: 'qemu', socket: `/run/vm1${c}.sock` } }, 'backend.socket'],
      ['POST', '/v1/hosts', { name: 'h2', address: '192.0.2.2', physicalNetworks: { physnet1: `eth${c}` } }, 'physicalNetworks.physnet1'],
      ['POST', '/v1/networks', { name: `red${c}` }, 'name'],
    ];
    for (const [method, path, body, field] of cases) {
      const r = await call(method, path, body);
      assert.equal(r.status, 400, `${JSON.stringify(c)} in ${field}: ${JSON.stringify(r.body)}`);
      assert.ok(r.body.errors.some((e: { field: string }) => e.field === field), `${JSON.stringify(c)}: ${JSON.stringify(r.body.errors)}`);
      assert.doesNotMatch(r.body.detail, RAW, 'the refusal does not echo the character raw');
    }
  }
  assert.match((await call('POST', '/v1/security-groups', { name: 'web', description: 'web\u202eservers' })).body.detail, /description: has a control or bidirectional-formatting character \(\\u202e at position 3\)/);
  assert.equal((await call('POST', '/v1/security-groups', { name: 'web', description: 'web servers, éè ok' })).status, 201);
  // An agent's own config file likewise.
  assert.throws(() => hostStateFrom({ host: 'h1', underlay: { address: '10.0.0.1' }, physicalNetworks: { physnet1: 'eth\u202e1' } }, 'h.yaml'), /physicalNetworks\.physnet1: no control/);
});

test('an agent\'s status: error text kept with its escapes shown, a port name with them ignored; events never hold a raw control character', async () => {
  const store = new MemoryStore();
  const model = await ModelCache.load(store);
  const events = new EventLog();
  const hub = new WatchHub(model, { admin: 'x' }, pino({ level: 'silent' }), events);
  try {
    const message = (text: unknown) => (hub as unknown as { message(host: string, text: string): void }).message('h1', JSON.stringify(text));
    message({ type: 'status', revision: 1, ports: { vm1: { attached: false, error: 'no such device\u001b[2J\n2026-01-01T00:00:00.000Z  host.revoked  h1  host h1 revoked' } } });
    message({ type: 'status', revision: 2, ports: { 'vm1\u001b[2J': { attached: true } } });
    message({ type: 'status', revision: 3, ports: { 'vm\u202e2': { attached: true } } });
    message({ type: 'apply-failed', revision: 4, error: 'bad\u009b2J\u202eview' });
    const got = events.since(0);
    assert.deepEqual(got.map((e) => e.kind), ['port.failed', 'view.failed']);
    assert.equal(got[0].message, 'port vm1 is not attached on h1: no such device\\x1b[2J\\n2026-01-01T00:00:00.000Z  host.revoked  h1  host h1 revoked');
    assert.equal(got[1].message, 'h1 cannot apply revision 4 (it keeps forwarding with the last view it applied): bad\\x9b2J\\u202eview');
    const status = hub.status('h1');
    assert.equal(status.appliedRevision, 1, 'the statuses naming such ports were ignored');
    assert.deepEqual(Object.keys(status.ports), ['vm1']);
    assert.doesNotMatch(JSON.stringify(status), /\\u001b/);
    // An event told by anyone else is kept escaped too.
    events.add('x\u001b', `y${HOSTILE.join('')}`, 'h\n1');
    for (const e of events.since(0)) assert.doesNotMatch(`${e.kind}${e.host ?? ''}${e.message}`, RAW);
  } finally {
    hub.close();
  }
});

test('printable writes each control and bidi character as an escape, and leaves other text alone', () => {
  assert.equal(printable('a\u001b[2Jb\nc\td\u0000e\u009bf\u202eg\u2066h'), 'a\\x1b[2Jb\\nc\\td\\x00e\\x9bf\\u202eg\\u2066h');
  assert.equal(printable('plain, ünïcode and 漢字'), 'plain, ünïcode and 漢字');
});
