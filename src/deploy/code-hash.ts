/**
 * Content hashes of a policy's handlers, so `diff` and `apply` can tell a function whose code
 * changed from one that merely kept its path: the handler file and every local file it imports or
 * includes (src/load/local-imports.ts), so editing a helper module is a code change too. A handler
 * that brings no other file hashes to the sha256 of its bytes, as before helper files counted.
 * Packages it imports are not hashed (they change with an install, not an edit). The handler
 * path, language and maxInFlight are compared apart.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { BpfctlError } from '../errors.ts';
import { formatPath } from '../ir/issues.ts';
import type { PolicyIR } from '../ir/policy.ts';
import { resolveHandler } from '../load/index.ts';
import { localClosure } from '../load/local-imports.ts';

/** A function's handler file cannot be read. `path` is the policy path, e.g. `functions.upper.handler`. */
export class HandlerFileError extends BpfctlError {
  readonly path: string;
  readonly function: string;
  readonly file: string;
  constructor(fn: string, file: string, why: string, options?: { cause?: unknown }) {
    const path = formatPath(['functions', fn, 'handler']);
    super('E_HANDLER', `${path}: ${why}: ${file}`, options);
    this.path = path;
    this.function = fn;
    this.file = file;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path, function: this.function, file: this.file };
  }
}

/** sha256 hex of a handler file's bytes, then of each local file it brings (path and bytes). */
function sha256File(fn: string, file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'handler file not found' : code === 'EISDIR' ? 'handler is a directory, not a file' : `cannot read handler (${code ?? String(err)})`;
    throw new HandlerFileError(fn, file, why, { cause: err });
  }
  const h = createHash('sha256').update(bytes);
  const base = dirname(file);
  // Sorted, so the hash does not depend on the order imports are written in.
  for (const dep of localClosure(file, bytes.toString('utf8')).slice(1).sort()) {
    let content: Buffer;
    try {
      content = readFileSync(dep);
    } catch {
      continue;
    }
    h.update(`\0${relative(base, dep)}\0`).update(content);
  }
  return h.digest('hex');
}

/**
 * Function name -> sha256 hex of its handler file, resolved relative to `policyFile`.
 * @throws HandlerFileError (E_HANDLER) naming the first function whose handler cannot be read.
 */
export function hashHandlers(policyFile: string, ir: PolicyIR): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ir.functions) out[f.name] = sha256File(f.name, resolveHandler(policyFile, f));
  return out;
}

/**
 * The hashes a manifest records: like hashHandlers, but a handler file that cannot be read is left
 * out (unknown to `diff`) instead of failing a load that does not run it.
 */
export function manifestHashes(policyFile: string, ir: PolicyIR): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of ir.functions) {
    try {
      Object.assign(out, hashHandlers(policyFile, { ...ir, functions: [f] }));
    } catch {
      // unknown: diff reports no code change for it
    }
  }
  // Packet functions built from C: under `packet:<name>` (their names may repeat a request function's).
  for (const f of ir.packet?.functions ?? []) {
    if (!f.handler) continue;
    try {
      out[`packet:${f.name}`] = sha256File(f.name, f.handler);
    } catch {
      // unknown, as above
    }
  }
  return out;
}
