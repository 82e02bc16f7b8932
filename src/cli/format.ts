/** Plain-text tables for the terminal. */

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function drops(d: Record<string, number | undefined>): string {
  const parts = Object.entries(d).filter(([, n]) => (n ?? 0) > 0).map(([r, n]) => `${r}=${n}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}
