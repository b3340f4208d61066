#!/usr/bin/env node
// The published entry point. bpfctl ships TypeScript sources and runs them through tsx's loader,
// so user policies (policy.ts) and bpfctl itself share one module graph and one set of types.
import { register } from 'tsx/esm/api';

register();
// `bpfctl map dump ... | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
