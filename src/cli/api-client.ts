/** Where the CLI finds the controller and its token. */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { labDir } from '../lab/lab.js';
import { UsageError } from './errors.js';
import type { Target } from '../controller/client.js';
import { parseControllerUrl } from '../controller/client.js';
export { ApiClient, ApiClientError } from '../controller/client.js';

/**
 * Where the controller is and which token to use: flags first, then the environment
 * (WEFT_CONTROLLER, WEFT_TOKEN), then ~/.config/weft/config.yaml ({controller, token}).
 * --lab LAB means that lab's controller, over its unix socket, with its admin token.
 */
export function resolveTarget(opts: { controller?: string; token?: string; tokenFile?: string; lab?: string; caFile?: string }): Target {
  if (opts.lab) {
    const dir = labDir(opts.lab);
    const tokenFile = join(dir, 'controller', 'admin.token');
    return { url: `unix:${join(dir, 'controller.sock')}`, token: readToken(tokenFile), tokenHint: `the lab's admin token is in ${tokenFile}` };
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
    throw new UsageError(`cannot read the token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
