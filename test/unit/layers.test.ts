/**
 * Imports only point down, and never round. Every module under src/ and loader/ belongs to one
 * layer of docs/internals.md ("Layers"); a module may import its own layer and the layers below
 * it, and the files import no cycle (type-only imports count: a type pointing up is a layer
 * pointing up). A new directory must be placed in LAYERS before anything in it passes.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Lowest first. A module's layer is the longest prefix that names it. */
const LAYERS: readonly (readonly string[])[] = [
  ['src/errors.ts', 'src/package.ts'], // the error base every layer may throw; where bpfctl's files and cache are
  ['src/schema'], // codecs, C declarations, layouts shared with C (descriptor, chain maps, pool)
  ['src/dsl'], // what a policy author writes
  ['src/ir'], // the validated policy as data: pure
  ['src/load'], // policy files -> IR (imports the user's module: the I/O the IR does not do)
  ['src/codegen'], // IR -> C
  ['src/model'], // what a generated section does with a frame, in TS (reads codegen's tables)
  ['src/compile'], // clang
  ['loader'], // libbpf
  ['src/maps'], // typed maps over the loader's BpfMap
  ['src/deploy'], // whole policies in the kernel: load, pins, manifest, routes, status
  ['src/runtime'], // pool, SDK, hub, gateway, supervisor
  ['src/metrics'], // Prometheus metrics of a loaded policy, read from its pins
  ['src/cli'], // bpfctl
];

/** Who may import a package, when not everyone may. */
const RESTRICTED: Record<string, readonly string[]> = {
  // Only the loader talks to libbpf; the pool uses koffi for libc (mmap, memfd_create), and
  // TypeScript packet functions for the packet runtime's own C (src/runtime/packet-ts/shim.c,
  // packet.h's rings: no libbpf in it), and the node-link for sendmsg(SCM_RIGHTS) (handing sockets
  // to its native data path).
  koffi: ['loader', 'src/runtime/pool', 'src/runtime/packet-ts', 'src/runtime/node-link'],
  // Building users' TypeScript is the loading layer's job (tsx is a dev tool: tests only).
  esbuild: ['src/load'],
  'tsx/esm/api': [],
};

/** src/ir is a pure function of the spec: computation only (hashing, address parsing). */
const PURE_IR_PACKAGES = ['node:crypto', 'node:net'];

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.ts$/.test(name)) out.push(p);
  }
  return out;
}

function layerOf(file: string): number {
  let best = -1;
  let bestLen = -1;
  LAYERS.forEach((prefixes, i) => {
    for (const p of prefixes) {
      if ((file === p || file.startsWith(`${p}/`)) && p.length > bestLen) {
        best = i;
        bestLen = p.length;
      }
    }
  });
  return best;
}

/** Specifiers of every static import/export-from, side-effect import and literal dynamic import. */
export function importsOf(source: string): string[] {
  // Comments may quote imports; strings rarely look like a whole import statement.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of code.matchAll(re)) out.push(m[1]!);
  return out;
}

const files = [...walk(join(ROOT, 'src')), ...walk(join(ROOT, 'loader'))].map((f) => relative(ROOT, f)).sort();
const graph = new Map<string, string[]>();
const packages = new Map<string, string[]>();
for (const f of files) {
  const specs = importsOf(readFileSync(join(ROOT, f), 'utf8'));
  graph.set(
    f,
    specs.filter((s) => s.startsWith('.')).map((s) => relative(ROOT, resolve(ROOT, dirname(f), s))),
  );
  packages.set(
    f,
    specs.filter((s) => !s.startsWith('.')),
  );
}

test('the parser sees the imports (a sanity floor, so a broken regex cannot pass everything)', () => {
  assert.equal(importsOf("import { a } from './a.ts';\nimport type {\n  B,\n} from '../b.ts';\nexport * from './c.ts';\nimport './d.ts';\nconst m = await import('./e.ts');\n// import { x } from './no.ts';\n"), [
    './a.ts',
    '../b.ts',
    './c.ts',
    './d.ts',
    './e.ts',
  ]);
  const edges = [...graph.values()].reduce((n, d) => n + d.length, 0);
  assert.ok(edges > 300, `only ${edges} relative imports found`);
});

test('every module belongs to a layer', () => {
  const loose = files.filter((f) => layerOf(f) < 0);
  assert.equal(loose, [], `place these in LAYERS (and docs/internals.md): ${loose.join(', ')}`);
});

test('relative imports name files that exist', () => {
  const missing: string[] = [];
  for (const [f, deps] of graph) for (const d of deps) if (!graph.has(d)) missing.push(`${f} -> ${d}`);
  assert.equal(missing, []);
});

test('imports point down (or stay in their layer)', () => {
  const up: string[] = [];
  for (const [f, deps] of graph) {
    const lf = layerOf(f);
    for (const d of deps) {
      const ld = layerOf(d);
      if (ld > lf) up.push(`${f} (${LAYERS[lf]![0]}) -> ${d} (${LAYERS[ld]![0]})`);
    }
  }
  assert.equal(up, []);
});

test('packages are imported only by the layers allowed to', () => {
  const bad: string[] = [];
  for (const [f, pkgs] of packages) {
    for (const p of pkgs) {
      const allowed = RESTRICTED[p];
      if (allowed && !allowed.some((a) => f === a || f.startsWith(`${a}/`))) bad.push(`${f} -> ${p}`);
    }
  }
  assert.equal(bad, []);
});

test('src/ir is pure: no file system, process, clock or module loading', () => {
  const bad: string[] = [];
  for (const f of files.filter((x) => x.startsWith('src/ir/'))) {
    for (const p of packages.get(f) ?? []) if (!PURE_IR_PACKAGES.includes(p)) bad.push(`${f} imports ${p}`);
    const code = readFileSync(join(ROOT, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    for (const re of [/\bimport\(/, /\brequire\(/, /\bprocess\./, /\bDate\.now\(/, /\bexistsSync\b/]) if (re.test(code)) bad.push(`${f} uses ${re.source}`);
  }
  assert.equal(bad, []);
});

test('no import cycles', () => {
  // Tarjan's strongly connected components: any with more than one file (or a self-import) is a cycle.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(c.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  assert.equal(cycles, []);
});

test.run();
