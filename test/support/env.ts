/** What the machine offers the end-to-end tests; a test that cannot run says why. */
import { execFileSync } from 'node:child_process';

export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** false when the end-to-end suite can run here, else the reason it is skipped. */
export function e2eSkipReason(...commands: string[]): string | false {
  if (process.getuid?.() !== 0) return 'needs root: it creates network namespaces and TAP devices';
  for (const c of ['ip', ...commands]) if (!hasCommand(c)) return `needs ${c} (see .ci/run for the Debian packages)`;
  return false;
}
