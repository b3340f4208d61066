/**
 * Hop 1 of the bench chain (see ../../work.ts): upper-cases the payload in place in the pool buffer.
 */
import type { Request } from '../../../../src/runtime/sdk/index.ts';
import { upper } from '../../work.ts';

export default function handler(req: Request): number {
  return upper(req.buffer, 0, req.body.length);
}
