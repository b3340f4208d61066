#!/usr/bin/env node
// The published entry point: runs the compiled CLI (dist/, `npm run build`). No TypeScript tooling
// is loaded here; a user's policy.ts is bundled on demand (src/load/ts-module.ts).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('bpfctl: not built: run `npm run build` in the bpfctl checkout first\n');
  process.exit(1);
}
// `bpfctl map dump ... | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
