/**
 * A newcomer's lab file, as `weft lab up` meets it (issue 24): every mistake is refused
 * before anything is built, one `FILE: FIELD: WHY` line each, exit 2; the reference (the
 * JSON Schema, the docs page) is one command or one `--help` away; the examples carry the
 * line that has an editor check them.
 *
 * These run the CLI as a child process and need no root: the checks come before the first
 * namespace. Each also looks that no namespace or state of the lab appeared, and removes
 * the lab if one did (when a check is broken, `lab up` goes on to build as root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { readApplyFile } from '../src/cli/apply.js';
import { schemaText } from '../src/docs/reference.js';
import { LAB_ROOT } from '../src/lab/lab.js';
import { loadTopology } from '../src/lab/topology.js';
import { test } from './support/env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const weft = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: ROOT });

/** A lab name of this test process: a letter per case, so that no two runs share one. */
const labName = (c: string) => `lf${process.pid % 100_000}${c}`;

/** What of lab `name` exists on this machine: its namespaces, and its state directory. */
function traces(name: string): string[] {
  const ns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`weft-${name}-`)) : [];
  return [...ns.map((n) => `namespace ${n}`), ...(existsSync(join(LAB_ROOT, name)) ? [`${join(LAB_ROOT, name)}`] : [])];
}

/**
 * Writes `text` (with NAME for the lab's name) to a file, runs `weft lab up FILE`, and checks
 * that it exits 2 with exactly `lines` (FILE: prefixed) on standard error, printed nothing on
 * standard output (no "building lab"), and left nothing of the lab behind.
 */
