/**
 * bpfctl's command line. `main(args, io)` returns the exit code instead of exiting, so tests run
 * the CLI in-process with captured output (the bpf2go pattern).
 */
import yargs, { type Argv } from 'yargs';
import { BpfctlError } from '../errors.ts';
import { commands } from './commands/index.ts';
import { UsageError } from './errors.ts';
import { createOutput, jsonReplacer, type Sink } from './output.ts';

export { UsageError } from './errors.ts';

export interface Io {
  stdout?: Sink;
  stderr?: Sink;
}

export async function main(args: readonly string[], io: Io = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const wantsJson = args.includes('--json');
  let parser: Argv = yargs([...args])
    .scriptName('bpfctl')
    .option('json', { type: 'boolean', default: false, describe: 'Machine-readable JSON output' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Full error details (verifier log, clang output)' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No progress messages' })
    .middleware((argv) => {
      // With --json, stderr carries only the error object, so scripts can parse it.
      argv.out = createOutput({ json: Boolean(argv.json), quiet: Boolean(argv.quiet) || Boolean(argv.json), stdout: io.stdout, stderr: io.stderr });
    })
    .demandCommand(1, 'name a command (bpfctl --help lists them)')
    .strict()
    .recommendCommands()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  for (const c of commands) parser = parser.command(c);
  try {
    await parser.parseAsync();
    // Not process.exitCode: in-process callers (tests, embedding code) may have set it for their
    // own reasons, and no command sets it.
    return 0;
  } catch (err) {
    reportError(err, { json: wantsJson, verbose: args.includes('--verbose') || args.includes('-v'), stderr });
    return err instanceof UsageError ? 2 : 1;
  }
}

function reportError(err: unknown, o: { json: boolean; verbose: boolean; stderr: Sink }): void {
  if (o.json) {
    const body =
      err instanceof BpfctlError
        ? { ...err.toJSON(), ...(o.verbose ? { detail: err.detail() } : {}) }
        : { error: 'Error', message: String((err as Error)?.message ?? err) };
    o.stderr.write(`${JSON.stringify(body, jsonReplacer, 2)}\n`);
    return;
  }
  if (err instanceof BpfctlError) {
    o.stderr.write(`bpfctl: ${err.message}\n`);
    const detail = err.detail();
    // Most details start with the one-line message: print only what they add to it.
    const more = detail.startsWith(err.message) ? detail.slice(err.message.length).replace(/^\n+/, '') : detail;
    if (o.verbose && more) o.stderr.write(`${more}\n`);
    else if (more) o.stderr.write('(run with --verbose for details)\n');
    return;
  }
  const e = err as Error;
  o.stderr.write(`bpfctl: internal error: ${e?.stack ?? String(err)}\n`);
}
