/**
 * What installing Weft takes. The Node.js it needs, checked before CI installs anything:
 * `.ci/check-node` takes the version to judge (the `node` on the PATH when given none),
 * passes the versions that package.json's `engines` allows, and refuses every other with
 * the range and the version. And a decision in `allowScripts` for every dependency with an
 * install script, so that `npm ci` runs the ones approved and asks about none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CHECK = fileURLToPath(new URL('../../.ci/check-node', import.meta.url));
const RUN = fileURLToPath(new URL('../../.ci/run', import.meta.url));
const PACKAGE = fileURLToPath(new URL('../../package.json', import.meta.url));
const LOCK = fileURLToPath(new URL('../../package-lock.json', import.meta.url));

const readPackage = () => JSON.parse(readFileSync(PACKAGE, 'utf8')) as { engines: { node: string }; allowScripts: Record<string, boolean> };
const check = (...args: string[]) => spawnSync('bash', [CHECK, ...args], { encoding: 'utf8' });

test('.ci/check-node passes what package.json\'s engines allows and refuses the rest, saying why', () => {
  const range = readPackage().engines.node;
  assert.equal(range, '^20.19.0 || >=22.12.0', 'vite 7\'s range: the strictest of the dependencies\' engines');
  for (const v of ['v20.19.0', 'v20.20.2', 'v22.12.0', 'v23.0.0', 'v24.11.1', '20.19.1']) {
    const r = check(v);
    assert.equal(r.status, 0, `${v}: ${r.stderr}`);
    assert.equal(r.stderr, '');
  }
  for (const v of ['v18.20.8', 'v20.11.1', 'v20.18.3', 'v21.7.3', 'v22.11.0']) {
    const r = check(v);
    assert.equal(r.status, 1, `${v} refused`);
    assert.equal(r.stderr, `Weft needs Node.js >= 20.19 on 20, or >= 22.12 (vite 7 needs ${range}); this is ${v}\n`);
  }
  assert.match(check('nineteen').stderr, /Weft needs Node\.js >= 20\.19 .*; "nineteen" is not a Node\.js version/);
  // No version given: the node on the PATH, this one.
  assert.equal(check().status, 0, `this Node.js, ${process.version}, passes`);
});

test('.ci/run checks Node.js first, before it installs anything', () => {
  const lines = readFileSync(RUN, 'utf8').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  const at = (command: string) => lines.findIndex((l) => l.trim().startsWith(command));
  assert.ok(at('.ci/check-node') > 0, '.ci/run runs .ci/check-node');
  assert.ok(at('.ci/check-node') < at('apt-get') && at('.ci/check-node') < at('npm ci'), lines.join('\n'));
  assert.match(lines.slice(0, at('.ci/check-node')).join('\n'), /set -euo pipefail/, 'a refusal ends the run');
});

test('every dependency with an install script has a decision in allowScripts', () => {
  const lock = JSON.parse(readFileSync(LOCK, 'utf8')) as { packages: Record<string, { version?: string; hasInstallScript?: boolean }> };
  const { allowScripts } = readPackage();
  const decided = new Set(Object.keys(allowScripts).map((k) => k.replace(/(.)@.*$/, '$1')));
  const scripted = Object.entries(lock.packages).filter(([path, p]) => path !== '' && p.hasInstallScript).map(([path]) => path.replace(/^.*node_modules\//, ''));
  assert.ok(scripted.length > 0, 'the lockfile marks packages with install scripts');
  assert.deepEqual(scripted.filter((name) => !decided.has(name)), [], 'npm install-scripts approve NAME, or deny NAME, and say why in the README');
  // better-sqlite3's fetches or builds its SQLite module; esbuild's only checks and links the
  // binary of @esbuild/linux-x64, which vite finds without it.
  assert.equal(allowScripts['better-sqlite3'], true);
  assert.equal(allowScripts.esbuild, false);
});
