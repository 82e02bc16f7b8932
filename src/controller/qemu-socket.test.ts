/**
 * A port's QEMU socket is where agents keep QEMU sockets, or the API refuses it: the agent
 * runs as root and would bind (replacing what is there) wherever a request says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceOptions } from './service.js';
import { inProcessApi } from '../../test/support/api.js';

async function setup(opts: ServiceOptions = {}) {
  const { call } = inProcessApi(opts);
  assert.equal((await call('POST', '/v1/hosts', { name: 'h1', address: '192.0.2.1', tunnelKey: Buffer.alloc(32, 1).toString('base64') })).status, 201);
  assert.equal((await call('POST', '/v1/networks', { name: 'blue' })).status, 201);
  return call;
}

const qemu = (socket: string) => ({ type: 'qemu', socket });

test('a QEMU socket outside /run/weft/qemu/ is a 422 naming the field and the directory', async () => {
  const call = await setup();
  for (const socket of ['/tmp/x/precious.txt', '/etc/shadow', '/run/weft/qemu-other/x.sock', '/run/weft/qemu/../agent-h1.sock', '/run/weft/qemu/./x.sock', '/run/weft/qemu//x.sock']) {
    const r = await call('POST', '/v1/ports', { name: 'evil', network: 'blue', host: 'h1', backend: qemu(socket) });
    // The field's own rule ("no . or ..") may answer first, as a 400 naming it.
    assert.ok(r.status === 422 || r.status === 400, `${socket}: ${r.status}`);
    assert.ok(r.body.errors.some((e: { field: string }) => e.field === 'backend.socket'), JSON.stringify(r.body));
    if (r.status === 422) {
      assert.match(r.body.detail, /^backend\.socket: .* is not (inside \/run\/weft\/qemu\/, the directory agents keep QEMU sockets in|a plain absolute path)/);
      assert.deepEqual(r.body.errors, [{ field: 'backend.socket', message: 'not inside /run/weft/qemu/' }]);
    }
  }
  assert.equal((await call('GET', '/v1/ports')).body.length, 0, 'no port was made');
  const ok = await call('POST', '/v1/ports', { name: 'vm1', network: 'blue', host: 'h1', backend: qemu('/run/weft/qemu/vm1.sock') });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  // Changing the backend is checked too.
  const moved = await call('PATCH', '/v1/ports/vm1', { backend: qemu('/tmp/x/precious.txt') });
  assert.equal(moved.status, 422);
  assert.equal(moved.body.detail, 'backend.socket: "/tmp/x/precious.txt" is not inside /run/weft/qemu/, the directory agents keep QEMU sockets in (weft controller --qemu-socket-dir)');
  assert.equal((await call('GET', '/v1/ports/vm1')).body.backend.socket, '/run/weft/qemu/vm1.sock');
});

test('the controller told another directory (a lab\'s) accepts sockets there, and below it', async () => {
  const call = await setup({ qemuSocketDir: '/run/weft/lab/x/qemu/' });
  assert.equal((await call('POST', '/v1/ports', { name: 'q1', network: 'blue', host: 'h1', backend: qemu('/run/weft/lab/x/qemu/h1/q1.net.sock') })).status, 201);
  const r = await call('POST', '/v1/ports', { name: 'q2', network: 'blue', host: 'h1', backend: qemu('/run/weft/qemu/q2.sock') });
  assert.equal(r.status, 422);
  assert.match(r.body.detail, /is not inside \/run\/weft\/lab\/x\/qemu\//);
});

test('weft apply is held to the same rule', async () => {
  const call = await setup();
  const r = await call('POST', '/v1/apply', { resources: { ports: [{ name: 'evil', network: 'blue', host: 'h1', backend: qemu('/etc/shadow') }] } });
  assert.ok(r.status >= 400, JSON.stringify(r.body));
  assert.match(JSON.stringify(r.body), /not inside \/run\/weft\/qemu\//);
  assert.equal((await call('GET', '/v1/ports')).body.length, 0);
});
