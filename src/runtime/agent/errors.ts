import { BpfctlError } from '../../errors.ts';

/** What the node agent refuses (its options, its policy source, its secret): one line, E_AGENT. */
export class AgentError extends BpfctlError {
  constructor(message: string) {
    super('E_AGENT', message);
  }
}
