/** One clang diagnostic, as clang prints it: `file:line:col: severity: message`. */
export interface Diagnostic {
  file: string;
  line: number;
  column: number;
  severity: 'error' | 'fatal error' | 'warning' | 'note';
  message: string;
}

const LINE = /^(.+?):(\d+):(\d+): (fatal error|error|warning|note): (.*)$/;

/** Parse clang's stderr into diagnostics; context lines (source excerpt, caret) are skipped. */
export function parseDiagnostics(stderr: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const raw of stderr.split('\n')) {
    const m = LINE.exec(raw.trimEnd());
    if (!m) continue;
    out.push({
      file: m[1]!,
      line: Number(m[2]),
      column: Number(m[3]),
      severity: m[4] as Diagnostic['severity'],
      message: m[5]!,
    });
  }
  return out;
}

/**
 * clang's own lines for its first error: the source line and caret under it (and any fix-it),
 * without the header, which the error message already is. At most `max` lines.
 */
export function firstErrorExcerpt(stderr: string, max = 6): string {
  const lines = stderr.split('\n');
  const start = lines.findIndex((l) => {
    const m = LINE.exec(l.trimEnd());
    return m !== null && (m[4] === 'error' || m[4] === 'fatal error');
  });
  if (start < 0) return '';
  const out: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (LINE.exec(l.trimEnd()) || /^\d+ errors? generated/.test(l) || out.length >= max) break;
    out.push(l);
  }
  return out.join('\n').trimEnd();
}
