/**
 * Files only their owner may read: tokens, keys, and captures of (decrypted) VM traffic.
 *
 * `writeFileSync(path, data, { mode: 0o600 })` sets the mode only when it creates the file:
 * a file that is already there keeps its mode (0644, say) and gets the secret anyway, and a
 * symbolic link there is followed to wherever it points. Making the old file 0600 before
 * writing (fchmod) is not enough either: whoever opened it while it was 0644 keeps reading
 * through that descriptor whatever is written next.
 *
 * So a private file is always a new one: what is at `path` is looked at first (lstat), and
 * a symbolic link, a directory or anything else that is not a regular file is refused with
 * a PrivateFileError naming the path, with nothing touched. Then a file of our own is made
 * beside it (O_CREAT|O_EXCL|O_NOFOLLOW, 0600, and fchmod 0600 whatever the umask) and
 * renamed over `path`: no one else has it open, and a symbolic link put there meanwhile is
 * replaced, never followed. Making it needs write permission on the directory.
 *
 * The directories on the way are the caller's to choose (the agent's and the controller's
 * own are 0700): in a directory others may write, they may replace the file afterwards.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, renameSync, type Stats, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const NOT_FOLLOWED = 'it is a symbolic link, which is not followed; remove it or choose another path';

export type PrivateFileProblem = 'symlink' | 'not-regular' | 'exists' | 'missing' | 'io';

export class PrivateFileError extends Error {
  readonly code = 'EPRIVATEFILE';
  constructor(readonly problem: PrivateFileProblem, readonly path: string, message: string) {
    super(message);
  }
}

export interface PrivateFileOptions {
  /** What the file is, for the message ("the join token file"); default "the file". */
  what?: string;
  /** Refuse a file that exists already (a key that must never be replaced). */
  exclusive?: boolean;
}

/**
 * Makes `path` a new, empty private file (see the file comment), replacing a regular file
 * there, and returns its descriptor open for writing: the caller's to close (a write
 * stream's `fd`).
 */
export function openPrivateFile(path: string, options: PrivateFileOptions = {}): number {
  const made = beside(path, options);
  return made.place();
}

/**
 * Writes `data` to `path` as a new private file (see the file comment), whole, and closes
 * it. The name is given to the file once it is written: a reader of `path` sees the old
 * file or the new one, never half of it.
 */
export function writePrivateFile(path: string, data: string | Uint8Array, options: PrivateFileOptions = {}): void {
  const made = beside(path, options);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    for (let at = 0; at < bytes.length;) at += writeSync(made.fd, bytes, at, bytes.length - at);
    // On disk before it takes the name: a power loss after the rename must not leave an
    // empty key or token where the old one was.
    fsyncSync(made.fd);
  } catch (err) {
    made.discard();
    throw new PrivateFileError('io', path, `${made.at}: ${fileProblem(err)}`);
  }
  closeSync(made.place());
}

/**
 * Throws the PrivateFileError that writing `path` would throw for what is there now (a
 * symbolic link, a directory, ...), without touching it: for a caller that would rather
 * refuse before doing anything else (asking a controller for a token, say). The write
 * checks again.
 */
export function checkPrivateFilePath(path: string, options: PrivateFileOptions = {}): void {
  const at = `cannot write ${options.what ?? 'the file'} ${path}`;
  const existing = statOrNull(path, at);
  if (!existing) return;
  if (options.exclusive) throw new PrivateFileError('exists', path, `${at}: it exists already`);
  if (existing.isSymbolicLink()) throw new PrivateFileError('symlink', path, `${at}: ${NOT_FOLLOWED}`);
  if (!existing.isFile()) throw new PrivateFileError('not-regular', path, `${at}: it is ${kindOf(existing)}, not a regular file`);
}

/** A new file of our own beside `path` (after what is at `path` was checked), still under
 * a temporary name: `place` gives it the name `path` and returns its descriptor; `discard`
 * closes and removes it. Either throws a PrivateFileError, having removed it. */
