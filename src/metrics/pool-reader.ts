/** The chain's shared-memory pool, read from its file's header and metadata (what `bpfctl pool stat` shows). */
import { Pool } from '../runtime/pool/index.ts';

export interface PoolReading {
  buffers: number;
  inUse: number;
  allocFailures: number;
}

/** null when the pool does not exist (the policy is loaded but no chain runs). @throws PoolError on a broken file */
export function readPool(name: string): PoolReading | null {
  let pool: Pool;
  try {
    pool = Pool.open(name);
  } catch (err) {
    if ((err as { code?: string }).code === 'E_POOL_NOENT') return null;
    throw err;
  }
  try {
    const s = pool.stats();
    return { buffers: s.bufferCount, inUse: s.inUse, allocFailures: Number(s.counters.allocFails) };
  } finally {
    pool.close();
  }
}
