/** Shared-memory buffer pools (layout shared with bpf/include/bpfctl/pool.h; see docs/pool.md). */
export { FILE_PREFIX, hugetlbfsMounts, resolvePoolPath } from './backing.ts';
export { PoolError, type PoolErrorCode } from './errors.ts';
export * as poolLayout from '../../schema/pool-layout.ts';
export { type BufRef, Pool, type PoolCreateOptions, type PoolStats, pidAlive } from './pool.ts';