function beside(path: string, options: PrivateFileOptions): { fd: number; at: string; place: () => number; discard: () => void } {
  const at = `cannot write ${options.what ?? 'the file'} ${path}`;
  checkPrivateFilePath(path, options);
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  } catch (err) {
    throw errno(err) === 'ENOENT' ? new PrivateFileError('missing', path, `${at}: its directory does not exist`) : new PrivateFileError('io', path, `${at}: ${fileProblem(err)}`);
  }
  const discard = () => {
    closeSync(fd);
    try {
      unlinkSync(temporary);
    } catch { /* not there: nothing to remove */ }
  };
  try {
    fchmodSync(fd, 0o600); // whatever the umask
  } catch (err) {
    discard();
    throw new PrivateFileError('io', path, `${at}: ${fileProblem(err)}`);
  }
  const place = () => {
    try {
      if (options.exclusive) {
        // link(2) refuses a name that exists, whatever it is, where rename(2) replaces it.
        linkSync(temporary, path);
        unlinkSync(temporary);
      } else {
        renameSync(temporary, path);
      }
      return fd;
    } catch (err) {
      discard();
      throw errno(err) === 'EEXIST' ? new PrivateFileError('exists', path, `${at}: it exists already`) : new PrivateFileError('io', path, `${at}: ${fileProblem(err)}`);
    }
  };
  return { fd, at, place, discard };
}

/**
 * Reads a private file this process keeps (a key, a token), or null when there is none.
 * Checked as for writing: no symbolic link, a regular file; one that others may read (left
 * by an older version, or copied in) is made 0600 before it is read.
 */
export function readPrivateFile(path: string, what = 'the file'): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw readRefusal(what, path, err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PrivateFileError('not-regular', path, `cannot read ${what} ${path}: it is ${kindOf(st)}, not a regular file`);
    if ((st.mode & 0o077) !== 0) fchmodSync(fd, 0o600);
    return readFileSync(fd);
  } catch (err) {
    throw err instanceof PrivateFileError ? err : readRefusal(what, path, err);
  } finally {
    closeSync(fd);
  }
}

/** What went wrong with a file, in words: `no such file`, `permission denied`, ... (the
 * error's code for anything less common). */
export function fileProblem(err: unknown): string {
  const code = errno(err);
  const words: Record<string, string> = {
    ENOENT: 'no such file', ENOTDIR: 'a directory on its path is not a directory', EACCES: 'permission denied', EPERM: 'permission denied',
    EISDIR: 'it is a directory', ELOOP: 'it is a symbolic link', EROFS: 'the file system is read-only', ENOSPC: 'no space left on the device',
    EEXIST: 'it exists already', EDQUOT: 'over the disk quota',
  };
  return (code && words[code]) ?? code ?? (err as Error).message;
}

/** What is at `path` itself (a symbolic link is not followed), or null when nothing is. */
function statOrNull(path: string, at: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw new PrivateFileError('io', path, `${at}: ${fileProblem(err)}`);
  }
}

/** The PrivateFileError for a private file that cannot be opened for reading. */
function readRefusal(what: string, path: string, err: unknown): PrivateFileError {
  const at = `cannot read ${what} ${path}`;
  const code = errno(err);
  if (code === 'ELOOP') return new PrivateFileError('symlink', path, `${at}: ${NOT_FOLLOWED}`);
  if (code === 'ENXIO' || code === 'EOPNOTSUPP') {
    let kind = 'not a regular file';
    try {
      kind = `${kindOf(lstatSync(path))}, not a regular file`;
    } catch { /* gone meanwhile: the words above */ }
    return new PrivateFileError('not-regular', path, `${at}: it is ${kind}`);
  }
  return new PrivateFileError('io', path, `${at}: ${fileProblem(err)}`);
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'a regular file';
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;
