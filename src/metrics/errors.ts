/** Errors of the metrics endpoint: one line each, naming the address or the policy at fault. */
import { BpfctlError } from '../errors.ts';

export class MetricsError extends BpfctlError {
  constructor(code: 'E_METRICS_ADDRESS' | 'E_METRICS_LISTEN', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
