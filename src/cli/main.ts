/**
 * bpfctl's command line. `main(args, io)` returns the exit code instead of exiting, so tests run
 * the CLI in-process with captured output (the bpf2go pattern).
 *
 * Only the command being run is imported (commands/index.ts): `--help`, `--version` and simple
 * commands start in about the time Node itself takes.
 */
import type { Argv } from 'yargs';
import { BpfctlError } from '../errors.ts';
import { VERSION } from '../package.ts';
import { CATALOG, type CommandName, LOADERS } from './commands/index.ts';
import { EXIT, UsageError } from './errors.ts';
import { createOutput, jsonReplacer, type Sink } from './output.ts';
import { describeFailure } from './report.ts';

export { EXIT, UsageError } from './errors.ts';

export interface Io {
  stdout?: Sink;
  stderr?: Sink;
}

export async function main(args: readonly string[], io: Io = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const pretty = args.includes('--pretty') || args.includes('-p');
  const wantsJson = pretty || args.includes('--json') || args.includes('-j');
  const first = args.find((a) => !a.startsWith('-'));
  if (args.includes('--version') || args.includes('-V') || (first === 'version' && args[0] === 'version')) {
    stdout.write(wantsJson ? `${JSON.stringify({ version: VERSION, node: process.versions.node })}\n` : `bpfctl ${VERSION}\n`);
    return EXIT.ok;
  }
  try {
    // Imported here, not at the top: `--version` needs none of it.
    const { default: yargs } = await import('yargs');
    let parser: Argv = yargs([...args])
      .scriptName('bpfctl')
      .usage('bpfctl <command> [options]    (bpfctl --version, -V: print the version)\n\nA toolchain and loader for eBPF dataplanes: function chains over shared memory, XDP classifiers, and any eBPF object.')
      .option('json', { alias: 'j', type: 'boolean', default: false, describe: 'Machine-readable JSON output (one document)' })
      .option('pretty', { alias: 'p', type: 'boolean', default: false, describe: 'JSON output, indented (implies --json)' })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Full error details (verifier log, clang output, stack)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No progress messages' })
      .middleware((argv) => {
        if (argv.pretty) argv.json = true;
        // With --json, stderr carries only the error object, so scripts can parse it.
        argv.out = createOutput({ json: Boolean(argv.json), pretty: Boolean(argv.pretty), quiet: Boolean(argv.quiet) || Boolean(argv.json), stdout: io.stdout, stderr: io.stderr });
      })
      .demandCommand(1, 'name a command (bpfctl --help lists them)')
      .strict()
      .recommendCommands()
      .help()
      .alias('help', 'h')
      .version(false)
      .epilogue('Exit codes: 0 ok, 1 failure, 2 usage error, 77 insufficient privileges. Docs: docs/README.md')
      .wrap(Math.min(100, process.stdout.columns || 80))
      .exitProcess(false)
      .fail((msg, err) => {
        if (err) throw err;
        // yargs' own words for a missing positional or subcommand say nothing a person can act on.
        if (/^Not enough non-option arguments/.test(msg) && first !== undefined && Object.hasOwn(CATALOG, first)) {
          const usage = CATALOG[first as CommandName].command;
          const words = args.filter((a) => !a.startsWith('-'));
          if (usage.includes('<command>') && words.length === 1) throw new UsageError(`bpfctl ${first}: name a subcommand (bpfctl ${first} --help lists them)`);
          if (usage.includes('<command>')) throw new UsageError(`bpfctl ${first} ${words[1]}: missing arguments (bpfctl ${first} ${words[1]} --help)`);
          throw new UsageError(`bpfctl ${first}: missing arguments (usage: bpfctl ${usage})`);
        }
        const unknown = /^Unknown arguments?: (.+)$/.exec(msg);
        if (unknown) {
          // yargs lists each option twice (kebab and camel case) and positionals bare.
          const names = unknown[1]!.split(', ').filter((n, _i, all) => !/[A-Z]/.test(n) || !all.includes(n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)));
          const shown = names.map((n) => (args.some((a) => a === `--${n}` || a.startsWith(`--${n}=`) || a === `--no-${n}`) ? `--${n}` : n.length === 1 && args.includes(`-${n}`) ? `-${n}` : n));
          throw new UsageError(`${first !== undefined && Object.hasOwn(CATALOG, first) ? `bpfctl ${first}: ` : ''}unknown ${shown.length > 1 ? 'arguments' : 'argument'} ${shown.join(', ')} (--help lists the options)`);
        }
        const guess = /^Did you mean (.+)\?$/.exec(msg);
        if (guess && first !== undefined) {
          // The word yargs did not know: the command, or the subcommand of a known group.
          const words = args.filter((a) => !a.startsWith('-'));
          const known = Object.hasOwn(CATALOG, first);
          const what = known ? `bpfctl ${first}: unknown subcommand '${words[1] ?? ''}'` : `unknown command '${first}'`;
          throw new UsageError(`${what} (did you mean ${guess[1]}? bpfctl ${known ? `${first} ` : ''}--help lists them)`);
        }
        throw new UsageError(msg);
      });
    parser = parser.command({ command: 'version', describe: 'Print the version (with --json: and the Node version)', handler: () => {} });
    for (const name of Object.keys(CATALOG) as CommandName[]) {
      // The command being run is imported with everything it needs; the others are listed only.
      if (name === first) parser = parser.command(await LOADERS[name]());
      else parser = parser.command({ command: CATALOG[name].command, describe: CATALOG[name].describe, handler: async (argv) => (await LOADERS[name]()).handler(argv) });
    }
    skipHelpCache(parser);
    await parser.parseAsync();
    // Not process.exitCode: in-process callers (tests, embedding code) may have set it for their
    // own reasons, and no command sets it.
    return EXIT.ok;
  } catch (err) {
    return reportError(err, { json: wantsJson, pretty, verbose: args.includes('--verbose') || args.includes('-v'), stderr });
  }
}

/**
 * yargs renders the help text of every command it runs, in case a later failure prints it; bpfctl
 * reports failures itself (`.fail` above) and never prints that text, and rendering it is a fifth
 * of a simple command's start-up (string widths of every line). An internal of yargs, so guarded:
 * if it moves, the only loss is speed.
 */
function skipHelpCache(parser: Argv): void {
  const usage = (parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

/** Prints an error on stderr (one line for people, an object with --json) and returns the exit code. */
function reportError(err: unknown, o: { json: boolean; pretty: boolean; verbose: boolean; stderr: Sink }): number {
  const f = describeFailure(err);
  if (o.json) {
    const body = err instanceof BpfctlError ? { ...err.toJSON(), ...(o.verbose ? { detail: err.detail() } : {}) } : { error: f.kind, code: f.code, message: f.message };
    o.stderr.write(`${JSON.stringify(body, jsonReplacer, o.pretty ? 2 : undefined)}\n`);
    return f.exit;
  }
  o.stderr.write(`bpfctl: ${f.message}\n`);
  // What a person needs to see to fix it (a source line with a caret, clang's first error).
  if (f.excerpt) o.stderr.write(`${f.excerpt}\n`);
  if (o.verbose && f.detail) o.stderr.write(`${f.detail}\n`);
  else if (f.detail) o.stderr.write('(run with --verbose for details)\n');
  return f.exit;
}
