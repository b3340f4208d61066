/** Small helpers for emitting C text. */

/** Text safe inside a C block comment: user-chosen names must not be able to end it. */
export function commentSafe(text: string): string {
  return text.replace(/\*\//g, '*\\/').replace(/\/\*/g, '/\\*');
}

/** Joins blocks with one blank line between them and a final newline. */
export function joinBlocks(blocks: readonly string[]): string {
  return `${blocks.map((b) => b.replace(/\n+$/, '')).join('\n\n')}\n`;
}

/** Pads every row of a table of strings to column widths, for readable comment tables. */
export function alignColumns(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '));
}
