import { BpfctlError } from '../../errors.ts';

/**
 * Stable codes of pool errors. Descriptor-level refusals (bad offset, double free, stale
 * generation, not the owner) are the ones a function runtime meets on a bad descriptor; the rest
 * come from creating, opening or mapping the pool.
 */
export type PoolErrorCode =
  | 'E_POOL_ARG' // bad name, size or count
  | 'E_POOL_EXISTS' // create: a pool file with that name exists
  | 'E_POOL_NOENT' // open/remove: no such pool
  | 'E_POOL_BAD_FILE' // open: not a pool, other version, or sizes that disagree with the file
  | 'E_POOL_NO_HUGEPAGES' // backing 'hugetlbfs' asked for but not available
  | 'E_POOL_MAP' // mmap/memfd_create/ftruncate failed (errno in the message)
  | 'E_POOL_BAD_OFFSET' // offset is not the start of a buffer of this pool
  | 'E_POOL_DOUBLE_FREE' // the buffer was already freed with this generation
  | 'E_POOL_STALE' // the descriptor's generation is not the buffer's current one
  | 'E_POOL_NOT_OWNER' // free(ref, owner): the buffer belongs to another owner
  | 'E_POOL_RANGE' // bytes(): view outside one buffer
  | 'E_POOL_CLOSED'; // the pool was closed

export class PoolError extends BpfctlError {
  declare readonly code: PoolErrorCode;
  /** Pool file the error is about, when known. */
  readonly path: string | undefined;

  constructor(code: PoolErrorCode, message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause });
    this.path = opts.path;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...(this.path ? { path: this.path } : {}) };
  }
}
