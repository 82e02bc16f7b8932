/** HTTP requests to a local unix socket (the agent's control API). */
import { request } from 'node:http';
import type { IncomingMessage } from 'node:http';

export class AgentUnreachable extends Error {
  readonly code = 'EAGENT';
  constructor(socketPath: string, cause: string) {
    super(`cannot reach the agent at ${socketPath}: ${cause} (is it running, and are you root?)`);
  }
}

export function getStream(socketPath: string, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, resolve);
    req.on('error', (err: NodeJS.ErrnoException) => reject(new AgentUnreachable(socketPath, err.code ?? err.message)));
    req.end();
  });
}

export async function getJson<T>(socketPath: string, path: string): Promise<T> {
  const res = await getStream(socketPath, path);
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as T & { error?: string };
  if ((res.statusCode ?? 500) >= 400) throw new Error(body.error ?? `HTTP ${res.statusCode}`);
  return body;
}
