import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../agent/config.js';
import { plan } from './apply.js';

const current = {
  networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan' as const }, { name: 'old', vni: 7, encapsulation: 'vxlan' as const }],
  subnets: [{ name: 'blue4', network: 'blue', cidr: '10.0.0.0/24', gateway: '10.0.0.1', allocation: { start: '10.0.0.2', end: '10.0.0.254' }, dns: [] }],
  ports: [
    { name: 'vm1', network: 'blue', host: 'h1', mac: '02:00:00:00:00:01', ips: ['10.0.0.2'], backend: { type: 'memory' as const } },
    { name: 'gone', network: 'old', host: 'h1', mac: '02:00:00:00:00:09', ips: [], backend: { type: 'memory' as const } },
  ],
};

test('the plan creates what is missing, changes what differs, deletes what the file leaves out', () => {
  const actions = plan(current, {
    networks: [{ name: 'blue', vni: 100, encapsulation: 'vxlan', mtu: 1400 }, { name: 'red', encapsulation: 'geneve' }],
    ports: [
      { name: 'vm1', network: 'blue', host: 'h2', ips: ['10.0.0.2'] },
      { name: 'vm2', network: 'red', host: 'h1' },
    ],
  }, 'net.yaml');
  assert.deepEqual(actions.map((a) => a.text), [
    '+ network red (vni allocated, geneve)',
    '+ port vm2 (red on h1)',
    '~ network blue: mtu auto -> 1400',
    '~ port vm1: host h1 -> h2',
    '- port gone',
    '- network old',
  ]);
  assert.deepEqual(actions.find((a) => a.name === 'vm1')!.body, { host: 'h2' });
});

test('kinds the file does not list are left alone; an unchanged world plans nothing', () => {
  assert.deepEqual(plan(current, { subnets: current.subnets.map(({ name, network, cidr, gateway, allocation, dns }) => ({ name, network, cidr, gateway, allocation, dns })) }, 'f.yaml'), []);
});

test('a change that cannot be made in place is refused before anything happens', () => {
  assert.throws(() => plan(current, { networks: [{ name: 'blue', vni: 101, encapsulation: 'vxlan' }, { name: 'old', encapsulation: 'geneve' }] }, 'net.yaml'),
    (err: Error) => err instanceof ConfigError && err.message === 'net.yaml: network blue: vni cannot change in place (100 -> 101); delete it first\nnet.yaml: network old: encapsulation cannot change in place ("vxlan" -> "geneve"); delete it first');
});
