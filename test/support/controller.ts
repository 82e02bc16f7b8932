/**
 * A real `weft controller` process for a test: SQLite in a data directory of its own, HTTP on
 * a loopback port the kernel picks (so tests running side by side never collide), and the CLI
 * run against it with the admin token, as a person would after `export WEFT_CONTROLLER=...`.
 *
 * `stop()` ends the process and removes everything it made; call it in a `finally`. When the
 * controller does not come up, `startController` ends it, removes its directory, and throws
 * with what it logged.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface RunningController {
  /** Where it listens: http://127.0.0.1:PORT. */
  readonly url: string;
  readonly port: number;
  /** The admin token (its data directory's admin.token). */
  readonly token: string;
  /** Its data directory (created by the controller itself, so its mode is the controller's);
   * a test may write its own files there too. */
  readonly dir: string;
  /** What it has logged so far, stdout and stderr. */
  logs(): string;
  /** Whether the process still runs. */
  running(): boolean;
  /** Runs `weft ARGS` against it (WEFT_CONTROLLER and WEFT_TOKEN set), with `input` on stdin. */
  run(args: string[], input?: string): SpawnSyncReturns<string>;
  stop(): Promise<void>;
}

/** Starts a controller in a new directory under the system's temporary one, named `prefix`...
 * Waits (at most `timeoutMs`) until it logs that it is ready. */
export async function startController(prefix = 'weft-controller-', timeoutMs = 30_000): Promise<RunningController> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const dir = join(root, 'data');
  const ctl = spawn(process.execPath, [CLI, 'controller', '--data-dir', dir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  const exited = new Promise<void>((resolve) => ctl.once('exit', () => resolve()));
  const stop = async () => {
    if (ctl.exitCode === null && ctl.signalCode === null) {
      ctl.kill('SIGTERM');
      await exited;
    }
    rmSync(root, { recursive: true, force: true });
  };
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the controller was not ready after ${timeoutMs} ms:\n${logs}`)), timeoutMs);
      let found = false;
      const onData = (d: Buffer) => {
        logs += d;
        if (found) return;
        // Whole lines only: the one that says so may come in two pieces.
        const ready = logs.split('\n').slice(0, -1).find((line) => line.includes('"controller ready"'));
        if (ready === undefined) return;
        found = true;
        clearTimeout(timer);
        resolve((JSON.parse(ready) as { listen: string }).listen);
      };
      ctl.stdout.on('data', onData);
      ctl.stderr.on('data', onData);
      ctl.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the controller exited (${code ?? signal}) before it was ready:\n${logs}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const env = { ...process.env, WEFT_CONTROLLER: url, WEFT_TOKEN: token };
  return {
    url,
    port: Number(new URL(url).port),
    token,
    dir,
    logs: () => logs,
    running: () => ctl.exitCode === null && ctl.signalCode === null,
    run: (args, input) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, input }),
    stop,
  };
}
