/**
 * Line splitting for child output: instances log to stderr, and the supervisor forwards whole
 * lines (never half of one interleaved with another process's) and keeps the last few, so a
 * function that dies at startup can be reported with its own last words.
 */
import type { Readable } from 'node:stream';

export class Tail {
  private readonly lines: string[] = [];
  constructor(private readonly max = 20) {}

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }

  text(): string {
    return this.lines.join('\n');
  }
}

/** Calls `onLine` for every complete line of `stream` (and for a last unterminated one at its end). */
export function eachLine(stream: Readable | null | undefined, onLine: (line: string) => void): void {
  if (!stream) return;
  let carry = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (carry + chunk).split('\n');
    carry = parts.pop() ?? '';
    for (const p of parts) onLine(p);
  });
  stream.on('end', () => {
    if (carry) onLine(carry);
    carry = '';
  });
  // A pipe to a dying child can fail; the exit event reports the death, not this.
  stream.on('error', () => {});
}
