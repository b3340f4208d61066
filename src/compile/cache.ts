/**
 * The content-addressed object cache: an object's name is the hash of everything that decides
 * its bytes (source, flags, clang's version, the headers it may include), so a hit is always
 * safe to reuse and nothing needs invalidating.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cacheRoot, PACKAGE_ROOT } from '../package.ts';

/** bpfctl's package root: its headers (bpf/include) are part of every object's cache key. */
export const REPO_ROOT = PACKAGE_ROOT;
export const BPF_INCLUDE = join(REPO_ROOT, 'bpf/include');

/** Compiled eBPF objects: `<cache root>/bpf` (see cacheRoot). */
export function defaultCacheDir(): string {
  return join(cacheRoot(), 'bpf');
}

function headersUnder(dir: string, recursive: boolean): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() && recursive) out.push(...headersUnder(p, true));
    else if (e.isFile() && e.name.endsWith('.h')) out.push(p);
  }
  return out;
}

/**
 * Hash the headers a source can pull in from the project: everything under bpf/include (shared
 * by all programs) and the .h files next to the source. System headers are covered by the clang
 * version and the distribution, not hashed.
 */
export function headerDigest(sourceDir: string | undefined): string {
  const h = createHash('sha256');
  const files = [...headersUnder(BPF_INCLUDE, true).map((p) => [relative(BPF_INCLUDE, p), p] as const)];
  if (sourceDir) files.push(...headersUnder(sourceDir, false).map((p) => [`./${relative(sourceDir, p)}`, p] as const));
  files.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  for (const [name, path] of files) {
    if (!statSync(path).isFile()) continue;
    h.update(`${name}\0`);
    h.update(readFileSync(path));
    h.update('\0');
  }
  return h.digest('hex');
}

export function cacheKey(parts: { source: string; flags: readonly string[]; clangVersion: string; headers: string }): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([parts.source, parts.flags, parts.clangVersion, parts.headers]));
  return h.digest('hex');
}
