/**
 * The pool's memory layout: one contract shared with `bpf/include/bpfctl/pool.h` (C, DPDK) and
 * documented in `docs/pool.md`. Every number here is a byte offset from the start of the mapping,
 * little-endian. The unit test `test/unit/pool-layout.test.ts` compiles pool.h and checks that
 * offsetof/sizeof agree with these constants, so change both sides together (and bump VERSION).
 *
 *   0            header (HEADER_SIZE bytes: identity, sizes, free-list head, counters)
 *   META_OFF     bufferCount entries of META_SIZE bytes (next, owner, gen, state)
 *   extOff       optional extension area of extSize bytes (page aligned; the packet plane of
 *                docs/packet-chains.md), absent (both 0) in pools that do not need one
 *   dataOff      bufferCount buffers of bufferSize bytes (dataOff is page aligned)
 */

/** "BPFP" in memory (little-endian u32). */
export const MAGIC = 0x50465042;
export const VERSION = 1;

export const CACHE_LINE = 64;
export const PAGE_SIZE = 4096;

/** Header fields (byte offsets). */
export const HDR = {
  magic: 0, // u32, written last by the creator: a reader that sees it sees a complete header
  version: 4, // u32
  headerSize: 8, // u32
  metaSize: 12, // u32 bytes per metadata entry
  bufSize: 16, // u32 buffer stride (multiple of CACHE_LINE)
  bufCount: 20, // u32
  metaOff: 24, // u32
  dataOff: 28, // u32 page aligned
  totalSize: 32, // u64 bytes mapped (rounded to the backing's page size)
  creatorPid: 40, // u32
  backing: 44, // u32 BACKING_CODE
  extOff: 48, // u32 extension area (0: none); was reserved and zero before, so old pools read as "none"
  extSize: 52, // u32 bytes of the extension area
  // 56..63 reserved (zero)
  // The free-list head sits alone on its cache line: every alloc/free CASes it, and sharing the
  // line with read-mostly fields would make every reader of the sizes miss as well.
  freeHead: 64, // u64 { index: low 32 bits, tag: high 32 bits }; index NONE = empty
  // Counters on their own line, away from the head. Statistics only: nothing decides on them.
  allocs: 128, // u64 successful allocations
  frees: 136, // u64 successful frees (reclaims included)
  allocFails: 144, // u64 alloc() on an empty pool
  reclaimed: 152, // u64 buffers freed by reclaim of a dead owner
  refused: 160, // u64 frees refused (double free, stale generation, bad offset)
} as const;

export const HEADER_SIZE = 256;
export const META_OFF = HEADER_SIZE;

/** Per-buffer metadata entry (byte offsets inside one META_SIZE entry). */
export const META = {
  next: 0, // u32 index of the next free buffer while on the free list
  owner: 4, // u32 pid that owns the buffer (0 when free)
  gen: 8, // u32 generation: incremented by every free
  state: 12, // u32 STATE_*; gen and state form one u64 word changed by a single CAS on free
} as const;
export const META_SIZE = 16;

export const STATE_FREE = 0;
export const STATE_IN_USE = 1;

/** Free-list terminator (and "empty" head index). */
export const NONE = 0xffffffff;

export const BACKING_CODE = { hugetlbfs: 1, shm: 2, memfd: 3 } as const;
export type BackingKind = keyof typeof BACKING_CODE;

export function backingName(code: number): BackingKind | 'unknown' {
  for (const [k, v] of Object.entries(BACKING_CODE)) if (v === code) return k as BackingKind;
  return 'unknown';
}

/** Descriptors carry buf_off as a u32, so every buffer must end below 4 GiB. */
export const MAX_MAPPED = 2 ** 32;

export interface Geometry {
  bufSize: number;
  bufCount: number;
  /** Extension area: 0 and 0 when there is none. */
  extOff: number;
  extSize: number;
  dataOff: number;
  /** Bytes actually used by the layout (before rounding to the backing's page size). */
  usedSize: number;
  /** Bytes to map: usedSize rounded up to `pageSize`. */
  totalSize: number;
}

export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Compute the layout for a pool; `pageSize` is the backing's page (4 KiB, or 2 MiB on hugetlbfs). */
export function geometry(bufferSize: number, bufferCount: number, pageSize = PAGE_SIZE, extSize = 0): Geometry {
  const bufSize = alignUp(bufferSize, CACHE_LINE);
  const metaEnd = alignUp(META_OFF + bufferCount * META_SIZE, PAGE_SIZE);
  const extOff = extSize > 0 ? metaEnd : 0;
  const dataOff = extSize > 0 ? alignUp(extOff + extSize, PAGE_SIZE) : metaEnd;
  const usedSize = dataOff + bufSize * bufferCount;
  return { bufSize, bufCount: bufferCount, extOff, extSize, dataOff, usedSize, totalSize: alignUp(usedSize, pageSize) };
}
