/**
 * Policy files to IR: the loading layer above src/ir. It imports the user's module (tsx runs
 * TypeScript directly) and hands its default export to `lowerPolicy`, which is a pure function
 * of that value; the file system and the module loader are touched only here.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { BpfctlError } from '../errors.ts';
import type { FunctionIR } from '../ir/chain.ts';
import { lowerPolicy, type PolicyIR } from '../ir/policy.ts';

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
 * Imports a user's policy.ts (bpfctl runs under tsx, so TypeScript loads directly) and lowers its
 * default export.
 * @throws PolicyLoadError when the file is missing, fails to import or exports no policy.
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
    // The file's version in the URL: ESM caches modules by URL for the life of the process, and a
    // long-lived process (the supervisor applying an edited policy) must read the file as it is now.
    const url = `${pathToFileURL(abs).href}?v=${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)}`;
    try {
      mod = (await import(url)) as Record<string, unknown>;
    } catch (err) {
      // A policy in a directory whose package.json is not "type": "module" (or that has none) is
      // compiled as CommonJS, which import() under the global tsx hook refuses ("require() of ES
      // Module in a cycle"); tsx's own tsImport loads it.
      if (!/require\(\) ES Module|ERR_REQUIRE/.test(String((err as Error)?.message ?? err))) throw err;
      mod = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    }
    // CommonJS interop wraps the module's exports in `default`.
    const inner = mod.default as Record<string, unknown> | undefined;
    if (inner && typeof inner === 'object' && 'default' in inner && !('name' in inner)) mod = inner;
  } catch (err) {
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
