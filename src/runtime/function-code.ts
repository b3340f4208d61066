/**
 * What an instance of a function runs, built before anything is loaded so a bad handler fails
 * `bpfctl build`/`run`/`apply` with its own error and leaves nothing behind: a C function is
 * compiled with the C runtime (cached), a TypeScript one is bundled to JavaScript (cached) and must
 * have a default export, so instances import plain JavaScript and no TypeScript tooling runs in them.
 */
import { existsSync } from 'node:fs';
import { BpfctlError } from '../errors.ts';
import type { FunctionIR } from '../ir/chain.ts';
import { buildModule, needsBuild, resolveHandler } from '../load/index.ts';
import { buildCFunction } from './c/build.ts';

export interface FunctionCode {
  /** The handler as the policy names it, resolved (what hashes and messages refer to). */
  source: string;
  /** What a TypeScript instance imports: the bundle, or the source when it is JavaScript. */
  handler: string;
  /** The built executable of a C function (null: TypeScript/JavaScript). */
  exe: string | null;
  maxInFlight: number | null;
}

/** A handler that is missing or exports no function. */
export class HandlerError extends BpfctlError {
  readonly function: string;
  readonly file: string;
  constructor(fn: string, file: string, message: string) {
    super('E_HANDLER', message);
    this.function = fn;
    this.file = file;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), function: this.function, file: this.file };
  }
}

/**
 * Builds one function's code. `policyFile` is what its handler path is relative to.
 * @throws HandlerError, SourceError (TypeScript syntax, with file:line:col), CFunctionBuildError
 */
export async function buildFunctionCode(policyFile: string, f: Pick<FunctionIR, 'name' | 'handler' | 'language' | 'maxInFlight'>): Promise<FunctionCode> {
  const source = resolveHandler(policyFile, f);
  const where = `functions.${f.name}.handler`;
  if (f.language === 'c') {
    if (!existsSync(source)) throw new HandlerError(f.name, source, `${where}: handler file not found: ${source}`);
    return { source, handler: source, exe: await buildCFunction(source), maxInFlight: f.maxInFlight };
  }
  return { source, handler: await bundleHandler(f.name, where, source, 'export default async (req) => ...'), exe: null, maxInFlight: f.maxInFlight };
}

/**
 * What an instance imports for a TypeScript/JavaScript handler: the bundle (cached) of a file that
 * needs building, with its default export checked, or the JavaScript file itself. `where` is the
 * policy path named in errors, `example` the default export the message suggests.
 * @throws HandlerError, SourceError (file:line:col)
 */
export async function bundleHandler(fn: string, where: string, source: string, example: string): Promise<string> {
  if (!existsSync(source)) throw new HandlerError(fn, source, `${where}: handler file not found: ${source}`);
  if (!needsBuild(source)) return source;
  const built = await buildModule(source);
  if (!built.exports.includes('default')) throw new HandlerError(fn, source, `${where}: ${source} has no default export (write: ${example})`);
  return built.js;
}
