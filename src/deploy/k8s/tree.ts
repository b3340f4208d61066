/**
 * The files an agent needs to run a policy from a mounted ConfigMap: the policy file (as
 * `policy.ts`, the name the agent looks for in a directory), every handler, and every local file
 * they import, at their paths relative to the policy's directory (handler paths are relative to
 * the policy file, imports to the importing file, so the tree must be the same under the mount).
 *
 * TypeScript and JavaScript are found twice over: by bundling each file as the agent will (the
 * bundle's source map lists every file that gave it code, resolved by esbuild itself: index
 * files, `.js` naming a `.ts`, JSON), and by reading its import statements, for what gives no code
 * but must still be there to be resolved (an empty side-effect import; a type-only one under
 * `verbatimModuleSyntax`). A relative import that names no file is left to the bundler to report.
 * C handlers bring the files their `#include "..."` lines name, when those are beside them (the
 * others are bpfctl's own headers, in the image). Packages other than bpfctl are not copied: they
 * are listed, for the image to install.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { PolicyIR } from '../../ir/policy.ts';
import { buildModule, resolveHandler } from '../../load/index.ts';
import { quotedIncludes, relativeImports, resolveScript } from '../../load/local-imports.ts';
import { PACKAGE_ROOT } from '../../package.ts';
import { K8sManifestError } from './errors.ts';

export interface TreeFile {
  /** Relative to the policy's directory, '/'-separated: where the mount must put it. */
  path: string;
  data: Buffer;
  /** Has an execute bit (a prebuilt packet function): mounted executable. */
  executable: boolean;
  /** Why it is in the tree: 'policy', 'handler of upper', 'imported by functions/upper.ts', ... */
  why: string;
}

export interface PolicyTree {
  /** The policy's directory on this machine. */
  root: string;
  /** Where the policy file goes in the mount: policy.ts (or .js, .mjs), what the agent reads. */
  policyPath: string;
  /** Sorted by path. */
  files: TreeFile[];
  /** Packages the files import besides bpfctl and Node's own: the image must have them. */
  packages: string[];
}

const SCRIPT = /\.(?:[cm]?[jt]s|[jt]sx)$/;
const C_SOURCE = /\.(?:c|h)$/;
/** Names the agent looks for in a policy directory, by the policy file's extension. */
const POLICY_NAME: Record<string, string> = { '.ts': 'policy.ts', '.js': 'policy.js', '.mjs': 'policy.mjs' };
/** Read by esbuild (tsconfig.json) and Node (package.json "type") for the files beside them. */
const ROOT_CONFIG = ['tsconfig.json', 'package.json'];

/**
 * Collects the tree of `policyFile` (already loaded as `ir`) plus `include` (files or directories,
 * for what the handlers read at run time). Bundles every TypeScript/JavaScript handler, so a
 * handler that does not compile fails here, as `bpfctl build` would, with its file:line:col.
 * @throws K8sManifestError for a file outside the policy's directory or a name the mount cannot hold
 */
