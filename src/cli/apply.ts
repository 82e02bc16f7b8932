/**
 * `weft apply -f FILE [--prune] [--dry-run]`: make the controller match a declarative YAML
 * file.
 *
 *   networks: [{ name: blue, vni: 100 }]
 *   subnets:  [{ name: blue-v4, network: blue, cidr: 10.10.0.0/24 }]
 *   ports:    [{ name: vm1, network: blue, host: h1, ips: [10.10.0.5] }]
 *
 * The file is checked here first (its shape, names unique), then the controller plans it and
 * checks every rule in a dry run (src/controller/apply.ts), and the plan is printed. Only then
 * is the same plan carried out, in one transaction: all of it or nothing. Resources the file
 * does not name are kept unless --prune says to delete them; the plan lists them either way.
 */
import { ConfigError, readYamlFile } from '../agent/config.js';
import { issueLines } from '../config/field-path.js';
import { applyResources, ONE, type ApplyResources, type ApplyResult } from '../controller/apply.js';
import type { ApiClient } from './api-client.js';

export function readApplyFile(file: string): ApplyResources {
  const parsed = applyResources.safeParse(readYamlFile(file));
  if (!parsed.success) {
    throw new ConfigError(file, issueLines(parsed.error));
  }
  return parsed.data;
}

/** Prints the plan, then (unless a dry run) carries it out. Returns how many changes. */
export async function apply(client: ApiClient, file: string, opts: { dryRun: boolean; prune: boolean }, say: (line: string) => void): Promise<number> {
  const resources = readApplyFile(file);
  const planned = await client.call<ApplyResult>('POST', '/v1/apply', { resources, prune: opts.prune, dryRun: true });
  const kept = planned.kept.map((k) => `${ONE[k.kind]} ${k.name}`);
  if (planned.actions.length === 0) say('nothing to change');
  else {
    say(`plan: ${planned.actions.length} change(s)`);
    for (const a of planned.actions) say(`  ${a.text}`);
  }
  if (kept.length > 0) say(`kept, not in the file (--prune deletes them): ${kept.join(', ')}`);
  if (opts.dryRun || planned.actions.length === 0) return planned.actions.length;
  const done = await client.call<ApplyResult>('POST', '/v1/apply', { resources, prune: opts.prune, planDigest: planned.planDigest });
  say(`applied (revision ${done.revision})`);
  return done.actions.length;
}
