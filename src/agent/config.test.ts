import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, hostStateFrom } from './config.js';

const good = {
  host: 'h1',
  underlay: { address: '10.99.0.1' },
  networks: [{ name: 'blue', vni: 100, remotes: ['10.99.0.2', { address: '10.99.0.3', port: 5000 }] }],
  ports: [
    { name: 'vm1', network: 'blue', backend: { type: 'tap', device: 'tap-vm1' } },
    { name: 'vm2', trunk: { vlans: { 10: 'blue' } }, backend: { type: 'memory' } },
  ],
};

function problems(doc: unknown): string[] {
  try {
    hostStateFrom(doc, 'h1.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

test('a good config fills in defaults', () => {
  const s = hostStateFrom(good, 'h1.yaml');
  assert.deepEqual(s.underlay, { address: '10.99.0.1', port: 4789, genevePort: 6081, tunnelPort: 4793, mtu: 1500 });
  assert.equal(s.networks[0].encapsulation, 'vxlan');
  assert.deepEqual(s.networks[0].remotes, [{ address: '10.99.0.2', port: 4789 }, { address: '10.99.0.3', port: 5000 }]);
  assert.deepEqual(s.ports[1], { name: 'vm2', mode: 'trunk', vlans: { 10: 'blue' }, nativeNetwork: undefined, backend: { type: 'memory' } });
});

test('each problem names the file, the field and why', () => {
  assert.deepEqual(problems({ ...good, networks: [{ name: 'blue', vni: 0 }] }), ['h1.yaml: networks[0].vni: Too small: expected number to be >=1']);
  assert.match(problems({ ...good, underlay: { address: '10.99.0.300' } })[0], /^h1\.yaml: underlay\.address: "10\.99\.0\.300" is not an IPv4 address/);
  assert.match(problems({ ...good, extra: 1 })[0], /^h1\.yaml: \(top level\): Unrecognized key: "extra"/);
  assert.match(problems({ ...good, ports: [{ name: 'vm1', network: 'green', backend: { type: 'memory' } }] })[0],
    /^h1\.yaml: ports\[0\]\.network: no network named green \(networks: blue\)$/);
  assert.match(problems({ ...good, ports: [{ name: 'vm1', backend: { type: 'memory' } }] })[0], /give either network .* or trunk .*, not neither/);
  assert.match(problems({ ...good, ports: [{ name: 'x', network: 'blue', backend: { type: 'tap', device: 'a-very-long-interface-name' } }] })[0],
    /ports\[0\]\.backend\.device: an interface name of 1 to 15 characters/);
});

test('cross-field problems: duplicate VNI, duplicate names, own address as a remote', () => {
  const p = problems({
    host: 'h1',
    underlay: { address: '10.99.0.1' },
    networks: [{ name: 'blue', vni: 100, remotes: ['10.99.0.1'] }, { name: 'blue', vni: 100 }],
  });
  assert.deepEqual(p, [
    "h1.yaml: networks[0].remotes[0]: 10.99.0.1 is this host's own underlay address",
    'h1.yaml: networks[1].name: network blue is defined twice',
    'h1.yaml: networks[1].vni: VNI 100 is used by network blue already',
  ]);
});
