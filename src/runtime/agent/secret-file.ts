/**
 * The node-link secret file (a mounted Kubernetes Secret's key, or any file): read at start, and
 * again when it changes (agent.ts follows it). Surrounding whitespace is not part of the secret
 * (`echo SECRET > file`, a Secret made with a trailing newline).
 */
import { readFileSync } from 'node:fs';
import { AgentError } from './errors.ts';

/** The agent refuses a shorter secret (an HMAC key guessable by search is no key). */
export const MIN_SECRET_BYTES = 16;

/** The secret in a file. @throws AgentError when it cannot be read, is empty or too short */
export function readSecretFile(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError(`cannot read the secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const secret = Buffer.from(text.trim());
  if (secret.length === 0) throw new AgentError(`the secret file ${path} is empty`);
  if (secret.length < MIN_SECRET_BYTES) throw new AgentError(`the secret in ${path} is ${secret.length} bytes: the policy secret must be at least ${MIN_SECRET_BYTES} bytes`);
  return secret;
}
