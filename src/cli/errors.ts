import { BpfctlError } from '../errors.ts';

/** A command line bpfctl cannot act on (unknown command or option, wrong arguments): exit code 2. */
export class UsageError extends BpfctlError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}
