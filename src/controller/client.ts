/**
 * A client of the controller's REST API, over TCP (http://HOST:PORT) or a unix socket
 * (unix:/path/to.sock). A problem response becomes an ApiClientError whose message is the
 * controller's own sentence, with each field problem on its own line.
 */
import { request } from 'node:http';

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
        // A connection of its own: a pooled one may be dead after a controller restart.
        agent: false,
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

