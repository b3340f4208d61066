import { BpfctlError } from '../../errors.ts';

/** The chain could not be started (an instance died before registering, the start was aborted, ...). */
export class ChainStartError extends BpfctlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CHAIN_START', message, options);
  }
  override detail(): string {
    const c = this.cause;
    return c instanceof Error && c.message !== this.message ? `${this.message}\n${c.message}` : this.message;
  }
}

/** A `scale` request the running chain cannot honour. */
export class ScaleError extends BpfctlError {
  constructor(message: string) {
    super('E_SCALE', message);
  }
}
