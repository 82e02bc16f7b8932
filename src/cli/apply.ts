/**
 * `weft apply -f FILE [--prune] [--dry-run]`: make the controller match a declarative YAML
 * file (`-f -`: standard input).
 *
 *   networks: [{ name: blue, vni: 100 }]
 *   subnets:  [{ name: blue-v4, network: blue, cidr: 10.10.0.0/24 }]
 *   ports:    [{ name: vm1, network: blue, host: h1, ips: [10.10.0.5] }]
 *
 * The file is checked here first (its shape, names unique), then the controller plans it and
 * checks every rule in a dry run (src/controller/apply.ts), and the plan is printed. Only then
 * is the same plan carried out, in one transaction: all of it or nothing. Resources the file
 * does not name are kept unless --prune says to delete them; the plan lists them either way.
 * `weft export` prints what the controller holds in this shape, so that apply takes it back
 * with nothing to change.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, readYamlFile } from '../agent/config.js';
import { issueLines } from '../config/field-path.js';
import { applyResources, ONE, type ApplyResources, type ApplyResult } from '../controller/apply.js';
import type { ApiClient } from './api-client.js';

/** `-` names standard input. */
export const STDIN = '-';

export function readApplyFile(file: string): ApplyResources {
  const doc = file === STDIN ? readStdin() : readYamlFile(file);
  const name = file === STDIN ? '(standard input)' : file;
  if (Array.isArray(doc)) {
    throw new ConfigError(name, ['(top level): a list, as weft KIND list -o yaml prints; apply takes the kinds by name (networks:, subnets:, ports:, ...), as weft export prints them']);
  }
  const parsed = applyResources.safeParse(doc);
  if (!parsed.success) {
    throw new ConfigError(name, issueLines(parsed.error));
  }
  return parsed.data;
}

/** The YAML on standard input, as readYamlFile reads a file. */
function readStdin(): unknown {
  const name = '(standard input)';
  let text: string;
  try {
    text = readFileSync(0, 'utf8');
  } catch (err) {
    throw new ConfigError(name, [`cannot read it: ${(err as Error).message}`]);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(name, doc.errors.map((e) => `line ${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`));
  return doc.toJS();
}

/** Prints the plan, then (unless a dry run) carries it out. Returns how many changes. */
export async function apply(client: ApiClient, file: string, opts: { dryRun: boolean; prune: boolean }, say: (line: string) => void, warn: (line: string) => void = say): Promise<number> {
  const resources = readApplyFile(file);
  // A file of thousands takes the controller seconds: the CLI waits while the connection
  // lives, and says it is waiting.
  const count = Object.values(resources).reduce((n, list) => n + (list?.length ?? 0), 0);
  const long = (doing: string) => ({ what: `${doing} ${count} resource${count === 1 ? '' : 's'}`, tell: warn });
  let planned: ApplyResult;
  try {
    planned = await client.call<ApplyResult>('POST', '/v1/apply', { resources, prune: opts.prune, dryRun: true }, long('planning'));
  } catch (err) {
    if (opts.prune) await explainPrune(client, resources, warn);
    throw err;
  }
  const kept = planned.kept.map((k) => `${ONE[k.kind]} ${k.name}`);
  if (planned.actions.length === 0) say('nothing to change');
  else {
    say(`plan: ${planned.actions.length} change(s)`);
    for (const a of planned.actions) say(`  ${a.text}`);
  }
  if (kept.length > 0) say(`kept, not in the file (--prune deletes them): ${kept.join(', ')}`);
  if (opts.dryRun || planned.actions.length === 0) return planned.actions.length;
  const done = await client.call<ApplyResult>('POST', '/v1/apply', { resources, prune: opts.prune, planDigest: planned.planDigest }, long('applying'));
  say(`applied (revision ${done.revision})`);
  return done.actions.length;
}

/**
 * A pruning plan was refused. When the same file plans without --prune, the refusal is about
 * a deletion that pruning planned: say so (and what it would delete) before the refusal, which
 * otherwise reads as if the file asked for it.
 */
async function explainPrune(client: ApiClient, resources: ApplyResources, warn: (line: string) => void): Promise<void> {
  let unpruned: ApplyResult;
  try {
    unpruned = await client.call<ApplyResult>('POST', '/v1/apply', { resources, prune: false, dryRun: true }, { what: 'planning without --prune', tell: warn });
  } catch {
    return; // refused without pruning too: the refusal speaks for itself
  }
  if (unpruned.kept.length === 0) return;
  const listed = Object.keys(resources).filter((k) => resources[k as keyof ApplyResources] !== undefined);
  warn(`--prune plans deleting what the file leaves out of the kinds it lists (${listed.join(', ')}): ${unpruned.kept.map((k) => `${ONE[k.kind]} ${k.name}`).join(', ')}; without --prune they are kept`);
}
