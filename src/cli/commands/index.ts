/** Every bpfctl command, in the order `--help` lists them. Each file owns one command group. */
import type { Command } from './types.ts';

export const commands: Command[] = [];