function refused(c: string, text: string, lines: string[]): void {
  const name = labName(c);
  const dir = mkdtempSync(join(tmpdir(), 'weft-lab-file-'));
  const file = join(dir, 'lab.yaml');
  writeFileSync(file, text.replaceAll('NAME', name));
  assert.deepEqual(traces(name), [], `lab ${name} exists before the test`);
  try {
    const r = weft('lab', 'up', file);
    assert.equal(r.stdout, '', 'nothing is reported as built');
    assert.equal(r.stderr, lines.map((l) => `${file}: ${l}\n`).join(''));
    assert.equal(r.status, 2);
    assert.deepEqual(traces(name), [], 'nothing of the lab was made');
  } finally {
    if (traces(name).length > 0) weft('lab', 'down', name);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('two networks of one name are refused, naming the second', () => {
  refused('a', `name: NAME
hosts: [{ name: h1 }]
networks: [{ name: blue, vni: 100 }, { name: blue, vni: 200 }]
vms: [{ name: a, host: h1, network: blue, ip: 10.50.0.1/24 }]
`, ['networks[1].name: blue is the name of networks[0] already']);
});

test('a VM address that is no address (10.50.0.300/24) is refused before the build, not by ip halfway through it', () => {
  refused('b', `name: NAME
hosts: [{ name: h1 }]
networks: [{ name: blue }]
vms:
  - { name: a, host: h1, network: blue, ip: 10.50.0.1/24 }
  - { name: b, host: h1, network: blue, ip: 10.50.0.2/24 }
  - { name: c, host: h1, network: blue, ip: 10.50.0.300/24 }
`, ['vms[2].ip: "10.50.0.300/24" is not an IPv4 address with a prefix length such as 10.0.0.5/24 (four numbers 0-255, no leading zeros; a length 1-32)']);
});

test('an underlay /33 is no prefix; a /31 has no room for a host', () => {
  refused('c', `name: NAME
underlay: { subnet: 10.99.0.0/33 }
hosts: [{ name: h1 }]
`, ['underlay.subnet: "10.99.0.0/33" is not an IPv4 prefix such as 10.0.0.0/24']);
  refused('d', `name: NAME
underlay: { subnet: 10.99.0.0/31 }
hosts: [{ name: h1 }]
`, ['underlay.subnet: 10.99.0.0/31 has 0 host addresses, and the lab needs 1 (1 host)']);
});

test('two VMs with one address on a network are refused before the build, naming the second and the first', () => {
  refused('e', `name: NAME
controller: true
hosts: [{ name: h1 }, { name: h2 }]
networks: [{ name: blue }]
vms:
  - { name: a, host: h1, network: blue, ip: 10.50.0.1/24 }
  - { name: b, host: h2, network: blue, ip: 10.50.0.1/24 }
`, ['vms[1].ip: 10.50.0.1 is the address of vms[0] (a) on network blue already']);
});

test('the whole file is checked: every problem of a kind is listed at once, in the file\'s order', () => {
  // Shape first: each key that is not what it should be.
  refused('f', `name: NAME
underlay: { subnet: 10.99.0.0/33 }
hosts: [{ name: h1 }]
networks: [{ name: blue }]
vms: [{ name: c, host: h1, network: blue, ip: 10.50.0.300/24 }]
`, [
    'underlay.subnet: "10.99.0.0/33" is not an IPv4 prefix such as 10.0.0.0/24',
    'vms[0].ip: "10.50.0.300/24" is not an IPv4 address with a prefix length such as 10.0.0.5/24 (four numbers 0-255, no leading zeros; a length 1-32)',
  ]);
  // Then how the parts fit together, every problem again.
  refused('g', `name: NAME
hosts: [{ name: h1 }]
networks: [{ name: blue }, { name: blue }]
vms:
  - { name: a, host: h1, network: blue, ip: 10.50.0.1/24 }
  - { name: b, host: h1, network: blue, ip: 10.50.0.1/24 }
`, [
    'networks[1].name: blue is the name of networks[0] already',
    'vms[1].ip: 10.50.0.1 is the address of vms[0] (a) on network blue already',
  ]);
});

test('weft lab schema and weft schema KIND print the committed JSON Schemas; another kind is a usage mistake', () => {
  const lab = readFileSync(join(ROOT, 'docs', 'lab.schema.json'), 'utf8');
  const apply = readFileSync(join(ROOT, 'docs', 'apply.schema.json'), 'utf8');
  for (const [args, want] of [[['lab', 'schema'], lab], [['schema', 'lab'], lab], [['schema', 'apply'], apply]] as const) {
    const r = weft(...args);
    assert.equal(r.status, 0, `weft ${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, want, `weft ${args.join(' ')} prints docs/${args.at(-1) === 'apply' ? 'apply' : 'lab'}.schema.json`);
    assert.equal((JSON.parse(r.stdout) as { $schema: string }).$schema, 'http://json-schema.org/draft-07/schema#');
  }
  const bad = weft('schema', 'topology');
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'weft schema: "topology" is no kind of file; give lab or apply\n');
});

test('weft lab up --help and weft apply --help name the reference page and the schema command', () => {
  const cases: Array<[string[], string, string]> = [[['lab', 'up', '--help'], 'lab-file.md', 'weft lab schema'], [['apply', '--help'], 'apply-file.md', 'weft schema apply']];
  for (const [args, page, command] of cases) {
    const r = weft(...args);
    assert.equal(r.status, 0);
    const path = new RegExp(`: (/\\S+/docs/${page.replace('.', '\\.')})$`, 'm').exec(r.stdout)?.[1];
    assert.ok(path, `weft ${args.join(' ')} names docs/${page}:\n${r.stdout}`);
    assert.ok(existsSync(path), `${path} exists`);
    assert.ok(r.stdout.includes(`\`${command}\` prints it`), `weft ${args.join(' ')} names ${command}`);
    assert.ok(r.stdout.includes('# yaml-language-server: $schema='), `weft ${args.join(' ')} shows the editor line`);
  }
});

test('every example names its JSON Schema on its first line, and is a valid file of that kind', () => {
  const examples = readdirSync(join(ROOT, 'examples')).filter((f) => /\.ya?ml$/.test(f));
  assert.ok(examples.length > 0);
  for (const f of examples) {
    const file = join(ROOT, 'examples', f);
    const first = readFileSync(file, 'utf8').split('\n')[0];
    const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
    assert.ok(m, `examples/${f}'s first line names its schema: # yaml-language-server: $schema=../docs/KIND.schema.json (it is ${JSON.stringify(first)})`);
    const schema = resolve(dirname(file), m[1]);
    const kind = /^(lab|apply)\.schema\.json$/.exec(schema.slice(join(ROOT, 'docs/').length))?.[1] as 'lab' | 'apply' | undefined;
    assert.ok(schema.startsWith(join(ROOT, 'docs/')) && kind, `examples/${f}: ${m[1]} is docs/lab.schema.json or docs/apply.schema.json, relative to the file`);
    assert.equal(readFileSync(schema, 'utf8'), schemaText(kind));
    // The language server reads the line as a comment; the file is still what it was.
    assert.ok(parse(readFileSync(file, 'utf8')) !== null);
    if (kind === 'lab') loadTopology(file);
    else readApplyFile(file);
  }
});
