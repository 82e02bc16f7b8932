/**
 * A client of the controller's REST API, over HTTP, HTTPS or a unix socket. A problem
 * response becomes an ApiClientError whose message is the controller's own sentence, with
 * each field problem on its own line.
 *
 * The URL is taken at its word: `https://` is TLS with the certificate verified (against the
 * system's CAs, or `ca` where the controller's is private) or nothing, never plain HTTP; a
 * path on the URL is kept in front of every request's path (a controller behind a proxy at
 * https://example/weft/); anything else is refused with a sentence before a token is sent.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { printable } from '../config/fields.js';

export class ApiClientError extends Error {
  readonly code = 'EAPI';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The controller took longer than the request's timeout to answer. */
class NoAnswer extends Error {}
/** No connection to the controller came up in time. */
class NoConnection extends Error {}

export interface Target {
  /** http://HOST:PORT[/PATH], https://HOST:PORT[/PATH] or unix:/path/to.sock */
  url: string;
  token: string;
  /** PEM certificates to trust for an https:// controller (a private CA). */
  ca?: string;
  /** Said after a 401: where the right token is. */
  tokenHint?: string;
}

interface Problem {
  title?: string;
  detail?: string;
  errors?: Array<{ field: string; message: string }>;
}

type Endpoint =
  | { scheme: 'unix'; socketPath: string }
  | { scheme: 'http' | 'https'; host: string; port: number; basePath: string };

const USAGE = 'give http://HOST:PORT, https://HOST:PORT or unix:/path/to.sock';

