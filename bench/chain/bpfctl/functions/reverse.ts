/**
 * Hop 2 of the bench chain (see ../../work.ts): reverses the payload in place in the pool buffer.
 */
import type { Request } from '../../../../src/runtime/sdk/index.ts';
import { reverse } from '../../work.ts';

export default function handler(req: Request): number {
  return reverse(req.buffer, 0, req.body.length);
}
