import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, poisoned, WireError } from './bytes.js';
import { Ipv4Packet } from './ipv4.js';
import { TcpFlag, TcpRepr, TcpSegment } from './tcp.js';
import { tcpSyn } from './testdata/captured.js';

test('a captured SYN with options parses, verifies and re-emits exactly', () => {
  const bytes = hex(tcpSyn);
  const ip = Ipv4Packet.checked(bytes, 14) as Ipv4Packet;
  const s = TcpSegment.checked(bytes, ip.payloadOffset, ip.payloadLen) as TcpSegment;
  assert.equal(s.dstPort, 5001);
  assert.equal(s.flags, TcpFlag.Syn);
  assert.equal(s.headerLen, 40);
  assert.equal(s.window, 64240);
  assert.ok(s.verifyChecksumV4(ip.src, ip.dst));
  const repr = TcpRepr.parse(s);
  assert.equal(repr.options.length, 20);
  const out = poisoned(repr.bufferLen());
  repr.emitV4(out, 0, ip.src, ip.dst);
  assert.deepEqual(out, bytes.subarray(ip.payloadOffset));
});

test('a data offset below five words is malformed, beyond the bytes truncated', () => {
  const b = new Uint8Array(20);
  b[12] = 0x40;
  assert.equal((TcpSegment.checked(b) as WireError).code, 'malformed');
  b[12] = 0xf0;
  assert.equal((TcpSegment.checked(b) as WireError).code, 'truncated');
});
