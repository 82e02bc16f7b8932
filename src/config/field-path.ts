/**
 * Where a problem is in a file, written one way in every message Weft prints about a file
 * (lab topologies, `weft apply` files, agent configs): keys joined by ".", list positions in
 * brackets.
 *
 *   vms[2].ip        underlay.subnet        vms[0].trunk.10.network        (top level)
 */
import type { z } from 'zod';

export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((out, k) => (typeof k === 'number' ? `${out}[${k}]` : out ? `${out}.${String(k)}` : String(k)), '') || '(top level)';
}

/** Each problem of a failed parse as `PATH: WHY`, in the order the schema found them. */
export function issueLines(error: z.ZodError): string[] {
  return error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`);
}
