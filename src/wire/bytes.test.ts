import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv4, formatIpv6, formatMac, parseIpv4, parseIpv6, parseMac, readMac, writeMac, WireError } from './bytes.js';

test('MAC addresses round-trip through text and bytes', () => {
  const mac = parseMac('02:42:ac:11:00:02');
  assert.equal(formatMac(mac), '02:42:ac:11:00:02');
  const buf = new Uint8Array(8);
  writeMac(buf, 1, mac);
  assert.deepEqual([...buf], [0, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0]);
  assert.equal(readMac(buf, 1), mac);
  assert.equal(formatMac(parseMac('FF-FF-FF-FF-FF-FF')), 'ff:ff:ff:ff:ff:ff');
  assert.throws(() => parseMac('02:42:ac:11:00'), WireError);
});

test('IPv4 addresses round-trip and bad text is refused', () => {
  assert.equal(parseIpv4('10.0.0.1'), 0x0a000001);
  assert.equal(formatIpv4(0xc0a80101), '192.168.1.1');
  for (const bad of ['10.0.0', '10.0.0.256', '1.2.3.4.5', 'a.b.c.d', '', '010.0.0.1', '10.0.0.01', '10.00.0.1', ' 10.0.0.1', '10.0.0.1 ']) assert.throws(() => parseIpv4(bad), WireError, bad);
});

test('IPv6 addresses parse every RFC 4291 form and format canonically (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    ['fd00::1', 'fd00::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:DB8::', '2001:db8::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ];
  for (const [text, canonical] of cases) assert.equal(formatIpv6(parseIpv6(text)), canonical, text);
  for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', 'fd00::g', '1:2:3:4:5:6:7', ':::']) {
    assert.throws(() => parseIpv6(bad), WireError, bad);
  }
});
