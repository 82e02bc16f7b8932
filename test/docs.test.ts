/**
 * The reference under docs/ is made from the schemas that read the files (`npm run docs`,
 * src/docs/reference.ts): the committed pages and JSON Schemas must be what it makes now, so
 * that a key added, changed or described in a schema cannot leave them behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from './support/env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITE = fileURLToPath(new URL('../src/docs/write.js', import.meta.url));

test('docs/ holds what `npm run docs` writes now', () => {
  // The script `npm run docs` runs after compiling, in a folder of its own.
  const dir = mkdtempSync(join(tmpdir(), 'weft-docs-'));
  try {
    const r = spawnSync(process.execPath, [WRITE], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const made = readdirSync(join(dir, 'docs')).sort();
    assert.ok(made.length > 0, 'it writes something');
    const stale: string[] = [];
    for (const f of made) {
      let committed: string | null;
      try {
        committed = readFileSync(join(ROOT, 'docs', f), 'utf8');
      } catch {
        committed = null;
      }
      if (committed !== readFileSync(join(dir, 'docs', f), 'utf8')) stale.push(`docs/${f}${committed === null ? ' (missing)' : ''}`);
    }
    // A page or schema it no longer makes (of a kind that is gone) is stale too.
    for (const f of readdirSync(join(ROOT, 'docs'))) {
      if (/\.schema\.json$|-file\.md$/.test(f) && !made.includes(f)) stale.push(`docs/${f} (no longer made)`);
    }
    assert.deepEqual(stale, [], `${stale.join(', ')} differ from what the schemas make now: run npm run docs, and commit what it writes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
