/**
 * The pool calls of the runtime's hot path, wrapped for hops that must go on cleaning up after a
 * failure: the generation check makes a refused free harmless, so it is counted, not thrown.
 */
import type { Pool } from '../pool/index.ts';

export type RuntimePool = Pick<Pool, 'alloc' | 'free' | 'validate' | 'transfer' | 'bytes' | 'bufferSize'>;

export function freeQuietly(pool: RuntimePool, offset: number, gen: number): boolean {
  try {
    pool.free({ offset, gen });
    return true;
  } catch {
    return false;
  }
}

export function isLive(pool: RuntimePool, offset: number, gen: number): boolean {
  try {
    return pool.validate(offset, gen);
  } catch {
    return false;
  }
}

/** Takes ownership of a buffer another process allocated, so reclaiming that process's buffers
 * after it dies leaves this one alone. False when the buffer went stale meanwhile. */
export function adopt(pool: RuntimePool, offset: number, gen: number, owner: number): boolean {
  try {
    pool.transfer({ offset, gen }, owner);
    return true;
  } catch {
    return false;
  }
}
