#!/usr/bin/env node
// `npm run build`: bpfctl's sources to dist/, what the package ships and bin/bpfctl.js runs.
// - tsc writes the declarations (dist/src/**/*.d.ts) and type-checks the sources;
// - esbuild writes the JavaScript: one file per entry (the CLI, the function and gateway processes,
//   the package's public entries) at the same path as its declaration, with shared code split into
//   chunks, and yargs/cli-table3 bundled in. Node loads a handful of files instead of ~400 small
//   modules, so `bpfctl --help` starts in a fraction of the time. koffi (a native addon) and
//   esbuild (a binary service) stay external.
import { execFileSync } from 'node:child_process';
import { renameSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const ENTRIES = [
  'src/cli/main.ts',
  'src/runtime/sdk/main.ts',
  'src/runtime/packet-ts/main.ts',
  'src/runtime/supervisor/gateway-main.ts',
  'src/dsl/index.ts',
  'src/runtime/index.ts',
  'src/maps/index.ts',
  'src/runtime/pool/index.ts',
  'src/runtime/packet-ts/index.ts',
];

// Built beside dist/ and swapped in at the end: a failed build leaves the last good one.
const OUT = 'dist.tmp';
rmSync(OUT, { recursive: true, force: true });
try {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', OUT], { stdio: 'inherit' });
} catch {
  process.stderr.write('build: tsc found the errors above\n');
  process.exit(1);
}
await build({
  entryPoints: ENTRIES,
  outdir: OUT,
  outbase: '.',
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // Stack traces name the TypeScript file and line; the sources themselves are not shipped.
  sourcesContent: false,
  // Class names are part of bpfctl's errors (`name`, --json's `error`, cross-copy instanceof).
  keepNames: true,
  external: ['koffi', 'esbuild'],
  // Bundled CommonJS dependencies (cli-table3) call require(); give ESM chunks one.
  banner: { js: "import { createRequire as __bpfctlRequire } from 'node:module'; const require = __bpfctlRequire(import.meta.url);" },
  logLevel: 'warning',
});
rmSync('dist', { recursive: true, force: true });
renameSync(OUT, 'dist');
