/**
 * Builds a C function: the user's source plus the runtime (fn.c), against bpf/include. The result
 * is cached by the hash of everything that goes into it, so `bpfctl run` rebuilds only on change.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { BpfctlError } from '../../errors.ts';
import { firstErrorExcerpt, parseDiagnostics } from '../../compile/diagnostics.ts';
import { cacheRoot, PACKAGE_ROOT } from '../../package.ts';

const run = promisify(execFile);
/** The C runtime ships as source at the package root (the compiled package has no C under dist/). */
export const RUNTIME_C = join(PACKAGE_ROOT, 'src/runtime/c/fn.c');
export const INCLUDE_DIR = join(PACKAGE_ROOT, 'bpf/include');
const HEADERS = [join(INCLUDE_DIR, 'bpfctl/fn.h'), join(INCLUDE_DIR, 'bpfctl/pool.h')];
const FLAGS = ['-O2', '-g', '-std=c11', '-Wall', '-Wextra', '-Werror=implicit-function-declaration'];

/** The C compiler refused bpfctl-built user-space C (a C function, the native gateway), with its output. */
export class CBuildError extends BpfctlError {
  readonly stderr: string;
  constructor(code: string, message: string, stderr: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.stderr = stderr;
  }
  override detail(): string {
    return `${this.message}\n${this.stderr}`;
  }
  /** clang's first error with its source line, printed even without --verbose. */
  override excerpt(): string {
    const first = parseDiagnostics(this.stderr).find((d) => d.severity === 'error' || d.severity === 'fatal error');
    const body = firstErrorExcerpt(this.stderr);
    return first ? `${first.file}:${first.line}:${first.column}: ${first.message}${body ? `\n${body}` : ''}` : this.stderr.split('\n').slice(0, 6).join('\n');
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), stderr: this.stderr };
  }
}

/** A C function that does not compile. */
export class CFunctionBuildError extends CBuildError {
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super('E_C_FUNCTION', message, stderr, options);
  }
}

export interface BuildCFunctionOptions {
  /** Where built executables are cached (default: `<cache root>/c-functions`, see cacheRoot). */
  cacheDir?: string;
  /** Compiler (default: $CC or cc). */
  cc?: string;
  /** Extra compiler/linker arguments (e.g. -lm). */
  extra?: string[];
}

/**
 * Compiles `source` with the C runtime into an executable and returns its path.
 * @throws CFunctionBuildError (E_C_FUNCTION) with the compiler's diagnostics.
 */
export async function buildCFunction(source: string, o: BuildCFunctionOptions = {}): Promise<string> {
  const src = resolve(source);
  if (!existsSync(src)) throw new CFunctionBuildError(`C function source not found: ${src}`, '');
  const cc = o.cc ?? process.env.CC ?? 'cc';
  return cachedExecutable({
    cc,
    args: [...FLAGS, `-I${INCLUDE_DIR}`, src, RUNTIME_C, ...(o.extra ?? [])],
    inputs: [src, RUNTIME_C, ...HEADERS],
    cacheDir: o.cacheDir ?? join(cacheRoot(), 'c-functions'),
    name: basename(src).replace(/\.c$/, ''),
    fail: (stderr, cause) => new CFunctionBuildError(`cannot compile C function ${src}`, stderr, { cause }),
  });
}

export interface CachedExecutable {
  cc: string;
  /** Compiler arguments (sources, flags, libraries); `-o` is added. */
  args: string[];
  /** Every file whose bytes decide the result (sources and headers): the cache key. */
  inputs: string[];
  /** Hash each input's path with its bytes (the native gateway's key, which lists a directory). */
  namedInputs?: boolean;
  cacheDir: string;
  /** File name of the executable inside its cache directory. */
  name: string;
  /** The error to throw with the compiler's output. */
  fail: (stderr: string, cause: unknown) => CBuildError;
}

/**
 * Builds an executable once per content: cached under `cacheDir/<hash of inputs, compiler and
 * arguments>/name`, so a run compiles only what changed. What C functions, the native gateway,
 * pktio and packet functions share.
 */
export async function cachedExecutable(b: CachedExecutable): Promise<string> {
  const h = createHash('sha256');
  for (const f of b.inputs) {
    if (b.namedInputs) h.update(`${f}\0`);
    h.update(readFileSync(f));
  }
  h.update(JSON.stringify([b.cc, b.args]));
  const dir = join(b.cacheDir, h.digest('hex').slice(0, 16));
  const out = join(dir, b.name);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  // Built under a temporary name and renamed: a concurrent build never sees half an executable.
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await run(b.cc, [...b.args, '-o', tmp], { maxBuffer: 4 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw b.fail(e.stderr?.trim() || e.message, err);
  }
  renameSync(tmp, out);
  return out;
}
