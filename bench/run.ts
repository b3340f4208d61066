/**
 * `npm run bench [-- maps|xdp|chain ... --quick]`: runs the named benchmarks (all by default) one after the
 * other. Each prints its own table and writes bench/results/<name>.json; see BENCHMARKS.md.
 */
const ALL = ['maps', 'xdp', 'chain', 'live', 'startup', 'packet', 'descriptors', 'nodes'] as const;

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of names.length ? names : ALL) {
  if (!(ALL as readonly string[]).includes(name)) {
    process.stderr.write(`bench: unknown benchmark ${name} (known: ${ALL.join(', ')})\n`);
    process.exit(2);
  }
  process.stdout.write(`\n=== bench/${name} ===\n`);
  const mod = (await import(`./${name}.ts`)) as { run: (opts?: { quick?: boolean }) => Promise<unknown> };
  await mod.run({ quick: process.argv.includes('--quick') });
}
