/**
 * What validation reports: every problem with the path to it. A leaf of src/ir (it imports only
 * the shared error base), so every part of the IR can throw PolicyError without a cycle.
 */
import { BpfctlError } from '../errors.ts';

export interface PolicyIssue {
  path: string;
  message: string;
}

/**
 * A policy that does not validate. `path` points at the first problem (`routes['/hello'][1]`);
 * `issues` holds all of them, and `detail()` lists them one per line.
 */
export class PolicyError extends BpfctlError {
  readonly path: string;
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[], options?: { policy?: string; cause?: unknown }) {
    const first = issues[0] ?? { path: '(policy)', message: 'invalid policy' };
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
    const where = options?.policy ? `policy ${options.policy}: ` : '';
    super('E_POLICY', `${where}${first.path}: ${first.message}${more}`, { cause: options?.cause });
    this.path = first.path;
    this.issues = issues;
  }

  override detail(): string {
    return this.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path, issues: this.issues };
  }
}
