import { BpfctlError } from '../errors.ts';

/**
 * bpfctl's exit codes (documented in `--help` and docs/cli.md). 77 is sysexits' EX_NOPERM: a
 * script can tell "run me as root" from a real failure.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, noPermission: 77 } as const;

/** A command line bpfctl cannot act on (unknown command or option, wrong arguments): exit code 2. */
export class UsageError extends BpfctlError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}
