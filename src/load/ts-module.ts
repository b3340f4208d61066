/**
 * User TypeScript (policies, function handlers) to JavaScript bpfctl can import. bpfctl itself
 * runs as compiled JavaScript; the user's .ts files are bundled by esbuild into one ES module each,
 * written to the cache under the hash of its content, and imported from there. esbuild is loaded
 * only when a .ts file needs building, and its service process is stopped after every build, so a
 * running chain keeps no TypeScript tooling resident (a warm `bpfctl run` reuses cached bundles).
 *
 * What a bundle imports:
 * - `bpfctl`, `bpfctl/runtime`, `bpfctl/loader`, `bpfctl/pool`, `bpfctl/packet` resolve to the bpfctl that is running, wherever
 *   the user's file is: a policy works outside a project that installs bpfctl (a global install),
 *   and its DSL objects come from the same copy that validates them;
 * - other packages are resolved from the user's file, as Node would, and stay external (imported
 *   from their own absolute path, so native addons and package state behave as usual);
 * - the user's own files are bundled; `import.meta.url`, `import.meta.dirname` and
 *   `import.meta.filename` keep naming the original file, not the bundle.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Message, Plugin } from 'esbuild';
import { BpfctlError } from '../errors.ts';
import { cacheRoot, ownModule } from '../package.ts';

/** bpfctl's public entries (package.json "exports"), by the source file each is built from. */
const OWN_ENTRIES: Record<string, string> = {
  bpfctl: 'src/dsl/index.ts',
  'bpfctl/runtime': 'src/runtime/index.ts',
  'bpfctl/loader': 'src/maps/index.ts',
  'bpfctl/pool': 'src/runtime/pool/index.ts',
  'bpfctl/packet': 'src/runtime/packet-ts/index.ts',
};

