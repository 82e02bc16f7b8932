/**
 * `npm run docs`: writes the reference pages and JSON Schemas of src/docs/reference.ts into
 * docs/, from the repository's root (where npm runs it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { referenceFiles } from './reference.js';

for (const f of referenceFiles()) {
  mkdirSync(dirname(f.path), { recursive: true });
  writeFileSync(f.path, f.text);
  console.log(`wrote ${f.path}`);
}
