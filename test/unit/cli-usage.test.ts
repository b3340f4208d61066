/** What `bpfctl` says to a command line it cannot act on: one line naming what is wrong, exit 2. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../helpers/cli.ts';

const cases: [string[], RegExp][] = [
  [[], /^bpfctl: name a command \(bpfctl --help lists them\)\n$/],
  [['nope'], /^bpfctl: unknown command 'nope' \(did you mean top\? bpfctl --help lists them\)\n$/],
  [['prog'], /^bpfctl: bpfctl prog: name a subcommand \(bpfctl prog --help lists them\)\n$/],
  [['prog', 'lss'], /^bpfctl: bpfctl prog: unknown subcommand 'lss' \(did you mean ls\? bpfctl prog --help lists them\)\n$/],
  [['route', 'set'], /^bpfctl: bpfctl route set: missing arguments \(bpfctl route set --help\)\n$/],
  [['scale', 'x'], /^bpfctl: bpfctl scale: missing arguments \(usage: bpfctl scale <policy> <function> <instances>\)\n$/],
  [['build', 'p.ts', '--frob-nicate'], /^bpfctl: bpfctl build: unknown argument --frob-nicate \(--help lists the options\)\n$/],
  [['build', 'p.ts', 'extra', '-Z'], /^bpfctl: bpfctl build: unknown arguments -Z, extra \(--help lists the options\)\n$/],
];

for (const [args, want] of cases) {
  test(`bpfctl ${args.join(' ') || '(nothing)'}`, async () => {
    const r = await runCli(...args);
    assert.is(r.code, 2);
    assert.is(r.stdout, '');
    assert.match(r.stderr, want);
  });
}

test('--version, -V and version print the package version; with --json an object', async () => {
  for (const a of [['--version'], ['-V'], ['version']]) {
    const r = await runCli(...a);
    assert.is(r.code, 0);
    assert.match(r.stdout, /^bpfctl \d+\.\d+\.\d+\n$/);
  }
  const j = await runCli('--version', '--json');
  assert.match(JSON.parse(j.stdout).version, /^\d+\.\d+\.\d+$/);
});

test('an error with --json is one JSON object on stderr with the exit code unchanged', async () => {
  const r = await runCli('scale', 'x', '--json');
  assert.is(r.code, 2);
  const e = JSON.parse(r.stderr) as { code: string; message: string };
  assert.is(e.code, 'E_USAGE');
  assert.match(e.message, /missing arguments/);
});

test.run();
