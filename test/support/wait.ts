/**
 * Waiting for a condition instead of sleeping for a while: an end-to-end test waits until
 * a server listens, a capture has started, a counter has reached a value. Every wait is
 * bounded, and one that runs out fails naming what it waited for and what it saw last.
 */
import type { ChildProcess } from 'node:child_process';
import type { Lab } from './lab.js';

export interface WaitOptions {
  /** What is waited for, as the failure says it: "b to listen on port 80". */
  what: string;
  /** Default 15 s: far beyond what any condition here takes on a loaded machine. */
  timeoutMs?: number;
  /** How often the condition is checked. Default 50 ms. */
  everyMs?: number;
}

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Checks `condition` until it returns a truthy value, and returns that value. A condition
 * that throws counts as not yet (a server not up yet refuses), and its error is reported
 * if time runs out.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, { what, timeoutMs = 15_000, everyMs = 50 }: WaitOptions): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await condition();
      if (last) return last as Truthy<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last saw: ${seen})`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until something in `vm` listens on TCP `port` (`ss -ltn` in its namespace). */
export async function waitForListening(lab: Lab, vm: string, port: number, timeoutMs?: number): Promise<void> {
  await waitFor(async () => {
    const out = await lab.run(vm, 'ss', '-Hltn', `sport = :${port}`);
    return out.trim() !== '';
  }, { what: `${vm} to listen on TCP port ${port}`, timeoutMs });
}

/** Waits until tcpdump (spawned with its stderr piped) says it is capturing ("listening
 * on ..."); fails if it exits first, or does not say so within `timeoutMs`. */
export function waitForCapture(tcpdump: ChildProcess, what = 'tcpdump', timeoutMs = 15_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let said = '';
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what} to start capturing: ${said}`)), timeoutMs);
    const onData = (d: Buffer) => {
      said += String(d);
      if (said.includes('listening on')) finish();
    };
    const onExit = (code: number | null) => finish(new Error(`${what} exited (${code}) before it was capturing: ${said}`));
    function finish(error?: Error): void {
      clearTimeout(timer);
      tcpdump.stderr?.off('data', onData);
      tcpdump.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    }
    tcpdump.stderr?.on('data', onData);
    tcpdump.once('exit', onExit);
  });
}

/** How many echo replies a running `ping` has printed so far. */
export const pingReplies = (output: string): number => output.split('\n').filter((l) => / bytes from /.test(l)).length;
