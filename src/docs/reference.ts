/**
 * The reference of the files a person writes for Weft, made from the zod schemas that read
 * them, so that the reference cannot say other than what is checked:
 *
 *   docs/lab.schema.json     the lab file's JSON Schema (`weft schema lab`, `weft lab schema`)
 *   docs/lab-file.md         every key of a lab file: its type, default, text and an example
 *   docs/apply.schema.json   the same for `weft apply` files (`weft schema apply`)
 *   docs/apply-file.md
 *
 * `npm run docs` writes them (src/docs/write.ts); test/docs.test.ts fails when the committed
 * files differ from what this makes.
 */
import { stringify } from 'yaml';
import { applyFileJsonSchema } from '../controller/apply.js';
import { labFileJsonSchema } from '../lab/topology.js';

/** A JSON Schema as zod writes one (draft-07): the parts the reference reads. */
interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  examples?: unknown[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

/** The files a person writes for Weft that have a schema, and `weft schema KIND`'s KINDs. */
export const SCHEMA_KINDS = ['lab', 'apply'] as const;
export type SchemaKind = (typeof SCHEMA_KINDS)[number];

/** A file kind's JSON Schema as docs/KIND.schema.json holds it and `weft schema KIND`
 * prints it. */
export function schemaText(kind: SchemaKind): string {
  return `${JSON.stringify(kind === 'lab' ? labFileJsonSchema() : applyFileJsonSchema(), null, 2)}\n`;
}

/** The files under docs/ and what each must hold, in the order they are written. */
export function referenceFiles(): Array<{ path: string; text: string }> {
  const lab = labFileJsonSchema();
  const apply = applyFileJsonSchema();
  return [
    { path: 'docs/lab.schema.json', text: schemaText('lab') },
    { path: 'docs/apply.schema.json', text: schemaText('apply') },
    {
      path: 'docs/lab-file.md',
      text: page(lab as JsonSchema, {
        title: 'The lab file',
        intro: [
          '`weft lab up FILE` builds the lab a YAML file describes: hosts (network namespaces running a Weft agent), the networks between them, and VMs on those networks, all on this machine. The whole file is checked before anything is built, and every problem is named by its field, one line each (`lab.yaml: vms[2].ip: ...`); nothing is built until there is none.',
          'The smallest lab has a name and one host; [examples/quickstart.yaml](../examples/quickstart.yaml) is a whole one to start from (`weft lab up examples/quickstart.yaml`).',
          '## Checking a file as you write it',
          '[lab.schema.json](lab.schema.json) is the file\'s JSON Schema (`weft lab schema` prints it, as does `weft schema lab`). An editor with the YAML language server (VS Code\'s YAML extension by Red Hat, Neovim\'s and Emacs\'s LSP clients, and others) checks a file against it, completes its keys and shows their texts, when the file\'s first line names it:',
          '```yaml\n# yaml-language-server: $schema=../docs/lab.schema.json\n```',
          'The path is relative to the YAML file (that line is the one in examples/); an absolute path works too, or a copy beside the file (`weft lab schema > lab.schema.json`, then `$schema=lab.schema.json`). The schema checks each key\'s shape; what only the whole file can say (names given twice, an address outside its network\'s prefix) `weft lab up` says.',
          '## Keys',
        ],
        pathExample: '`vms[].ip` is the `ip` of each entry of the `vms` list, `vms[].trunk.VID.ip` the `ip` under any VLAN ID of a VM\'s `trunk`',
      }),
    },
    {
      path: 'docs/apply-file.md',
      text: page(apply as JsonSchema, {
        title: 'The apply file',
        intro: [
          '`weft apply -f FILE` makes a controller hold the resources a YAML file names: it prints the plan (what it creates, changes and, with `--prune`, deletes), checks every rule in a dry run, then carries the plan out entirely or not at all. Each list\'s entries are the bodies the controller\'s API takes for that kind (its OpenAPI document is at `/v1/openapi.json`), and each name is given once per list. A problem is named by its field (`apply.yaml: ports[0].host: ...`). `weft export > net.yaml` writes what a controller holds as such a file, to start from.',
          '## Checking a file as you write it',
          '[apply.schema.json](apply.schema.json) is the file\'s JSON Schema (`weft schema apply` prints it). An editor with the YAML language server (VS Code\'s YAML extension by Red Hat, and others) checks a file against it, completes its keys and shows their texts, when the file\'s first line names it, by a path relative to the file or an absolute one:',
          '```yaml\n# yaml-language-server: $schema=PATH/TO/weft/docs/apply.schema.json\n```',
          'or with a copy beside the file: `weft schema apply > apply.schema.json`, then `$schema=apply.schema.json`. The schema checks each key\'s shape; the controller checks the rest (names it does not have, addresses outside their subnets) in the dry run before the plan is printed.',
          '## Keys',
        ],
        pathExample: '`ports[].ips` is the `ips` of each entry of the `ports` list, `ports[].vlans[].vid` the `vid` of each VLAN of a trunk port',
      }),
    },
  ];
}

function page(schema: JsonSchema, p: { title: string; intro: string[]; pathExample: string }): string {
  const out = [
    '<!-- Made by `npm run docs` from the schema the file is read with; edit the schema\'s .describe() texts, not this page. -->',
    `# ${p.title}`,
    '',
    ...(schema.description ? [schema.description, ''] : []),
    ...p.intro.flatMap((para) => [para, '']),
    `Each key below is written as its path in the file: ${p.pathExample}. A key not marked *required* may be left out.`,
    '',
  ];
  for (const [key, sub] of Object.entries(schema.properties ?? {})) {
    out.push(`### \`${key}\``, '');
    entries(out, key, sub, (schema.required ?? []).includes(key));
    out.push('');
  }
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

/** One list item for the key at `path`, then one for each key inside it. */
function entries(out: string[], path: string, s: JsonSchema, required: boolean): void {
  const facts = [typeText(s), required ? '*required*' : null, s.default !== undefined ? `default \`${inline(s.default)}\`` : null].filter(Boolean);
  const example = exampleOf(s);
  const leaf = path.split(/[.[\]]+/).filter(Boolean).pop()!;
  const text = [s.description ?? '', example !== undefined ? `Example: \`${leaf}: ${inline(example)}\`` : ''].filter(Boolean).join(' ');
  out.push(`- **\`${path}\`** (${facts.join(', ')})${text ? `: ${text}` : ''}`);
  for (const [variant, v] of (s.oneOf ?? s.anyOf ?? []).entries()) {
    if (v.properties) {
      const tag = Object.entries(v.properties).find(([, x]) => x.const !== undefined);
      out.push(`  - ${tag ? `with \`${tag[0]}: ${inline(tag[1].const)}\`` : `or (form ${variant + 1})`}:`);
      const sub: string[] = [];
      children(sub, path, v);
      out.push(...sub.map((l) => `    ${l}`));
    }
  }
  children(out, path, s);
}

function children(out: string[], path: string, s: JsonSchema): void {
  if (s.properties) {
    for (const [key, sub] of Object.entries(s.properties)) entries(out, `${path}.${key}`, sub, (s.required ?? []).includes(key));
  } else if (s.items) {
    if (s.items.properties || s.items.oneOf || s.items.anyOf) children(out, `${path}[]`, s.items);
  } else if (typeof s.additionalProperties === 'object' && s.additionalProperties.properties) {
    children(out, `${path}.${s.propertyNames?.pattern === '^\\d{1,4}$' ? 'VID' : 'KEY'}`, s.additionalProperties);
  }
}

function typeText(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${inline(s.const)}\``;
  if (s.enum) return s.enum.map((v) => `\`${inline(v)}\``).join(' or ');
  const variants = s.oneOf ?? s.anyOf;
  if (variants) return `one of: ${variants.map(typeText).join('; ')}`;
  const range = (lo?: number, hi?: number) => (lo !== undefined && hi !== undefined ? ` ${lo}..${hi}` : lo !== undefined ? ` >= ${lo}` : hi !== undefined ? ` <= ${hi}` : '');
  switch (s.type) {
    case 'integer':
    case 'number':
      return `${s.type}${range(s.minimum, s.maximum)}`;
    case 'array': {
      const n = s.minItems !== undefined || s.maxItems !== undefined ? `,${range(s.minItems, s.maxItems)} entries` : '';
      return `list of ${s.items ? plural(typeText(s.items)) : 'values'}${n}`;
    }
    case 'object':
      if (s.properties) return 'object';
      if (typeof s.additionalProperties === 'object') return `map of ${s.propertyNames?.pattern === '^\\d{1,4}$' ? 'VLAN ID' : 'key'} to ${typeText(s.additionalProperties)}`;
      return 'object';
    case 'string':
      return s.pattern ? `string matching \`${s.pattern}\`` : 'string';
    default:
      return s.type === undefined ? 'any' : Array.isArray(s.type) ? s.type.join(' or ') : s.type;
  }
}

const plural = (t: string) => t.split(' or ').map((p) => p.replace(/^(object|string|integer|number|boolean)\b/, '$1s')).join(' or ');

/** The schema's own example; for a choice, the first value other than the default. */
function exampleOf(s: JsonSchema): unknown {
  if (s.examples?.length) return s.examples[0];
  if (s.type === 'boolean') return s.default === undefined ? true : !s.default;
  if (s.enum) return s.enum.find((v) => v !== s.default) ?? s.enum[0];
  return undefined;
}

/** A value as YAML on one line (flow style), as it would be written in the file. */
function inline(value: unknown): string {
  return stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trim();
}
