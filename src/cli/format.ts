/**
 * What the CLI prints: plain-text tables, lines, JSON and YAML for the terminal. Whatever
 * comes from the controller or an agent is shown with its control and bidi characters
 * escaped (`\x1b`, `\n`, `\u202e`), so that no stored name, agent's report or error text,
 * however old or however it got there, can clear the screen, move the cursor, forge a line
 * or reorder what is shown. JSON and YAML stay what they mean: the escapes are their own.
 */
import { Document, visit } from 'yaml';
import { CONTROL_CHARACTERS, printable } from '../config/fields.js';

export { printable };

export function table(headers: string[], rows: string[][]): string {
  const shown = rows.map((r) => r.map((c) => printable(c ?? '')));
  const widths = headers.map((h, i) => Math.max(h.length, ...shown.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(headers.map(printable)), ...shown.map(line)].join('\n');
}

export function drops(d: Record<string, number | undefined>): string {
  const parts = Object.entries(d).filter(([, n]) => (n ?? 0) > 0).map(([r, n]) => `${r}=${n}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}

/** The characters JSON.stringify leaves as they are but a terminal acts on: C1 controls,
 * the line separators and the bidi formatting characters. */
const JSON_UNESCAPED = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const uEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** JSON, indented, with every control and bidi character escaped (`\u202e`): the same
 * value to a parser, and nothing a terminal acts on. */
export function jsonText(data: unknown): string {
  return JSON.stringify(data, null, 2).replace(JSON_UNESCAPED, uEscape);
}

/** YAML with every string that holds a control or bidi character double-quoted and
 * escaped: the same value to a parser, and nothing a terminal acts on. */
export function yamlText(data: unknown): string {
  const doc = new Document(data);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && CONTROL_CHARACTERS.test(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  // Inside double quotes, which these strings are, `\u202e` is YAML's own escape.
  return doc.toString().replace(JSON_UNESCAPED, uEscape);
}
