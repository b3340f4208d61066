import { BpfctlError } from '../errors.ts';

/**
 * A value or layout that does not fit its schema. `path` names the field (`value.hdr.port`,
 * `fn[3]`) so a bad CLI argument or a map/BTF mismatch points at the offending part, and the
 * error is raised before any syscall is made.
 */
export class SchemaError extends BpfctlError {
  readonly path: string;
  readonly problem: string;

  constructor(problem: string, path = '') {
    super('E_SCHEMA', path ? `${path}: ${problem}` : problem);
    this.path = path;
    this.problem = problem;
  }

  /** The same error, one level further out (`within('hdr')` turns `port` into `hdr.port`). */
  within(segment: string): SchemaError {
    if (!segment) return this;
    const sep = !this.path || this.path.startsWith('[') ? '' : '.';
    return new SchemaError(this.problem, `${segment}${sep}${this.path}`);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path };
  }
}

/** Runs `fn`, re-raising a SchemaError from inside it with `segment` prepended to its path. */
export function inField<T>(segment: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SchemaError) throw err.within(segment);
    throw err;
  }
}
