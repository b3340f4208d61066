/**
 * Where bpfctl's own files are, and where it keeps what it builds. A leaf module every layer may
 * import. bpfctl runs either from its TypeScript sources (a checkout, under tsx) or compiled
 * (`dist/`, what the npm package runs); the C it ships (bpf/, the C runtimes under src/) stays at
 * the package root in both, so paths are computed from the root, never from this file's folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The package root: the nearest folder above this file with bpfctl's package.json. */
export const PACKAGE_ROOT: string = findRoot(HERE);

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'bpfctl') return dir;
    if (dirname(dir) === dir) return resolve(HERE, '..');
  }
}

/** bpfctl's version, from its package.json. */
export const VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** True when this is the compiled package (dist/), false when running the TypeScript sources. */
export const COMPILED: boolean = import.meta.url.endsWith('.js');

/**
 * One of bpfctl's own modules, by its path in the sources ('src/dsl/index.ts'), as the file this
 * running copy uses: the source itself, or its compiled twin under dist/.
 */
export function ownModule(sourcePath: string): string {
  return COMPILED ? join(PACKAGE_ROOT, 'dist', sourcePath.replace(/\.ts$/, '.js')) : join(PACKAGE_ROOT, sourcePath);
}

/**
 * Where bpfctl caches what it builds (compiled eBPF objects, C functions, TypeScript bundles):
 * `$BPFCTL_CACHE`, else `$XDG_CACHE_HOME/bpfctl`, else `~/.cache/bpfctl`. Never inside the package:
 * an installed package is usually not writable by the user running it.
 */
export function cacheRoot(): string {
  if (process.env.BPFCTL_CACHE) return resolve(process.env.BPFCTL_CACHE);
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg?.startsWith('/') ? (xdg as string) : join(homedir(), '.cache'), 'bpfctl');
}
