/**
 * The root of every error bpfctl raises. A dependency-free leaf module: every layer (loader
 * included) may import it, so one `instanceof BpfctlError` check in the CLI covers them all.
 *
 * `message` is one line a person can act on; `detail()` returns the long form (a full verifier
 * log, clang's diagnostics, ...) for `--verbose` and `--json`.
 */
export class BpfctlError extends Error {
  /** Stable machine-readable code, e.g. "E_POLICY", "E_VERIFIER", "E_COMPILE". */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** The long form of the error; defaults to the message. */
  detail(): string {
    return this.message;
  }

  /**
   * Lines a person needs to see to act, printed under the message even without --verbose: the
   * source line with a caret under a syntax error, clang's first diagnostic. Empty by default.
   */
  excerpt(): string {
    return '';
  }

  /** What `--json` prints for this error. Subclasses add their own fields. */
  toJSON(): Record<string, unknown> {
    return { error: this.name, code: this.code, message: this.message };
  }
}
