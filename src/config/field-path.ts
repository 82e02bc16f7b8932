/**
 * Where a problem is in a file, written one way in every message Weft prints about a file
 * (lab topologies, `weft apply` files, agent configs): keys joined by ".", list positions in
 * brackets.
 *
 *   vms[2].ip        underlay.subnet        vms[0].trunk.10.network        (top level)
 *
 * The controller's API names a request body's fields the same way (its `errors[].field`),
 * the whole body being "(body)".
 */
import type { z } from 'zod';

export function fieldPath(path: ReadonlyArray<PropertyKey>, top = '(top level)'): string {
  return path.reduce<string>((out, k) => (typeof k === 'number' ? `${out}[${k}]` : out ? `${out}.${String(k)}` : String(k)), '') || top;
}

/** Each problem of a failed parse as its field and why, in the order the schema found them;
 * `top` names the whole document (a file's "(top level)", a request's "(body)"). */
export function issueFields(error: z.ZodError, top?: string): Array<{ field: string; message: string }> {
  return error.issues.map((i) => ({ field: fieldPath(i.path, top), message: i.message }));
}

/** Each problem of a failed parse as `PATH: WHY`, in the order the schema found them. */
export function issueLines(error: z.ZodError): string[] {
  return issueFields(error).map((i) => `${i.field}: ${i.message}`);
}
