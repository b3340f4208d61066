/**
 * bpfctl's CLI run in-process (`main(args, io)`), as the tests drive it: output captured, exit
 * code returned, nothing printed.
 */
import * as assert from 'uvu/assert';
import { main } from '../../src/cli/main.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bpfctl ...args` and returns its exit code and output. */
export async function runCli(...args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: { write: (s: string) => void out.push(s) }, stderr: { write: (s: string) => void err.push(s) } });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** Runs `bpfctl ...args --json`, asserts it succeeded and returns the parsed output. */
export async function cliJson<T = unknown>(...args: string[]): Promise<T> {
  const r = await runCli(...args, '--json');
  assert.is(r.code, 0, `bpfctl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
