/**
 * A non-blocking fd watched for readability on libuv's event loop, and closed once. The
 * shared lifecycle of the TAP and UDP backends.
 */
import { native, type WatchHandle } from './native.js';

export class WatchedFd {
  private watch: WatchHandle | null = null;
  private closed = false;

  constructor(readonly fd: number) {}

  /** Calls `onReadable` whenever the fd is readable, or failed (the next read says why). */
  start(onReadable: () => void): void {
    if (this.watch || this.closed) return;
    this.watch = native.watchReadable(this.fd, onReadable);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watch) native.unwatch(this.watch);
    this.watch = null;
    native.close(this.fd);
  }
}
