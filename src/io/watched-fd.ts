/**
 * A non-blocking fd watched for readability on libuv's event loop, and closed once. The
 * shared lifecycle of the TAP and UDP backends.
 */
import { native, type WatchHandle } from './native.js';

export class WatchedFd {
  private watch: WatchHandle | null = null;
  private closed = false;
  private onReadable: (() => void) | null = null;
  private kicked = false;

  constructor(readonly fd: number) {}

  /** Calls `onReadable` whenever the fd is readable, or failed (the next read says why). */
  start(onReadable: () => void): void {
    if (this.watch || this.closed) return;
    this.onReadable = onReadable;
    this.watch = native.watchReadable(this.fd, onReadable);
  }

  /** Calls `onReadable` once more soon, though the fd may not be readable: frames the
   * last read took in but could not hand over (no slots left) wait in the backend, and
   * nothing on the fd would say so. */
  kick(): void {
    if (this.kicked || this.closed || this.onReadable === null) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      if (!this.closed) this.onReadable?.();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watch) native.unwatch(this.watch);
    this.watch = null;
    native.close(this.fd);
  }
}
