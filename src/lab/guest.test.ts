import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guestBuildDir } from './guest.js';

test('the guest image is built in a directory only its builder may write', () => {
  const parent = mkdtempSync(join(tmpdir(), 'weft-guest-test-'));
  try {
    const dir = guestBuildDir(parent);
    const st = lstatSync(dir);
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o777, 0o700, 'no one else may write (or list) where the .deb files are unpacked');
    assert.equal(st.uid, process.geteuid?.());
    assert.deepEqual(readdirSync(dir), []);
    assert.notEqual(guestBuildDir(parent), dir, 'a new one each time');
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
