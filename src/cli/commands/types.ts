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
