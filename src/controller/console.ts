/**
 * The web console's files (console/, built by vite into dist/console at `npm ci`), served
 * by the controller at /ui/ on the same listeners as the API, so under the same TLS. The
 * files are public (a page and its script, no data); everything the page shows it reads
 * from the API with the admin token, like the CLI. Read once at start into memory: only
 * those files are ever served, whatever path is asked for.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The page may load only its own files and talk only to this controller. */
const HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export const CONSOLE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'console');

/** The built console's files by URL path under /ui/ ('' for the page), or null when it
 * was not built. */
export function loadConsole(dir = CONSOLE_DIR): Map<string, { body: Buffer; type: string }> | null {
  if (!existsSync(join(dir, 'index.html'))) return null;
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path).split('\\').join('/'), { body: readFileSync(path), type: TYPES[extname(name)] ?? 'application/octet-stream' });
    }
  };
  walk(dir);
  files.set('', files.get('index.html')!);
  return files;
}

/** Serves the console at /ui/ (and sends /ui and / there). */
export function serveConsole(app: Hono, files: Map<string, { body: Buffer; type: string }>): void {
  app.get('/', (c) => c.redirect('/ui/'));
  app.get('/ui', (c) => c.redirect('/ui/'));
  app.get('/ui/*', (c) => {
    const file = files.get(c.req.path.slice('/ui/'.length));
    if (!file) return c.text('not found', 404);
    const cache = c.req.path.startsWith('/ui/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    return c.body(new Uint8Array(file.body), 200, { ...HEADERS, 'content-type': file.type, 'cache-control': cache });
  });
}
