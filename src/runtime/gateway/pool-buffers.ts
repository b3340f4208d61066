/**
 * A Buffer over each pool buffer, made the first time a request uses that buffer and kept: the
 * gateway copies every request body into one and every answer out of one, and `pool.bytes()`
 * makes a new view per call (plus a Buffer around it for `toString('latin1')`): two objects per
 * request for nothing, as the buffers never move.
 *
 * For a pool that is not a mapped `Pool` (no dataOffset/bufferCount) every call makes its view.
 * After `close()` nothing is cached: the pool's own calls then refuse once it is closed, where a
 * kept view would point into an unmapped region.
 */
import { Buffer } from 'node:buffer';
import type { Pool } from '../pool/index.ts';
import type { RuntimePool } from '../sdk/pool-api.ts';

const NONE = Buffer.alloc(0);

export class PoolBuffers {
  private base: number;
  private readonly count: number;
  private readonly size: number;
  private views: Buffer[];

  constructor(private readonly pool: RuntimePool) {
    const p = pool as Partial<Pool>;
    const known = typeof p.dataOffset === 'number' && typeof p.bufferCount === 'number' && p.bufferCount > 0;
    this.base = known ? p.dataOffset! : -1;
    this.count = known ? p.bufferCount! : 0;
    this.size = pool.bufferSize;
    // One elements kind from the start (no holes): the loads stay monomorphic.
    this.views = new Array<Buffer>(this.count).fill(NONE);
  }

  /** The whole buffer at `offset` (bufferSize bytes, the pool's memory). @throws PoolError E_POOL_RANGE, E_POOL_CLOSED */
  at(offset: number): Buffer {
    const rel = offset - this.base;
    const i = rel / this.size;
    if (this.base < 0 || rel < 0 || (i | 0) !== i || i >= this.count) return this.make(offset);
    let v = this.views[i]!;
    if (v === NONE) {
      v = this.make(offset);
      this.views[i] = v;
    }
    return v;
  }

  close(): void {
    this.base = -1;
    this.views = [];
  }

  private make(offset: number): Buffer {
    const u = this.pool.bytes(offset, this.size);
    return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
  }
}
