/**
 * Policy files to IR: the loading layer above src/ir. It imports the user's module (bundled by
 * esbuild when TypeScript: ts-module.ts) and hands its default export to `lowerPolicy`, which is a pure function
 * of that value; the file system and the module loader are touched only here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BpfctlError } from '../errors.ts';
import type { FunctionIR } from '../ir/chain.ts';
import { PolicyError } from '../ir/issues.ts';
import { lowerPolicy, type PolicyIR } from '../ir/policy.ts';
import { locate, parsePath, type SourcePoint } from './locate.ts';
import { importUserModule, SourceError } from './ts-module.ts';

/** A policy file that cannot be imported, or whose default export is not a policy. */
export class PolicyLoadError extends BpfctlError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('E_POLICY_LOAD', message, options);
    this.file = file;
  }
  override detail(): string {
    const c = this.cause as Error | undefined;
    return c?.stack ? `${this.message}\n${c.stack}` : this.message;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file };
  }
}

/**
 * Imports a user's policy.ts and lowers its default export.
 * @throws PolicyLoadError when the file is missing, fails to import or exports no policy.
 * @throws SourceError when it does not compile (file:line:col of each error).
 * @throws PolicyError when the policy does not validate.
 */
export async function loadPolicyFile(file: string): Promise<PolicyIR> {
  const spec = await importPolicySpec(file);
  try {
    return lowerPolicy(spec, { baseDir: dirname(resolve(file)) });
  } catch (err) {
    if (err instanceof PolicyError) throw locatePolicyError(err, resolve(file));
    throw err;
  }
}

/**
 * A PolicyError that also knows where its paths are in the policy file: `excerpt()` shows the
 * first one's line like a compiler (`--> policy.ts:5:18`, the line, a caret), `detail()` lists
 * every problem with its file:line:col. Same code, message, path and issues as the PolicyError.
 */
export class PolicySourceError extends PolicyError {
  readonly file: string;
  readonly locations: readonly (SourcePoint | null)[];
  constructor(err: PolicyError, file: string, locations: readonly (SourcePoint | null)[]) {
    super(err.issues, { cause: err.cause });
    // The message of the error it replaces (which may name the policy).
    this.message = err.message;
    this.file = file;
    this.locations = locations;
  }
  override excerpt(): string {
    const at = this.locations[0];
    if (!at) return '';
    const gutter = `${at.line} | `;
    return [`  --> ${this.file}:${at.line}:${at.column}${at.exact ? '' : ' (nearest literal)'}`, `${gutter}${at.lineText}`, `${' '.repeat(gutter.length + at.column - 1)}^`].join('\n');
  }
  override detail(): string {
    return this.issues.map((i, n) => {
      const at = this.locations[n];
      return `${at ? `${this.file}:${at.line}:${at.column}: ` : ''}${i.path}: ${i.message}`;
    }).join('\n');
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file, locations: this.locations.map((l) => (l ? { line: l.line, column: l.column, exact: l.exact } : null)) };
  }
}

function locatePolicyError(err: PolicyError, file: string): PolicyError {
  let src: string;
  try {
    src = readFileSync(file, 'utf8');
  } catch {
    return err;
  }
  const locations = err.issues.map((i) => locate(src, parsePath(i.path)));
  return locations.some(Boolean) ? new PolicySourceError(err, file, locations) : err;
}

/** The default export of a policy file, unvalidated. @throws PolicyLoadError */
export async function importPolicySpec(file: string): Promise<unknown> {
  const abs = resolve(file);
  if (!existsSync(abs)) throw new PolicyLoadError(abs, `policy file not found: ${abs}`);
  let mod: Record<string, unknown>;
  try {
    mod = await importUserModule(abs);
  } catch (err) {
    // A syntax error names its own file:line:col (maybe in a file the policy imports).
    if (err instanceof SourceError) throw err;
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new PolicyLoadError(abs, `cannot import policy ${abs}: ${why}`, { cause: err });
  }
  if (mod.default === undefined) {
    throw new PolicyLoadError(abs, `policy ${abs} has no default export (write: export default definePolicy({...}))`);
  }
  return mod.default;
}

/** Absolute path of a function's handler: handlers are written relative to the policy file. */
export function resolveHandler(policyFile: string, fn: Pick<FunctionIR, 'handler'>): string {
  return resolve(dirname(resolve(policyFile)), fn.handler);
}
