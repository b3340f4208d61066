/**
 * The clang driver: C source -> BPF ELF object with BTF, through the content-addressed cache.
 * Flags are fixed and reproducible: the same inputs give the same bytes on any checkout path.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BPF_INCLUDE, cacheKey, defaultCacheDir, headerDigest, REPO_ROOT } from './cache.ts';
import { parseDiagnostics } from './diagnostics.ts';
import { CompileError } from './errors.ts';

export interface CompileOptions {
  /** Cache directory; default `<cache root>/bpf` ($BPFCTL_CACHE, $XDG_CACHE_HOME/bpfctl or ~/.cache/bpfctl). */
  cacheDir?: string;
  /** Extra -I directories (hashed as flags, their headers are not). */
  includeDirs?: string[];
  /** -D definitions. */
  defines?: Record<string, string | number>;
  /** The clang binary; default `$BPFCTL_CLANG` or `clang`. */
  clang?: string;
}

export interface CompileResult {
  objectPath: string;
  /** True when the object came from the cache (clang did not run). */
  cached: boolean;
}

const versions = new Map<string, string>();

function clangVersion(clang: string): string {
  let v = versions.get(clang);
  if (v === undefined) {
    try {
      v = execFileSync(clang, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
    } catch (err) {
      throw new CompileError(clang, String(err), [], `cannot run ${clang}: ${(err as Error).message.split('\n')[0]} (install clang)`);
    }
    versions.set(clang, v);
  }
  return v;
}

function baseFlags(opts: CompileOptions): string[] {
  const flags = [
    '-target',
    'bpf',
    '-O2',
    '-g',
    '-Wall',
    '-Wno-unused-function',
    '-D__TARGET_ARCH_x86',
    '-I/usr/include/x86_64-linux-gnu',
    `-I${BPF_INCLUDE}`,
    ...(opts.includeDirs ?? []).map((d) => `-I${resolve(d)}`),
    ...Object.entries(opts.defines ?? {})
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `-D${k}=${v}`),
  ];
  return flags;
}

/**
 * Compile a .bpf.c file, or source text with a name, to a BPF object. CompileError with clang's
 * diagnostics when the source does not compile (or clang is missing).
 */
export function compileBpf(input: string | { source: string; name: string }, opts: CompileOptions = {}): CompileResult {
  const clang = opts.clang ?? process.env.BPFCTL_CLANG ?? 'clang';
  const cacheDir = resolve(opts.cacheDir ?? defaultCacheDir());
  const fromFile = typeof input === 'string';
  const srcPath = fromFile ? resolve(input) : undefined;
  let source: string;
  if (fromFile) {
    if (!existsSync(srcPath!)) throw new CompileError(input, '', [], `source not found: ${input}`);
    source = readFileSync(srcPath!, 'utf8');
  } else {
    source = input.source;
  }
  const name = fromFile ? basename(input).replace(/\.(bpf\.)?c$/, '') : input.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const flags = baseFlags(opts);
  // Path-independent key: the flags as written, with the repo's own paths made relative.
  const keyFlags = flags.map((f) => f.replace(REPO_ROOT, '<repo>'));
  const key = cacheKey({ source, flags: keyFlags, clangVersion: clangVersion(clang), headers: headerDigest(srcPath && dirname(srcPath)) });
  const objectPath = join(cacheDir, `${name}-${key.slice(0, 16)}.bpf.o`);
  if (existsSync(objectPath)) return { objectPath, cached: true };

  mkdirSync(cacheDir, { recursive: true });
  let compilePath = srcPath!;
  if (!fromFile) {
    // clang needs a file; a directory per key keeps concurrent builds apart and the name natural.
    const dir = join(cacheDir, 'src', key.slice(0, 16));
    mkdirSync(dir, { recursive: true });
    compilePath = join(dir, `${name}.bpf.c`);
    writeFileSync(compilePath, source);
  }
  const tmp = `${objectPath}.${process.pid}.tmp`;
  const prefixMaps = [`-fdebug-prefix-map=${dirname(compilePath)}=.`, `-fdebug-prefix-map=${REPO_ROOT}=.`];
  const args = [...flags, ...prefixMaps, '-c', compilePath, '-o', tmp];
  const r = spawnSync(clang, args, { encoding: 'utf8', cwd: dirname(compilePath) });
  if (r.error) throw new CompileError(compilePath, String(r.error), [], `cannot run ${clang}: ${r.error.message} (install clang)`);
  if (r.status !== 0) {
    const stderr = fromFile ? r.stderr : r.stderr.replaceAll(`${dirname(compilePath)}/`, '');
    throw new CompileError(fromFile ? input : `${name}.bpf.c`, stderr, parseDiagnostics(stderr));
  }
  renameSync(tmp, objectPath);
  return { objectPath, cached: false };
}
