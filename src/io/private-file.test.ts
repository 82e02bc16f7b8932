import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPrivateFile, PrivateFileError, readPrivateFile, writePrivateFile } from './private-file.js';

const mode = (path: string) => statSync(path).mode & 0o777;

function inDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'weft-private-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Throws a PrivateFileError of this problem whose message is exactly `message`. */
function refused(f: () => unknown, problem: PrivateFileError['problem'], message: string): void {
  assert.throws(f, (err: unknown) => {
    assert.ok(err instanceof PrivateFileError, String(err));
    assert.equal(err.problem, problem);
    assert.equal(err.message, message);
    return true;
  });
}

test('a file that was 0644 ends 0600 with the new content only, and nothing is left beside it', () => inDir((dir) => {
  const file = join(dir, 'h1.token');
  writeFileSync(file, 'an old token, longer than the new one\n');
  chmodSync(file, 0o644);
  writePrivateFile(file, 'secret\n', { what: 'the join token file' });
  assert.equal(mode(file), 0o600);
  assert.equal(readFileSync(file, 'utf8'), 'secret\n');
  assert.deepEqual(readdirSync(dir), ['h1.token']);
}));

test('a new file is 0600 whatever the umask', () => inDir((dir) => {
  const old = process.umask(0);
  try {
    writePrivateFile(join(dir, 'key'), 'k');
  } finally {
    process.umask(old);
  }
  assert.equal(mode(join(dir, 'key')), 0o600);
}));

test('whoever opened the old file while it was 0644 does not read what is written next', () => inDir((dir) => {
  const file = join(dir, 'capture.pcapng');
  writeFileSync(file, '');
  chmodSync(file, 0o644);
  const reader = openSync(file, 'r'); // another user, while it was readable
  try {
    writePrivateFile(file, 'decrypted traffic');
    const got = Buffer.alloc(64);
    assert.equal(readSync(reader, got, 0, got.length, 0), 0, 'the reader still has the old, empty file');
    assert.equal(readFileSync(file, 'utf8'), 'decrypted traffic');
  } finally {
    closeSync(reader);
  }
}));

test('a symbolic link is refused, naming the path, and what it points to is untouched', () => inDir((dir) => {
  const target = join(dir, 'shadow');
  writeFileSync(target, 'precious\n');
  chmodSync(target, 0o644);
  const link = join(dir, 'h1.token');
  symlinkSync(target, link);
  for (const write of [() => writePrivateFile(link, 'secret\n', { what: 'the join token file' }), () => openPrivateFile(link, { what: 'the join token file' })]) {
    refused(write, 'symlink', `cannot write the join token file ${link}: it is a symbolic link, which is not followed; remove it or choose another path`);
  }
  assert.equal(readFileSync(target, 'utf8'), 'precious\n');
  assert.equal(mode(target), 0o644);
  assert.ok(lstatSync(link).isSymbolicLink());
  // One that points nowhere does not make its target either.
  const dangling = join(dir, 'dangling');
  symlinkSync(join(dir, 'made-through-the-link'), dangling);
  refused(() => writePrivateFile(dangling, 'x'), 'symlink', `cannot write the file ${dangling}: it is a symbolic link, which is not followed; remove it or choose another path`);
  assert.equal(existsSync(join(dir, 'made-through-the-link')), false);
  assert.deepEqual(readdirSync(dir).sort(), ['dangling', 'h1.token', 'shadow']);
}));

test('a directory, a FIFO or a device is refused, not written or waited on', () => inDir((dir) => {
  const sub = join(dir, 'sub');
  mkdirSync(sub);
  writeFileSync(join(sub, 'inside'), 'kept');
  refused(() => writePrivateFile(sub, 'x'), 'not-regular', `cannot write the file ${sub}: it is a directory, not a regular file`);
  assert.equal(readFileSync(join(sub, 'inside'), 'utf8'), 'kept');
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  refused(() => openPrivateFile(fifo), 'not-regular', `cannot write the file ${fifo}: it is a FIFO, not a regular file`);
  refused(() => readPrivateFile(fifo, 'the token file'), 'not-regular', `cannot read the token file ${fifo}: it is a FIFO, not a regular file`);
  refused(() => writePrivateFile('/dev/null', 'x'), 'not-regular', 'cannot write the file /dev/null: it is a device, not a regular file');
}));

test('a missing directory, and an exclusive file that exists, are said so', () => inDir((dir) => {
  const nowhere = join(dir, 'no', 'such', 'dir', 'key');
  refused(() => writePrivateFile(nowhere, 'x', { what: 'the tunnel key' }), 'missing', `cannot write the tunnel key ${nowhere}: its directory does not exist`);
  const key = join(dir, 'identity.key');
  writePrivateFile(key, 'first', { exclusive: true });
  refused(() => writePrivateFile(key, 'second', { exclusive: true }), 'exists', `cannot write the file ${key}: it exists already`);
  assert.equal(readFileSync(key, 'utf8'), 'first');
  assert.deepEqual(readdirSync(dir), ['identity.key'], 'no temporary file left behind');
}));

test('a stream opened on a 0644 file writes a 0600 file from its start', () => inDir((dir) => {
  const file = join(dir, 'x.pcapng');
  writeFileSync(file, 'old content that must go');
  chmodSync(file, 0o644);
  const fd = openPrivateFile(file);
  assert.equal(mode(file), 0o600, 'private before the first byte');
  writeSync(fd, 'new');
  closeSync(fd);
  assert.equal(readFileSync(file, 'utf8'), 'new');
}));

test('reading a private file: made 0600 if others could read it; none is null; a symbolic link is refused', () => inDir((dir) => {
  const token = join(dir, 'admin.token');
  writeFileSync(token, 'abc\n');
  chmodSync(token, 0o644);
  assert.equal(readPrivateFile(token)?.toString(), 'abc\n');
  assert.equal(mode(token), 0o600);
  assert.equal(readPrivateFile(join(dir, 'none')), null);
  const target = join(dir, 'elsewhere');
  writeFileSync(target, 'not a token');
  chmodSync(target, 0o644);
  const link = join(dir, 'link.token');
  symlinkSync(target, link);
  refused(() => readPrivateFile(link, 'the admin token file'), 'symlink', `cannot read the admin token file ${link}: it is a symbolic link, which is not followed; remove it or choose another path`);
  assert.equal(mode(target), 0o644, 'the target keeps its mode');
}));
