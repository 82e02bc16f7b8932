import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enhancedPacket, interfaceDescription, PacketCounter, readPcapng, sectionHeader } from './pcapng.js';

test('pcapng: a section, two interfaces, packets with microsecond times and directions read back; counted chunk by chunk', () => {
  const frame = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  const blocks = [sectionHeader(), interfaceDescription('blue', 'inner frames of blue'), enhancedPacket(0, 1_700_000_000_123_456, frame, 0, 15, 'in'),
    interfaceDescription('red'), enhancedPacket(1, 1_700_000_000_123_457, frame, 2, 5, 'out')];
  for (const b of blocks) assert.equal(b.length % 4, 0, 'blocks are padded to 4 bytes');
  const file = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  blocks.reduce((o, b) => (file.set(b, o), o + b.length), 0);
  assert.deepEqual(readPcapng(file), [
    { iface: 'blue', timeUs: 1_700_000_000_123_456, data: frame, direction: 'in' },
    { iface: 'red', timeUs: 1_700_000_000_123_457, data: frame.slice(2, 7), direction: 'out' },
  ]);
  for (const size of [1, 3, 7, 64, file.length]) {
    const c = new PacketCounter();
    for (let o = 0; o < file.length; o += size) c.push(file.subarray(o, o + size));
    assert.equal(c.packets, 2, `in chunks of ${size}`);
  }
});
