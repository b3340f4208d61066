/**
 * Policy files to IR: the loading layer above src/ir. It imports the user's module (bundled by
 * esbuild when TypeScript: ts-module.ts) and hands its default export to `lowerPolicy`, which is a pure function
 * of that value; the file system and the module loader are touched only here.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BpfctlError } from '../errors.ts';
import type { FunctionIR } from '../ir/chain.ts';
import { lowerPolicy, type PolicyIR } from '../ir/policy.ts';
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
  return lowerPolicy(await importPolicySpec(file));
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
