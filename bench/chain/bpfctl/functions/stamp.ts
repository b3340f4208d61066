/**
 * Hop 3 of the bench chain (see ../../work.ts): appends the payload's FNV-1a stamp after it, in the
 * same buffer (the gateway copies the result out).
 */
import type { Request } from '../../../../src/runtime/sdk/index.ts';
import { stamp } from '../../work.ts';

export default function handler(req: Request): number {
  return stamp(req.buffer, 0, req.body.length);
}
