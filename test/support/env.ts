/**
 * What the machine offers the tests; a test that cannot run says why.
 *
 * A test that lacks a tool, or root, is skipped with its reason on a developer's machine.
 * In CI (`CI=true`), where .ci/run installs every tool and runs as root, the same test
 * fails with that reason instead: a green run there means every test ran. Only a skip by
 * design (a case an implementation does not have, not something the machine lacks) passes
 * in CI too; those are named in BY_DESIGN and nowhere else.
 *
 * Test files take `test` and `describe` from here rather than from node:test, and
 * `subtest(t, ...)` rather than `t.test(...)` where a subtest may skip, so that the rule
 * applies to their `skip` option.
 */
import { execFileSync } from 'node:child_process';
import { describe as nodeDescribe, test as nodeTest, type SuiteFn, type TestContext, type TestFn, type TestOptions } from 'node:test';

/** The skips that are by design. A test passes one of these as its `skip` option, or one
 * followed by ": " and what this machine is ("...: this machine is arm64"). */
export const BY_DESIGN = {
  memoryStoreNotDurable: 'the in-memory store is not durable by design',
  /** The lab's QEMU guest is Debian's amd64 cloud kernel (src/lab/guest.ts); the README
   * says other architectures skip it. */
  qemuGuestNeedsAmd64: 'needs an amd64 Debian kernel package (linux-image-cloud-amd64)',
} as const;

const byDesign = Object.values(BY_DESIGN) as string[];
const isByDesign = (why: string) => byDesign.some((d) => why === d || why.startsWith(`${d}: `));

export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** false when the end-to-end suite can run here, else the reason it cannot. */
export function e2eSkipReason(...commands: string[]): string | false {
  if (process.getuid?.() !== 0) return 'needs root: it creates network namespaces and TAP devices';
  for (const c of ['ip', ...commands]) if (!hasCommand(c)) return `needs ${c} (see .ci/run for the Debian packages)`;
  return false;
}

export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.CI === 'true' || env.CI === '1';
}

export type SkipVerdict = { run: true } | { skip: string } | { fail: string };

/** What becomes of a test whose `skip` option is `reason`: it runs (no reason), it is
 * skipped with the reason, or (in CI, for any reason not by design) it fails with it. */
export function skipVerdict(reason: string | boolean | undefined, env: NodeJS.ProcessEnv = process.env): SkipVerdict {
  if (reason === undefined || reason === false) return { run: true };
  const why = reason === true ? 'skipped without a reason' : reason;
  if (!inCi(env) || isByDesign(why)) return { skip: why };
  return { fail: `cannot run here: ${why}. In CI (CI=${env.CI}) only a skip by design passes (BY_DESIGN in test/support/env.ts)` };
}

/** The skip rule applied to node:test's `options`: what to run with, and for a skip that
 * must fail (in CI, not by design), the body that fails saying why, to run instead. */
function withSkipRule(options: TestOptions): { options: TestOptions; failure: (() => never) | null } {
  const v = skipVerdict(options.skip);
  if ('fail' in v) return { options: { ...options, skip: false }, failure: () => { throw new Error(v.fail); } };
  return { options: { ...options, skip: 'skip' in v ? v.skip : false }, failure: null };
}

/** node:test's `test`, with the skip rule above applied to `options.skip`. */
export function test(name: string, fn: TestFn): Promise<void>;
export function test(name: string, options: TestOptions, fn: TestFn): Promise<void>;
export function test(name: string, a: TestOptions | TestFn, b?: TestFn): Promise<void> {
  const [options, fn] = typeof a === 'function' ? [{}, a] : [a, b!];
  const ruled = withSkipRule(options);
  return nodeTest(name, ruled.options, ruled.failure ?? fn);
}

/** node:test's `describe`, with the skip rule applied: a suite that cannot run in CI is one
 * failed test that says why. */
export function describe(name: string, fn: SuiteFn): Promise<void>;
export function describe(name: string, options: TestOptions, fn: SuiteFn): Promise<void>;
export function describe(name: string, a: TestOptions | SuiteFn, b?: SuiteFn): Promise<void> {
  const [options, fn] = typeof a === 'function' ? [{}, a] : [a, b!];
  const ruled = withSkipRule(options);
  return ruled.failure !== null ? nodeTest(name, ruled.options, ruled.failure) : nodeDescribe(name, ruled.options, fn);
}

/** `t.test` (a subtest of the running test `t`), with the skip rule applied: for a check
 * inside a test that needs a tool the rest of the test does not. */
export function subtest(t: TestContext, name: string, options: TestOptions, fn: TestFn): Promise<void> {
  const ruled = withSkipRule(options);
  return t.test(name, ruled.options, ruled.failure ?? fn);
}
