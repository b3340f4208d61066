/**
 * The local files a handler brings with it, found by reading sources (no bundling, so it is
 * synchronous and cheap): relative imports of TypeScript/JavaScript, resolved as esbuild and
 * TypeScript do, and the `#include "..."` files beside a C source. `bpfctl diff`/`apply` hash
 * them with the handler, so an edit to a helper module is a code change; `k8s manifests` puts
 * them in the ConfigMap. Packages are not followed (node_modules is the image's, not the policy's).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve, sep } from 'node:path';

const TS_FOR_JS: Record<string, string[]> = { '.js': ['.ts', '.tsx'], '.mjs': ['.mts'], '.cjs': ['.cts'], '.jsx': ['.tsx'] };
const EXTS = ['.ts', '.tsx', '.mts', '.cts', '.js', '.mjs', '.cjs', '.jsx', '.json'];

/** The file a relative import names, resolved as esbuild and TypeScript do, if there is one. */
export function resolveScript(abs: string): string | null {
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  if (isFile(abs)) return abs;
  const ext = extname(abs);
  for (const alt of TS_FOR_JS[ext] ?? []) if (isFile(abs.slice(0, -ext.length) + alt)) return abs.slice(0, -ext.length) + alt;
  for (const e of EXTS) if (isFile(abs + e)) return abs + e;
  for (const e of EXTS) if (isFile(join(abs, `index${e}`))) return join(abs, `index${e}`);
  return null;
}

/**
 * The relative specifiers of a module's imports, exports-from, dynamic imports and requires with
 * a literal, outside comments. `import type`/`export type` statements are left out: they give
 * no code and are never resolved.
 */
export function relativeImports(source: string): string[] {
  const code = stripComments(source);
  const out: string[] = [];
  const patterns = [
    /(?:^|[;\n}])\s*(import|export)(\s+type\b)?[^'"`;]*?\bfrom\s*(['"])([^'"\n]+)\3/g,
    /(?:^|[;\n}])\s*import\s*(['"])([^'"\n]+)\1/g,
    /\b(?:import|require)\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g,
  ];
  for (const m of code.matchAll(patterns[0]!)) if (!m[2]) out.push(m[4]!);
  for (const m of code.matchAll(patterns[1]!)) out.push(m[2]!);
  for (const m of code.matchAll(patterns[2]!)) out.push(m[2]!);
  return [...new Set(out.filter((s) => s.startsWith('./') || s.startsWith('../')))];
}

/** Comments blanked out, strings kept (an import's specifier is a string; `'//'` is not a comment). */
function stripComments(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c && !(c !== '`' && src[j] === '\n')) j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** `#include "file"` names (angle-bracket includes are the system's and bpfctl's). */
export function quotedIncludes(source: string): string[] {
  return [...source.matchAll(/^\s*#\s*include\s*"([^"\n]+)"/gm)].map((m) => m[1]!);
}

const SCRIPT = /\.(?:[cm]?[jt]s|[jt]sx)$/;
const C_SOURCE = /\.(?:c|h)$/;

/**
 * `file` and every local file it imports or includes, directly or not, each once, `file` first
 * (`startSource`: its text, when the caller has read it).
 * Unreadable or unresolvable imports are skipped: the build reports them, with their location.
 */
export function localClosure(file: string, startSource?: string): string[] {
  const start = resolve(file);
  const seen = new Set([start]);
  const queue = [start];
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  while (queue.length) {
    const abs = queue.shift()!;
    let source: string;
    try {
      // The caller may have read the first file already.
      source = abs === start && startSource !== undefined ? startSource : readFileSync(abs, 'utf8');
    } catch {
      continue;
    }
    const deps = SCRIPT.test(abs)
      ? relativeImports(source).map((d) => resolveScript(resolve(dirname(abs), d)))
      : C_SOURCE.test(abs)
        ? quotedIncludes(source).map((d) => resolve(dirname(abs), d))
        : [];
    for (const d of deps) {
      if (!d || seen.has(d) || d.includes(`${sep}node_modules${sep}`) || !isFile(d)) continue;
      seen.add(d);
      queue.push(d);
    }
  }
  return [...seen];
}
