/**
 * The CLI's one error boundary: a mistake a person can fix is printed as a sentence with a
 * nonzero exit, never a stack trace. Set WEFT_DEBUG=1 to see the stack of anything else.
 */
import { printable } from '../config/fields.js';

/** A message line by line, each with its control and bidi characters escaped. */
const shown = (message: string) => message.split('\n').map(printable).join('\n');

export class UsageError extends Error {
  readonly code = 'EUSAGE';
}

/** What JavaScript itself throws at a mistake in the code, rather than in what a person
 * typed or what a controller or agent refused: only these get the WEFT_DEBUG hint. */
const BUGS = [TypeError, ReferenceError, RangeError, SyntaxError, EvalError, URIError];

export function reportAndExit(err: unknown): never {
  const e = (err instanceof Error ? err : new Error(String(err))) as Error & { code?: string };
  if (process.env.WEFT_DEBUG) console.error(e.stack);
  if (e.code === 'ECONFIG' || e.code === 'EUSAGE') {
    console.error(shown(e.message));
    process.exit(2);
  }
  const bug = BUGS.some((kind) => e instanceof kind) || e.message === '';
  console.error(`weft: ${shown(e.message || e.name)}${bug && !process.env.WEFT_DEBUG ? ' (WEFT_DEBUG=1 shows where)' : ''}`);
  process.exit(1);
}

/** Output into a pipe whose reader has gone (`weft port list | head`) is not an error: the
 * rest of the output is dropped and the command goes on to its end (a `lab up` that is
 * changing a lab must not stop halfway because nobody reads its lines any more). */
export function dropOutputOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') throw e;
      stream.write = () => true;
    });
  }
}