/** Reads a controller URL; throws a sentence saying what is wrong with it. */
export function parseControllerUrl(url: string): Endpoint {
  if (url.startsWith('unix:')) {
    const socketPath = url.slice(5);
    if (!socketPath.startsWith('/')) throw new ApiClientError(0, `${JSON.stringify(url)}: a unix socket URL names an absolute path, as unix:/run/weft/controller.sock`);
    return { scheme: 'unix', socketPath };
  }
  if (/^[\w.-]+:\d+(\/|$)/.test(url) || /^\[[\da-f:.]+\]:\d+/i.test(url)) {
    throw new ApiClientError(0, `${JSON.stringify(url)} has no scheme: give http://${url} (or https://${url} for TLS)`);
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ApiClientError(0, `${JSON.stringify(url)} is not a controller URL: ${USAGE}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ApiClientError(0, `${JSON.stringify(url)}: the controller speaks http, https or unix, not ${u.protocol.slice(0, -1)}; ${USAGE}`);
  }
  if (u.search || u.hash) throw new ApiClientError(0, `${JSON.stringify(url)}: a controller URL takes no query or fragment`);
  if (u.username || u.password) throw new ApiClientError(0, `${JSON.stringify(url)}: put no credentials in the URL; the token goes in --token-file or WEFT_TOKEN`);
  const scheme = u.protocol === 'https:' ? 'https' : 'http';
  return { scheme, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port) || (scheme === 'https' ? 443 : 80), basePath: u.pathname.replace(/\/+$/, '') };
}

/** How long a request waits for the controller's answer (ours). */
export const ANSWER_TIMEOUT_MS = 10_000;
/** How long a long request (`weft apply`) waits, on a connection still alive (ours). */
export const LONG_ANSWER_TIMEOUT_MS = 30 * 60_000;
/** After this long without an answer, a long request says it is still waiting, and again
 * every STILL_WAITING_AGAIN_MS (ours). */
export const STILL_WAITING_MS = 5_000;
export const STILL_WAITING_AGAIN_MS = 30_000;
/** TCP keepalive probes on a long request's connection: a controller whose host went away
 * is found out in under a minute, not at the end of LONG_ANSWER_TIMEOUT_MS. */
const KEEPALIVE_MS = 10_000;

/** A request that may take the controller long (an apply of thousands of resources): it
 * waits as long as its connection is alive, up to LONG_ANSWER_TIMEOUT_MS, and `tell`s a
 * person that it is still waiting (`what`: what the controller is doing, as "applying 6000
 * resources"). */
export interface LongRequest {
  what: string;
  tell: (line: string) => void;
}

const seconds = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`);

export class ApiClient {
  private readonly endpoint: Endpoint;

  constructor(private readonly target: Target) {
    this.endpoint = parseControllerUrl(target.url);
  }

  async call<T>(method: string, path: string, body?: unknown, long?: LongRequest): Promise<T> {
    const { url, token } = this.target;
    const e = this.endpoint;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const timeout = long ? LONG_ANSWER_TIMEOUT_MS : ANSWER_TIMEOUT_MS;
    const options: RequestOptions = {
      ...(e.scheme === 'unix' ? { socketPath: e.socketPath, path } : { host: e.host, port: e.port, path: e.basePath + path }),
      method,
      // A connection of its own: a pooled one may be dead after a controller restart.
      agent: false,
      headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
    };
    return new Promise<T>((resolve, reject) => {
      // Once connected, a controller slow to answer is not one out of reach: the request
      // reached it and may still be running there.
      let connected = false;
      let answered = false;
      const started = Date.now();
      const timers: NodeJS.Timeout[] = [];
      const done = () => timers.forEach((t) => clearTimeout(t));
      // Connecting takes ANSWER_TIMEOUT_MS at most, whatever the request; the answer then
      // takes the rest of its timeout.
      timers.push(setTimeout(() => {
        if (!connected) req.destroy(new NoConnection());
        else timers.push(setTimeout(() => req.destroy(new NoAnswer()), timeout - ANSWER_TIMEOUT_MS));
      }, ANSWER_TIMEOUT_MS));
      if (long) {
        const still = (after: number) => timers.push(setTimeout(() => {
          if (answered) return;
          long.tell(`still waiting for the controller (${long.what}, ${seconds(Date.now() - started)} so far)...`);
          still(STILL_WAITING_AGAIN_MS);
        }, after));
        still(STILL_WAITING_MS);
      }
      const answer = (res: IncomingMessage) => {
        answered = true;
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('error', (err: NodeJS.ErrnoException) => {
          done();
          reject(new ApiClientError(0, `the connection to the controller at ${url} broke while it answered (${err.code ?? err.message})`));
        });
        res.on('end', () => {
          done();
          const status = res.statusCode ?? 500;
          let data: unknown = null;
          try {
            data = text ? JSON.parse(text) : null;
          } catch {
            data = null;
          }
          if (status >= 400) {
            const p = (data ?? {}) as Problem;
            // Each line the controller's, its control and bidi characters escaped: no text in
            // an answer makes a line of its own on the terminal.
            const lines = [printable(String(p.detail ?? p.title ?? `HTTP ${status}`))];
            if (p.errors && p.errors.length > 1) lines.push(...p.errors.map((x) => printable(`  ${x.field}: ${x.message}`)));
            if (status === 401 && this.target.tokenHint) lines.push(this.target.tokenHint);
            reject(new ApiClientError(status, lines.join('\n')));
          } else {
            resolve(data as T);
          }
        });
      };
      const req: ClientRequest = e.scheme === 'https'
        ? httpsRequest({ ...options, ...(this.target.ca ? { ca: this.target.ca } : {}) }, answer)
        : httpRequest(options, answer);
      req.on('socket', (socket) => {
        const on = () => {
          connected = true;
          if (long && e.scheme !== 'unix') socket.setKeepAlive(true, KEEPALIVE_MS);
        };
        // A TLS socket is connected once its handshake is done: a refused certificate is
        // a controller not reached.
        socket.once(e.scheme === 'https' ? 'secureConnect' : 'connect', on);
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        done();
        if (err instanceof NoConnection) {
          reject(new ApiClientError(0, `cannot reach the controller at ${url}: no connection in ${seconds(ANSWER_TIMEOUT_MS)}`));
          return;
        }
        if (err instanceof NoAnswer) {
          reject(new ApiClientError(0, `the controller at ${url} did not answer in ${seconds(timeout)}; the request reached it and may still be running there${long ? ` (${long.what})` : ''}`));
          return;
        }
        const tls = err.code?.startsWith('ERR_TLS') || /certificate|self.signed|SSL|TLS/i.test(err.message) || err.code === 'EPROTO';
        if (connected && !tls) {
          // The connection broke after the request went out: the controller may have
          // stopped, or done it and failed to answer.
          reject(new ApiClientError(0, `the connection to the controller at ${url} broke before it answered (${err.code ?? err.message}); the request may have been carried out`));
          return;
        }
        reject(new ApiClientError(0, tls
          ? `cannot reach the controller at ${url} over TLS: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ').trim()
          : `cannot reach the controller at ${url}: ${err.code ?? err.message}`));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}
