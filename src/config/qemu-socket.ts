/**
 * Where QEMU ports' sockets may be. The agent (root) listens on a port's socket path, and
 * replaces a stale socket there: a path anywhere would let whoever creates ports remove any
 * file on any host. So each agent keeps its QEMU sockets in one directory of its own
 * (`weft agent --qemu-socket-dir`), and the controller accepts only paths inside the
 * directory it is told agents use (`weft controller --qemu-socket-dir`).
 *
 * This file checks the path's text only, as the controller can (it does not see the hosts'
 * file systems); the agent checks again on its own file system (src/io/qemu-stream.ts).
 */
import { posix } from 'node:path';

/** Where agents keep QEMU sockets unless told otherwise. */
export const DEFAULT_QEMU_SOCKET_DIR = '/run/weft/qemu';

/** `dir` written one way: normalized, without a trailing "/". */
export function socketDirText(dir: string): string {
  const d = posix.normalize(dir);
  return d.length > 1 ? d.replace(/\/+$/, '') : d;
}

/**
 * Why `path` cannot be a QEMU socket under `dir` (in it or in a directory below it), or
 * null when it can. The path must be written plainly: absolute, no "." or ".." and no "//".
 */
export function qemuSocketOutside(path: string, dir: string): string | null {
  const base = socketDirText(dir);
  if (!posix.isAbsolute(path) || posix.normalize(path) !== path || path.endsWith('/')) {
    return `${JSON.stringify(path)} is not a plain absolute path (no ".", ".." or "//")`;
  }
  if (!path.startsWith(base === '/' ? '/' : `${base}/`)) return `${JSON.stringify(path)} is not inside ${base}/, the directory agents keep QEMU sockets in`;
  return null;
}
