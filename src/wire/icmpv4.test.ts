import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex, poisoned, WireError } from './bytes.js';
import { Icmpv4Packet, Icmpv4Repr, Icmpv4Type } from './icmpv4.js';
import { icmpv4EchoRequest } from './testdata/captured.js';

const bytes = hex(icmpv4EchoRequest);
const AT = 14 + 20;

test('a captured echo request parses, verifies and re-emits exactly', () => {
  const p = Icmpv4Packet.checked(bytes, AT) as Icmpv4Packet;
  assert.equal(p.type, Icmpv4Type.EchoRequest);
  assert.equal(p.echoIdent, 0x0d71);
  assert.equal(p.echoSeq, 1);
  const repr = Icmpv4Repr.parse(p) as Icmpv4Repr;
  assert.ok(repr instanceof Icmpv4Repr);
  assert.equal(repr.data.length, 56);
  const out = poisoned(repr.bufferLen());
  repr.emit(out);
  assert.deepEqual(out, bytes.subarray(AT));
  const built = Icmpv4Repr.echoRequest(0x0d71, 1, repr.data);
  const out2 = poisoned(built.bufferLen());
  built.emit(out2);
  assert.deepEqual(out2, bytes.subarray(AT));
});

test('a corrupted echo fails its checksum', () => {
  const b = bytes.slice(AT);
  b[20] ^= 0xff;
  assert.ok(Icmpv4Repr.parse(Icmpv4Packet.checked(b) as Icmpv4Packet) instanceof WireError);
});
