/** Where the CLI finds the controller and its token. */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { labDir, listLabs, readLabState } from '../lab/lab.js';
import { UsageError } from './errors.js';
import { fileProblem } from '../io/private-file.js';
import type { Target } from '../controller/client.js';
import { parseControllerUrl } from '../controller/client.js';
export { ApiClient, ApiClientError } from '../controller/client.js';

/**
 * Where the controller is and which token to use: flags first, then the environment
 * (WEFT_CONTROLLER, WEFT_TOKEN), then ~/.config/weft/config.yaml ({controller, token}).
 * --lab LAB means that lab's controller, over its unix socket, with its admin token (or the
 * token given with --token or --token-file: a lab user may try another one).
 */
export function resolveTarget(opts: { controller?: string; token?: string; tokenFile?: string; lab?: string; caFile?: string }): Target {
  if (opts.lab) {
    if (opts.controller) throw new UsageError('give --lab LAB or --controller URL, not both');
    const state = mustLab(opts.lab);
    if (!state.plan.controller) throw new UsageError(`lab ${opts.lab} has no controller (its topology says controller: false); its agents run from config files`);
    const dir = labDir(opts.lab);
    const tokenFile = join(dir, 'controller', 'admin.token');
    if (opts.token && opts.tokenFile) throw new UsageError('give --token or --token-file, not both');
    const token = opts.tokenFile ? readToken(opts.tokenFile) : opts.token ?? readToken(tokenFile);
    return { url: `unix:${join(dir, 'controller.sock')}`, token, tokenHint: opts.token || opts.tokenFile ? `the lab's admin token is in ${tokenFile}, not the one given` : `the lab's admin token is in ${tokenFile}` };
  }
  let file: { controller?: string; token?: string; caFile?: string } = {};
  try {
    file = parse(readFileSync(join(homedir(), '.config', 'weft', 'config.yaml'), 'utf8')) ?? {};
  } catch {
    // no config file: fine
  }
  const url = opts.controller ?? process.env.WEFT_CONTROLLER ?? file.controller;
  const token = opts.tokenFile ? readToken(opts.tokenFile) : opts.token ?? process.env.WEFT_TOKEN ?? file.token;
  if (!url) throw new UsageError('which controller? give --controller URL (or unix:/path), set WEFT_CONTROLLER, or --lab LAB');
  if (!token) throw new UsageError(`no token: give --token-file or --token, or set WEFT_TOKEN; ${TOKEN_HINT}`);
  try {
    parseControllerUrl(url);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const caFile = opts.caFile ?? process.env.WEFT_CA_FILE ?? file.caFile;
  return { url, token, tokenHint: TOKEN_HINT, ...(caFile ? { ca: readCa(caFile) } : {}) };
}

/** The lab named `name`, as it was built; a sentence naming the labs there are when there
 * is none of that name (or it is only half built or half removed). */
export function mustLab(name: string): NonNullable<ReturnType<typeof readLabState>> {
  const state = listLabs().includes(name) ? readLabState(name) : null;
  if (state) return state;
  if (listLabs().includes(name)) throw new UsageError(`lab ${name} is not complete (being built, or left by a run that was killed): weft lab down ${name}`);
  throw new UsageError(noLab(name));
}

/** `no lab NAME (labs: a, b)`. */
export function noLab(name: string): string {
  const labs = listLabs();
  return `no lab ${name} (${labs.length > 0 ? `labs: ${labs.join(', ')}` : 'no lab is up: weft lab up FILE'})`;
}

const TOKEN_HINT = 'the admin token is the file admin.token in the controller\'s data directory (--data-dir, /var/lib/weft by default)';

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`cannot read the token file ${file}: ${fileProblem(err)}`);
  }
}
