/**
 * The pool calls of the runtime's hot path, wrapped for hops that must go on cleaning up after a
 * failure: the generation check makes a refused free harmless, so it is counted, not thrown.
 */
import type { Pool } from '../pool/index.ts';
import { META, META_OFF, META_SIZE, STATE_IN_USE } from '../../schema/pool-layout.ts';

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

const EMPTY = new Uint8Array(0);
// Metadata word indexes (u32) of buffer 0 and the stride, from the layout shared with pool.h.
const M_GEN0 = (META_OFF + META.gen) / 4;
const M_STATE0 = (META_OFF + META.state) / 4;
const M_STRIDE = META_SIZE / 4;

/**
 * The per-descriptor pool work of a hop, without allocating: one view of each buffer, created the
 * first time a descriptor names it and reused by every later request in that buffer, and the
 * stale-descriptor check on 32-bit words instead of Pool#validate's BigInt compare (which
 * allocates on every call).
 *
 * For a pool that is not a mapped `Pool` (no dataOffset/bufferCount) it falls back to the plain
 * calls. After `close()` nothing is cached any more: the pool's own calls then throw once the pool
 * is closed, where a cached view would point into an unmapped region.
 */
export class PoolAccess {
  readonly pool: RuntimePool;
  private readonly bufSize: number;
  /** Offset of buffer 0; -1 when unknown (no cache, no fast check). */
  private base: number;
  private readonly count: number;
  /** Whole-buffer views by buffer index (EMPTY: not made yet). */
  private full: Uint8Array[];
  /** Payload views by buffer index: reused while the payload length stays the same. */
  private bodies: Uint8Array[];
  /** The mapping as u32 words (metadata), or null when unknown. */
  private words: Uint32Array | null;

  constructor(pool: RuntimePool) {
    this.pool = pool;
    this.bufSize = pool.bufferSize;
    const p = pool as Partial<Pool>;
    const known = typeof p.dataOffset === 'number' && typeof p.bufferCount === 'number' && p.bufferCount > 0;
    this.base = known ? p.dataOffset! : -1;
    this.count = known ? p.bufferCount! : 0;
    // Arrays filled with one kind of element from the start: no holes, one elements kind.
    this.full = new Array<Uint8Array>(this.count).fill(EMPTY);
    this.bodies = new Array<Uint8Array>(this.count).fill(EMPTY);
    // Every view of a Pool shares the one ArrayBuffer of the whole mapping, metadata included.
    this.words = known ? new Uint32Array(pool.bytes(this.base, 0).buffer) : null;
  }

  /**
   * The buffer's index when `offset` starts a buffer of this pool, else -1 (also once closed).
   * A hop computes it once per descriptor and passes it to the `*At` variants below, which are
   * the plain ones without the division.
   */
  indexOf(offset: number): number {
    const rel = offset - this.base;
    if (this.base < 0 || rel < 0) return -1;
    const i = rel / this.bufSize;
    return (i | 0) === i && i < this.count ? i : -1;
  }

  /**
   * Pool#validate without its 64-bit load (a BigInt per call) and without Atomics (a builtin call
   * per load): two plain 32-bit loads. No snapshot of the {gen, state} word is needed: a buffer
   * only ever holds generation g in state IN_USE from the alloc that issued g until the free
   * that moves it to g+1, so for any descriptor that an alloc issued, gen == g already means in
   * use; the state check refuses generations no alloc has issued yet. A free racing with the
   * check is the race every check has (it could come right after a 64-bit load too): the
   * complete-time check and the generations catch it as before.
   */
  isLive(offset: number, gen: number): boolean {
    const w = this.words;
    const i = this.indexOf(offset);
    if (w === null || i < 0) return isLive(this.pool, offset, gen);
    const m = i * M_STRIDE;
    return w[M_GEN0 + m] === gen >>> 0 && w[M_STATE0 + m] === STATE_IN_USE;
  }

  /** isLive for the buffer `i` (= indexOf(offset)). */
  isLiveAt(i: number, offset: number, gen: number): boolean {
    const w = this.words;
    if (w === null || i < 0) return isLive(this.pool, offset, gen);
    const m = i * M_STRIDE;
    return w[M_GEN0 + m] === gen >>> 0 && w[M_STATE0 + m] === STATE_IN_USE;
  }

  /** buffer() for the buffer `i` (= indexOf(offset)). */
  bufferAt(i: number, offset: number): Uint8Array {
    if (i < 0 || this.base < 0) return this.pool.bytes(offset, this.bufSize);
    let v = this.full[i]!;
    if (v === EMPTY) {
      v = this.pool.bytes(offset, this.bufSize);
      this.full[i] = v;
    }
    return v;
  }

  /** body() for the buffer `i` (= indexOf(offset)). */
  bodyAt(i: number, offset: number, len: number): Uint8Array {
    if (i < 0 || this.base < 0 || len > this.bufSize) return this.pool.bytes(offset, len);
    let v = this.bodies[i]!;
    if (v === EMPTY || v.length !== len) {
      v = this.bufferAt(i, offset).subarray(0, len);
      this.bodies[i] = v;
    }
    return v;
  }

  /** The whole buffer at `offset` (its full capacity). @throws PoolError E_POOL_RANGE, E_POOL_CLOSED */
  buffer(offset: number): Uint8Array {
    const i = this.indexOf(offset);
    if (i < 0) return this.pool.bytes(offset, this.bufSize);
    let v = this.full[i]!;
    if (v === EMPTY) {
      v = this.pool.bytes(offset, this.bufSize);
      this.full[i] = v;
    }
    return v;
  }

  /** The first `len` bytes of the buffer at `offset`. @throws PoolError E_POOL_RANGE, E_POOL_CLOSED */
  body(offset: number, len: number): Uint8Array {
    const i = this.indexOf(offset);
    if (i < 0 || len > this.bufSize) return this.pool.bytes(offset, len);
    let v = this.bodies[i]!;
    if (v === EMPTY || v.length !== len) {
      v = this.buffer(offset).subarray(0, len);
      this.bodies[i] = v;
    }
    return v;
  }

  /** Forgets every view (call before the pool is closed); later calls go to the pool itself. */
  close(): void {
    this.base = -1;
    this.full = [];
    this.bodies = [];
    this.words = null;
  }
}
