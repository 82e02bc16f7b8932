import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hex } from './bytes.js';
import { LinkType, pcapGlobalHeader, pcapRecord, readPcap } from './pcap.js';

test('a written file reads back: link type, timestamps, lengths, snaplen cut', () => {
  const frame = hex('ffffffffffff 020000000001 0806').slice();
  const file = Buffer.concat([
    pcapGlobalHeader(LinkType.Ethernet, 10),
    pcapRecord(1_700_000_000_123.456, frame, 0, frame.length, 10),
  ]);
  assert.deepEqual([...file.subarray(0, 4)], [0xd4, 0xc3, 0xb2, 0xa1]);
  const { linkType, records } = readPcap(file);
  assert.equal(linkType, LinkType.Ethernet);
  assert.equal(records.length, 1);
  assert.equal(records[0].origLen, 14);
  assert.equal(records[0].data.length, 10);
  assert.ok(Math.abs(records[0].timeMs - 1_700_000_000_123.456) < 0.001);
});
