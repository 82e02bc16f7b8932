/**
 * The JSON Schema of a file a person writes, from the zod schema that reads it: what editors
 * check the file with (the YAML language server reads a `# yaml-language-server: $schema=`
 * line), and what the reference pages under docs/ are made from.
 */
import { z } from 'zod';

/**
 * The schema of what is written (zod's `io: 'input'`), as draft-07, which editors' YAML
 * language servers read. zod leaves out the examples and defaults of a schema that
 * transforms, as they might be of what it makes rather than of what it reads; ours are always
 * written forms (a canonical address is one), so they are kept.
 */
export function writtenJsonSchema(schema: z.ZodType, title: string): Record<string, unknown> {
  const json = z.toJSONSchema(schema, {
    io: 'input',
    target: 'draft-7',
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => {
      const examples = z.globalRegistry.get(zodSchema)?.examples;
      if (examples !== undefined && jsonSchema.examples === undefined) jsonSchema.examples = examples as never;
      const def = zodSchema._zod.def as { type: string; defaultValue?: unknown };
      if (def.type === 'default' && jsonSchema.default === undefined) jsonSchema.default = JSON.parse(JSON.stringify(def.defaultValue));
    },
  });
  return { ...json, title };
}
