/** Small helpers for emitting C text, shared by the chain and XDP generators. */

/** Text safe inside a C block comment: user-chosen names must not be able to end it (or open another). */
export function commentSafe(text: string): string {
  return text.replace(/\*\//g, '*\\/').replace(/\/\*/g, '/\\*');
}

/** Joins blocks with one blank line between them and a final newline. */
export function joinBlocks(blocks: readonly string[]): string {
  return `${blocks.map((b) => b.replace(/\n+$/, '')).join('\n\n')}\n`;
}
