import { BpfctlError } from '../errors.ts';
import { type Diagnostic, firstErrorExcerpt } from './diagnostics.ts';

export type { Diagnostic } from './diagnostics.ts';

/** clang failed. `message` is the first error; `detail()` is clang's full output. */
export class CompileError extends BpfctlError {
  readonly diagnostics: Diagnostic[];
  readonly stderr: string;
  readonly source: string;

  constructor(source: string, stderr: string, diagnostics: Diagnostic[], message?: string) {
    const first = diagnostics.find((d) => d.severity === 'error' || d.severity === 'fatal error');
    const errors = diagnostics.filter((d) => d.severity === 'error' || d.severity === 'fatal error').length;
    const more = errors > 1 ? ` (+${errors - 1} more errors)` : '';
    super(
      'E_COMPILE',
      message ?? (first ? `${first.file}:${first.line}:${first.column}: ${first.message}${more}` : `clang failed on ${source}: ${stderr.trim().split('\n')[0] ?? ''}`),
    );
    this.diagnostics = diagnostics;
    this.stderr = stderr;
    this.source = source;
  }

  override detail(): string {
    return `${this.message}\n${this.stderr.trimEnd()}`;
  }

  override excerpt(): string {
    return firstErrorExcerpt(this.stderr);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), source: this.source, diagnostics: this.diagnostics };
  }
}
