/**
 * The root of every error bpfctl raises. A dependency-free leaf module: every layer (loader
 * included) may import it, so one `instanceof BpfctlError` check in the CLI covers them all.
 *
 * `message` is one line a person can act on; `detail()` returns the long form (a full verifier
 * log, clang's diagnostics, ...) for `--verbose` and `--json`.
 */
const BRAND = Symbol.for('bpfctl.error');

export class BpfctlError extends Error {
  /** Stable machine-readable code, e.g. "E_POLICY", "E_VERIFIER", "E_COMPILE". */
  readonly code: string;

  /**
   * `instanceof` that holds across two copies of bpfctl's modules in one process (a CommonJS and
   * an ES module instance of the same file, or two installed copies): an error is an instance of
   * a bpfctl error class when its prototype chain has a bpfctl error class of the same name.
   */
  // `this` is the class on the right of `instanceof` (a subclass too), not BpfctlError itself.
  static override [Symbol.hasInstance](x: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: the class being asked about
    if (Function.prototype[Symbol.hasInstance].call(this, x)) return true;
    if (typeof x !== 'object' || x === null) return false;
    for (let p = Object.getPrototypeOf(x); p; p = Object.getPrototypeOf(p)) {
      const c = (p as { constructor?: { name?: string; [BRAND]?: true } }).constructor;
      // biome-ignore lint/complexity/noThisInStatic: the class being asked about
      if (c?.[BRAND] && c.name === this.name) return true;
    }
    return false;
  }

  /** Marks bpfctl's error classes (inherited by every subclass). */
  static readonly [BRAND] = true;

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
