/** Where the CLI finds the controller and its token. */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { labDir } from '../lab/lab.js';
import { UsageError } from './errors.js';
import type { Target } from '../controller/client.js';
export { ApiClient, ApiClientError } from '../controller/client.js';

/**
 * Where the controller is and which token to use: flags first, then the environment
 * (WEFT_CONTROLLER, WEFT_TOKEN), then ~/.config/weft/config.yaml ({controller, token}).
 * --lab LAB means that lab's controller, over its unix socket, with its admin token.
 */
export function resolveTarget(opts: { controller?: string; token?: string; tokenFile?: string; lab?: string }): Target {
  if (opts.lab) {
    const dir = labDir(opts.lab);
    return { url: `unix:${join(dir, 'controller.sock')}`, token: readToken(join(dir, 'controller', 'admin.token')) };
  }
  let file: { controller?: string; token?: string } = {};
  try {
    file = parse(readFileSync(join(homedir(), '.config', 'weft', 'config.yaml'), 'utf8')) ?? {};
  } catch {
    // no config file: fine
  }
  const url = opts.controller ?? process.env.WEFT_CONTROLLER ?? file.controller;
  const token = opts.tokenFile ? readToken(opts.tokenFile) : opts.token ?? process.env.WEFT_TOKEN ?? file.token;
  if (!url) throw new UsageError('which controller? give --controller URL (or unix:/path), set WEFT_CONTROLLER, or --lab LAB');
  if (!token) throw new UsageError('no token: give --token or --token-file, or set WEFT_TOKEN (the admin token is in the controller\'s data directory)');
  return { url, token };
}

function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UsageError(`cannot read the token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
