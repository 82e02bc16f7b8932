/**
 * The CLI's one error boundary: a mistake a person can fix is printed as a sentence with a
 * nonzero exit, never a stack trace. Set WEFT_DEBUG=1 to see the stack of anything else.
 */
export class UsageError extends Error {
  readonly code = 'EUSAGE';
}

export function reportAndExit(err: unknown): never {
  const e = err as Error & { code?: string };
  if (process.env.WEFT_DEBUG) console.error(e.stack);
  if (e.code === 'ECONFIG' || e.code === 'EUSAGE') {
    console.error(e.message);
    process.exit(2);
  }
  const known = typeof e.code === 'string' && e.code.startsWith('E');
  console.error(`weft: ${e.message}${known || process.env.WEFT_DEBUG ? '' : ' (WEFT_DEBUG=1 shows where)'}`);
  process.exit(1);
}