export async function collectPolicyTree(policyFile: string, ir: PolicyIR, include: readonly string[] = []): Promise<PolicyTree> {
  const file = resolve(policyFile);
  const root = dirname(file);
  const policyPath = POLICY_NAME[extname(file)];
  if (!policyPath) throw new K8sManifestError(`${file}: the agent reads a policy directory's policy.ts, policy.js or policy.mjs; a ${extname(file) || 'extensionless'} policy file cannot be mounted as one`);
  const files = new Map<string, TreeFile>();
  const packages = new Set<string>();
  const pending: { abs: string; why: string }[] = [];

  const add = (abs: string, why: string) => {
    const path = relative(root, abs).split(sep).join('/');
    if (path.startsWith('../') || isAbsolute(path)) {
      throw new K8sManifestError(`${abs} (${why}) is outside the policy's directory ${root}: the ConfigMap is mounted as that directory, so move the file under it`);
    }
    const mountPath = abs === file ? policyPath : path;
    if (files.has(mountPath)) return;
    const bad = mountPath.split('/').find((seg) => seg.startsWith('..'));
    if (bad) throw new K8sManifestError(`${abs} (${why}): the kubelet keeps names starting with '..' for itself in a ConfigMap volume; rename '${bad}'`);
    if (mountPath === policyPath && abs !== file) throw new K8sManifestError(`${abs} (${why}) is named ${policyPath}, which is where the policy file ${basename(file)} is mounted: rename one of them`);
    const st = statSync(abs);
    files.set(mountPath, { path: mountPath, data: readFileSync(abs), executable: (st.mode & 0o111) !== 0, why });
    pending.push({ abs, why });
  };

  add(file, 'policy');
  for (const f of ir.functions) add(existing(resolveHandler(file, f), `the handler of ${f.name}`), `the handler of ${f.name}`);
  for (const f of ir.packet?.functions ?? []) {
    if (f.handler) add(existing(f.handler, `the handler of packet function ${f.name}`), `the handler of packet function ${f.name}`);
    // A bare program name is looked up on PATH: the image's, not ours.
    const exe = f.command?.[0];
    if (exe && isAbsolute(exe)) add(existing(exe, `the program of packet function ${f.name}`), `the program of packet function ${f.name}`);
  }
  for (const name of ROOT_CONFIG) if (existsSync(join(root, name))) add(join(root, name), `read by the tools for the files beside it`);
  for (const inc of include) {
    const abs = resolve(inc);
    if (!existsSync(abs)) throw new K8sManifestError(`--include ${inc}: no such file or directory (${abs})`);
    for (const f of walk(abs)) add(f, '--include');
  }

  const bundled = new Set<string>();
  while (pending.length) {
    const { abs } = pending.shift()!;
    const from = relative(root, abs);
    if (SCRIPT.test(abs)) {
      for (const dep of relativeImports(readFileSync(abs, 'utf8'))) {
        const hit = resolveScript(resolve(dirname(abs), dep));
        if (hit && !hit.includes(`${sep}node_modules${sep}`)) add(hit, `imported by ${from}`);
      }
      // The policy was just bundled by loadPolicyFile; bundling again is a cache hit.
      if (!bundled.has(abs) && !abs.includes(`${sep}node_modules${sep}`) && isEntry(abs, file, ir, root)) {
        bundled.add(abs);
        const b = await bundleInputs(abs);
        for (const input of b.inputs) add(input, `imported by ${from}`);
        for (const p of b.packages) packages.add(p);
      }
    } else if (C_SOURCE.test(abs)) {
      for (const inc of quotedIncludes(readFileSync(abs, 'utf8'))) {
        const hit = resolve(dirname(abs), inc);
        if (existsSync(hit) && statSync(hit).isFile()) add(hit, `included by ${from}`);
      }
    }
  }
  return { root, policyPath, files: [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), packages: [...packages].sort() };
}

function existing(abs: string, what: string): string {
  if (!existsSync(abs) || !statSync(abs).isFile()) throw new K8sManifestError(`${what} ${abs} does not exist`);
  return abs;
}

function walk(abs: string): string[] {
  if (!statSync(abs).isDirectory()) return [abs];
  return readdirSync(abs)
    .sort()
    .flatMap((n) => walk(join(abs, n)));
}

/** The policy and the handlers are what the agent bundles; the files they import come along. */
function isEntry(abs: string, policy: string, ir: PolicyIR, root: string): boolean {
  return abs === policy || ir.functions.some((f) => f.language === 'ts' && resolve(root, f.handler) === abs);
}

/** Files esbuild bundled into `abs`'s module, and the packages it left external. */
async function bundleInputs(abs: string): Promise<{ inputs: string[]; packages: string[] }> {
  const built = await buildModule(abs);
  const js = readFileSync(built.js, 'utf8');
  const inputs: string[] = [];
  const map = /\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/.exec(js);
  if (map) {
    const sources = (JSON.parse(Buffer.from(map[1]!, 'base64').toString('utf8')) as { sources?: string[] }).sources ?? [];
    for (const s of sources) inputs.push(resolve(dirname(built.js), s));
  }
  const packages = new Set<string>();
  for (const m of js.matchAll(/\bfrom\s*"([^"]+)"|\bimport\s*\(?\s*"([^"]+)"/g)) {
    const spec = m[1] ?? m[2]!;
    const pkg = packageOf(spec);
    if (pkg) packages.add(pkg);
  }
  return { inputs: inputs.filter((i) => existsSync(i)), packages: [...packages] };
}

/** The package an external import of a bundle names, unless it is Node's or bpfctl's own. */
function packageOf(spec: string): string | null {
  if (spec.startsWith('node:') || builtinModules.includes(spec)) return null;
  if (spec.startsWith(`${PACKAGE_ROOT}${sep}`) && !spec.slice(PACKAGE_ROOT.length).includes(`${sep}node_modules${sep}`)) return null;
  const at = spec.lastIndexOf(`${sep}node_modules${sep}`);
  const rest = at >= 0 ? spec.slice(at + 14) : spec;
  const parts = rest.split('/');
  const name = parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  return name === 'bpfctl' ? null : name;
}
