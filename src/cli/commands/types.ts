import type { ArgumentsCamelCase, CommandModule } from 'yargs';
import type { Output } from '../output.ts';

/** Options every command receives (set by the global middleware in main.ts). */
export interface GlobalArgs {
  json: boolean;
  verbose: boolean;
  quiet: boolean;
  out: Output;
}

// biome-ignore lint/suspicious/noExplicitAny: yargs command modules are heterogeneous by design
export type Command = CommandModule<any, any>;
export type Args<T> = ArgumentsCamelCase<T & GlobalArgs>;

/**
 * A command whose handler sees its own typed arguments plus the global ones. yargs cannot infer
 * the positional types from `builder`, so each command states them once here.
 */
export function defineCommand<T>(c: {
  command: string;
  describe: string;
  builder?: Command['builder'];
  handler: (argv: Args<T>) => void | Promise<void>;
}): Command {
  return c as Command;
}
