/** The one error the Kubernetes manifest generator raises: what it cannot generate, and why. */
import { BpfctlError } from '../../errors.ts';

export class K8sManifestError extends BpfctlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_K8S', message, options);
  }
}