/** A location in a user's source file, as compilers print it. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
  lineText: string;
}

/** A user's TypeScript that does not compile: each problem with its file:line:col and the line. */
export class SourceError extends BpfctlError {
  readonly file: string;
  readonly problems: readonly { message: string; location: SourceLocation | null }[];
  constructor(file: string, problems: SourceError['problems'], options?: { cause?: unknown }) {
    const first = problems[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}:${first.location.column}` : file;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    super('E_SOURCE', `${where}: ${first?.message ?? 'does not compile'}${more}`, options);
    this.file = file;
    this.problems = problems;
  }
  /** Every problem, with the line and a caret under the column (what `bpfctl` prints without --verbose). */
  override excerpt(): string {
    // The first problem is the message already: only its line. Later ones get their own header.
    return this.problems
      .map((p, i) => {
        const l = p.location;
        const head = i === 0 ? [] : [l ? `${l.file}:${l.line}:${l.column}: ${p.message}` : p.message];
        if (!l) return head.join('\n');
        const gutter = `${l.line} | `;
        return [...head, `${gutter}${l.lineText}`, `${' '.repeat(gutter.length + l.column - 1)}^`].join('\n');
      })
      .filter(Boolean)
      .join('\n');
  }
  override detail(): string {
    return `${this.message}\n${this.excerpt()}`;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), file: this.file, problems: this.problems };
  }
}

export interface BuiltModule {
  /** The bundle to import (a file in the cache). */
  js: string;
  /** Names the module exports ('default' for a default export). */
  exports: readonly string[];
}

const TS_EXT = /\.(?:[cm]?ts|tsx)$/;

/** True for files bpfctl has to build before Node can import them. */
export function needsBuild(file: string): boolean {
  return TS_EXT.test(file);
}

/**
 * Bundles `file` (TypeScript or JavaScript) into an ES module in the cache and returns its path
 * and export names. The cache key is every input esbuild read, so an edited helper file rebuilds.
 * @throws SourceError with the file:line:col of every syntax error.
 */
export async function buildModule(file: string, o: { cacheDir?: string } = {}): Promise<BuiltModule> {
  const abs = resolve(file);
  const dir = o.cacheDir ?? join(cacheRoot(), 'ts');
  const esbuild = await import('esbuild');
  building++;
  try {
    const res = await esbuild.build({
      entryPoints: [abs],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      metafile: true,
      sourcemap: 'inline',
      sourcesContent: false,
      outfile: join(dir, 'out.mjs'),
      logLevel: 'silent',
      plugins: [ownAndExternal(), keepImportMeta()],
    });
    const out = res.outputFiles[0];
    if (!out) throw new SourceError(abs, [{ message: 'esbuild produced no output', location: null }]);
    const meta = Object.values(res.metafile.outputs)[0];
    const name = `${createHash('sha256').update(abs).update('\0').update(out.contents).digest('hex').slice(0, 20)}.mjs`;
    const js = join(dir, name);
    if (!existsSync(js)) {
      mkdirSync(dir, { recursive: true });
      // Written under a temporary name and renamed: a concurrent import never reads half a file.
      const tmp = `${js}.${process.pid}.tmp`;
      writeFileSync(tmp, out.contents);
      renameSync(tmp, js);
    }
    return { js, exports: meta?.exports ?? [] };
  } catch (err) {
    throw asSourceError(abs, err);
  } finally {
    // The service is a child process that would otherwise stay for the life of this one; builds
    // running at once share it, so the last one out stops it.
    if (--building === 0) await esbuild.stop();
  }
}

/** Builds under way in this process (they share esbuild's service). */
let building = 0;

/** Builds (when TypeScript) and imports a user's module. @throws SourceError */
export async function importUserModule(file: string): Promise<Record<string, unknown>> {
  const abs = resolve(file);
  const target = needsBuild(abs) ? (await buildModule(abs)).js : abs;
  // A .js file is imported as it is; its URL carries its content hash so an edited file is read
  // again by a long-lived process (ESM caches modules by URL).
  const url = needsBuild(abs) ? pathToFileURL(target).href : `${pathToFileURL(target).href}?v=${createHash('sha256').update(readFileSync(target)).digest('hex').slice(0, 16)}`;
  return (await import(url)) as Record<string, unknown>;
}

function asSourceError(file: string, err: unknown): BpfctlError {
  if (err instanceof BpfctlError) return err;
  const errors = (err as { errors?: Message[] })?.errors;
  if (!Array.isArray(errors) || !errors.length) return new SourceError(file, [{ message: String((err as Error)?.message ?? err), location: null }], { cause: err });
  return new SourceError(
    file,
    errors.map((m) => ({
      message: m.text,
      location: m.location ? { file: resolve(m.location.file), line: m.location.line, column: m.location.column + 1, lineText: m.location.lineText } : null,
    })),
    { cause: err },
  );
}

/** bpfctl's own entries to the running copy; every other package external, from its own path. */
function ownAndExternal(): Plugin {
  return {
    name: 'bpfctl-resolve',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        // The inner resolve below asks esbuild for Node's own answer.
        if (args.pluginData === 'bpfctl-inner') return undefined;
        if (isBuiltin(args.path)) return { path: args.path, external: true };
        const own = OWN_ENTRIES[args.path];
        if (own) return { path: ownModule(own), external: true };
        if (args.path.startsWith('bpfctl/')) return { errors: [{ text: `'${args.path}' is not one of bpfctl's entries (${Object.keys(OWN_ENTRIES).join(', ')})` }] };
        const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'bpfctl-inner' });
        if (r.errors.length) return { errors: r.errors };
        return { path: r.path, external: true };
      });
    },
  };
}

const IMPORT_META = /\bimport\.meta\.(url|dirname|filename)\b/g;

/** Source files keep their own `import.meta.url`/`dirname`/`filename` inside the bundle. */
function keepImportMeta(): Plugin {
  return {
    name: 'bpfctl-import-meta',
    setup(build) {
      build.onLoad({ filter: /\.(?:[cm]?[jt]s|tsx|jsx)$/ }, (args) => {
        if (args.path.includes('/node_modules/')) return undefined;
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.')) return undefined;
        const values: Record<string, string> = { url: pathToFileURL(args.path).href, dirname: dirname(args.path), filename: args.path };
        const contents = text.replace(IMPORT_META, (_m, k: string) => JSON.stringify(values[k]));
        const ext = extname(args.path).slice(1);
        const loader = ext === 'mts' || ext === 'cts' ? 'ts' : ext === 'mjs' || ext === 'cjs' ? 'js' : (ext as 'ts' | 'tsx' | 'js' | 'jsx');
        return { contents, loader, resolveDir: dirname(args.path) };
      });
    },
  };
}
