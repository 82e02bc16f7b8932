/**
 * The CLI's client for the controller's REST API, over TCP (http://HOST:PORT) or a unix
 * socket (unix:/path/to.sock). A problem response becomes an ApiClientError whose message
 * is the controller's own sentence, with each field problem on its own line.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { labDir } from '../lab/lab.js';
import { UsageError } from './errors.js';

export class ApiClientError extends Error {
  readonly code = 'EAPI';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Target {
  url: string;
  token: string;
}

interface Problem {
  title?: string;
  detail?: string;
  errors?: Array<{ field: string; message: string }>;
}

export class ApiClient {
  constructor(private readonly target: Target) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { url, token } = this.target;
    const unix = url.startsWith('unix:') ? url.slice(5) : null;
    const u = unix ? null : new URL(path, url);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = request({
        ...(unix ? { socketPath: unix, path } : { host: u!.hostname, port: u!.port || 80, path: u!.pathname + u!.search }),
        method,
        headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
        timeout: 10_000,
      }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          const status = res.statusCode ?? 500;
          let data: unknown = null;
          try {
            data = text ? JSON.parse(text) : null;
          } catch {
            data = null;
          }
          if (status >= 400) {
            const p = (data ?? {}) as Problem;
            const lines = [p.detail ?? p.title ?? `HTTP ${status}`];
            if (p.errors && p.errors.length > 1) lines.push(...p.errors.map((e) => `  ${e.field}: ${e.message}`));
            reject(new ApiClientError(status, lines.join('\n')));
          } else {
            resolve(data as T);
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer in 10s')));
      req.on('error', (err: NodeJS.ErrnoException) => reject(new ApiClientError(0, `cannot reach the controller at ${url}: ${err.code ?? err.message}`)));
      if (payload) req.write(payload);
      req.end();
    });
  }
}

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
