/**
 * A shared-memory buffer pool several processes map at once (TS through this class, C and DPDK
 * through bpf/include/bpfctl/pool.h). The layout is in src/schema/pool-layout.ts / docs/pool.md.
 *
 * Lock-free across processes: the free list is a Treiber stack whose head is one 64-bit word
 * {tag, index}; every push and pop bumps the tag, so a head that was popped and pushed back in
 * between (ABA) fails the CAS. A free is a single 64-bit CAS of the buffer's {gen, state} word from
 * {g, IN_USE} to {g+1, FREE}: of two racing frees exactly one wins, and a descriptor carrying an
 * older generation can never free (or pass validate() on) a buffer that was reused since.
 *
 * Atomics work on the koffi view even though it is not a SharedArrayBuffer: V8 emits the same
 * locked instructions for either, which is what makes them atomic against the C side too.
 */
import * as backing from './backing.ts';
import { PoolError } from './errors.ts';
import {
  BACKING_CODE,
  type BackingKind,
  backingName,
  geometry,
  HDR,
  HEADER_SIZE,
  MAGIC,
  MAX_MAPPED,
  META,
  META_OFF,
  META_SIZE,
  NONE,
  PAGE_SIZE,
  STATE_FREE,
  STATE_IN_USE,
  VERSION,
} from '../../schema/pool-layout.ts';

/** A buffer handed out by alloc(): what goes into a descriptor (buf_off, buf_gen). */
export interface BufRef {
  readonly index: number;
  /** Byte offset of the buffer from the start of the mapping. */
  readonly offset: number;
  readonly gen: number;
}

export interface PoolCreateOptions {
  /** 1-64 of [A-Za-z0-9_.-]; the file is `bpfctl-pool-<name>` on hugetlbfs or /dev/shm. */
  name: string;
  /** Bytes per buffer, rounded up to a multiple of 64 (a cache line). */
  bufferSize: number;
  bufferCount: number;
  /** 'auto' (default): hugetlbfs when a mount has enough free huge pages, else /dev/shm. */
  backing?: 'auto' | 'hugetlbfs' | 'shm' | 'memfd';
  /** File mode of the pool file (default 0o600: only the supervisor's user maps it). */
  mode?: number;
  /** Bytes of extension area between the metadata and the buffers (the packet plane); default 0. */
  extSize?: number;
}

export interface PoolStats {
  backing: string;
  path: string;
  size: number;
  bufferSize: number;
  bufferCount: number;
  inUse: number;
  free: number;
  byOwner: Record<number, number>;
  counters: { allocs: bigint; frees: bigint; allocFails: bigint; reclaimed: bigint; refused: bigint };
}

// Word indexes, copied out of pool-layout.ts once: imported bindings can compile to getter calls
// (under tsx they did, and cost more than the atomics on the hot path).
const W_HEAD = HDR.freeHead / 8; // in 64-bit words
const W_ALLOCS = HDR.allocs / 8;
const W_FREES = HDR.frees / 8;
const W_ALLOC_FAILS = HDR.allocFails / 8;
const W_RECLAIMED = HDR.reclaimed / 8;
const W_REFUSED = HDR.refused / 8;
const M_BASE = META_OFF / 4; // u32 index of metadata entry 0
const M_WORDS = META_SIZE / 4; // u32 words per entry
const M_NEXT = META.next / 4;
const M_OWNER = META.owner / 4;
const M_GEN = META.gen / 4;
const M_STATE = META.state / 4;
const IN_USE = STATE_IN_USE;
const NIL = NONE;
const IN_USE_HI = BigInt(STATE_IN_USE) << 32n;
const LOW32 = 0xffffffffn;
const TAG_ONE = 2 ** 32;

export class Pool {
  readonly path: string;
  readonly backing: string;
  readonly bufferSize: number;
  readonly bufferCount: number;
  readonly dataOffset: number;
  readonly size: number;
  /** The extension area (docs/packet-chains.md): offset and bytes, 0 and 0 when there is none. */
  readonly extOffset: number;
  readonly extSize: number;

  #mapping: backing.Mapping | undefined;
  #fd: number;
  // Dropped on close(): every method checks #mapping first, so a call after close throws
  // E_POOL_CLOSED instead of touching unmapped memory.
  #u32: Uint32Array;
  #u64: BigUint64Array;
  #u8: Uint8Array;

  private constructor(path: string, m: backing.Mapping, fd: number) {
    this.path = path;
    this.#mapping = m;
    this.#fd = fd;
    this.#u32 = new Uint32Array(m.buffer);
    this.#u64 = new BigUint64Array(m.buffer);
    this.#u8 = new Uint8Array(m.buffer);
    const u = this.#u32;
    this.backing = backingName(u[HDR.backing / 4]!);
    this.bufferSize = u[HDR.bufSize / 4]!;
    this.bufferCount = u[HDR.bufCount / 4]!;
    this.dataOffset = u[HDR.dataOff / 4]!;
    this.extOffset = u[HDR.extOff / 4]!;
    this.extSize = u[HDR.extSize / 4]!;
    this.size = Number(this.#u64[HDR.totalSize / 8]!);
  }

  /**
   * Create a pool file and map it. Throws PoolError E_POOL_ARG (bad name/sizes, more than 4 GiB),
   * E_POOL_EXISTS, E_POOL_NO_HUGEPAGES (backing 'hugetlbfs' without enough free pages), E_POOL_MAP.
   */
  static create(o: PoolCreateOptions): Pool {
    backing.checkName(o.name);
    if (!Number.isInteger(o.bufferSize) || o.bufferSize < 1) throw new PoolError('E_POOL_ARG', `bufferSize must be a positive integer, got ${o.bufferSize}`);
    if (!Number.isInteger(o.bufferCount) || o.bufferCount < 1 || o.bufferCount >= NONE) {
      throw new PoolError('E_POOL_ARG', `bufferCount must be a positive integer, got ${o.bufferCount}`);
    }
    const extSize = o.extSize ?? 0;
    if (!Number.isInteger(extSize) || extSize < 0) throw new PoolError('E_POOL_ARG', `extSize must be a non-negative integer, got ${extSize}`);
    const want = o.backing ?? 'auto';
    const probe = geometry(o.bufferSize, o.bufferCount, PAGE_SIZE, extSize);
    if (probe.usedSize > MAX_MAPPED) {
      throw new PoolError('E_POOL_ARG', `pool of ${probe.usedSize} bytes: descriptors address at most 4 GiB (u32 buf_off)`);
    }
    let huge: backing.HugeInfo | undefined;
    if (want === 'auto' || want === 'hugetlbfs') {
      huge = backing.hugeFor(probe.usedSize);
      if (!huge && want === 'hugetlbfs') {
        throw new PoolError(
          'E_POOL_NO_HUGEPAGES',
          `no hugetlbfs mount with ${probe.usedSize} bytes of free huge pages (set /proc/sys/vm/nr_hugepages and mount -t hugetlbfs none /dev/hugepages)`,
        );
      }
    }
    const kinds: BackingKind[] = want === 'auto' ? (huge ? ['hugetlbfs', 'shm'] : ['shm']) : [want];
    let lastErr: unknown;
    for (const kind of kinds) {
      const pageSize = kind === 'hugetlbfs' && huge ? huge.pageSize : PAGE_SIZE;
      const g = geometry(o.bufferSize, o.bufferCount, pageSize, extSize);
      try {
        const made = backing.createBacking(kind, o.name, g.totalSize, { mode: o.mode ?? 0o600, huge: kind === 'hugetlbfs' ? huge : undefined });
        initHeader(made.mapping.buffer, g, BACKING_CODE[kind]);
        return new Pool(made.path, made.mapping, made.fd);
      } catch (err) {
        // auto: huge pages counted free can still be gone by mmap time (another process); fall back.
        if (want !== 'auto' || (err as PoolError).code === 'E_POOL_EXISTS') throw err;
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /**
   * Map an existing pool (by path, or by name on hugetlbfs / /dev/shm). Throws PoolError
   * E_POOL_NOENT, E_POOL_BAD_FILE (magic, version or sizes disagree with the file), E_POOL_MAP.
   */
  static open(pathOrName: string): Pool {
    const path = backing.resolvePoolPath(pathOrName);
    const m = backing.openBacking(path);
    try {
      checkHeader(m, path);
    } catch (err) {
      backing.unmap(m);
      throw err;
    }
    return new Pool(path, m, -1);
  }

  /** Remove a pool file (name or path). Processes that have it mapped keep their mapping. E_POOL_NOENT. */
  static remove(pathOrName: string): void {
    const path = backing.resolvePoolPath(pathOrName);
    // A memfd pool has no name to remove: it lives as long as a descriptor or mapping does.
    if (/^\/proc\/\d+\/fd\/\d+$/.test(path)) return;
    backing.removeFile(path);
  }

  /** Find the file of a named pool (hugetlbfs mounts first, then /dev/shm). E_POOL_NOENT. */
  static resolve(nameOrPath: string): string {
    return backing.resolvePoolPath(nameOrPath);
  }

  /** Take a free buffer for `owner` (default: this process). null when the pool is exhausted. */
  alloc(owner: number = process.pid): BufRef | null {
    this.#live();
    const u32 = this.#u32;
    const u64 = this.#u64;
    for (;;) {
      const head = Atomics.load(u64, W_HEAD);
      const index = Number(BigInt.asUintN(32, head));
      if (index === NIL) {
        Atomics.add(u64, W_ALLOC_FAILS, 1n);
        return null;
      }
      const m = M_BASE + index * M_WORDS;
      // A plain read: a stale or torn link (another process popped `index` meanwhile) only
      // matters if the head is unchanged, and then the tagged CAS fails anyway.
      const next = u32[m + M_NEXT]!;
      // tag + 1 and index -> next in one BigInt add (BigInt ops allocate; this is the hot path).
      // The tag wraps because BigUint64Array stores are modulo 2^64.
      if (Atomics.compareExchange(u64, W_HEAD, head, head + BigInt(TAG_ONE + next - index)) !== head) continue;
      // Owner before state: a reclaim scan that sees IN_USE also sees who owns it.
      Atomics.store(u32, m + M_OWNER, owner);
      Atomics.store(u32, m + M_STATE, IN_USE);
      Atomics.add(u64, W_ALLOCS, 1n);
      // Plain read: only a free (which needs this allocation's gen) could change it.
      return { index, offset: this.dataOffset + index * this.bufferSize, gen: u32[m + M_GEN]! };
    }
  }

  /**
   * Give a buffer back; its generation moves on so every descriptor still naming it goes stale.
   * With `owner`, the buffer must belong to it. Throws PoolError E_POOL_BAD_OFFSET,
   * E_POOL_DOUBLE_FREE, E_POOL_STALE, E_POOL_NOT_OWNER.
   */
  free(ref: { offset: number; gen: number }, owner?: number): void {
    this.#live();
    const index = this.#indexOf(ref.offset);
    const m = M_BASE + index * M_WORDS;
    if (owner !== undefined) {
      const cur = Atomics.load(this.#u32, m + M_OWNER);
      if (cur !== owner) {
        this.#refused();
        throw new PoolError('E_POOL_NOT_OWNER', `buffer at offset ${ref.offset} belongs to pid ${cur}, not ${owner}`, { path: this.path });
      }
    }
    const expected = IN_USE_HI | BigInt(ref.gen >>> 0);
    const seen = Atomics.compareExchange(this.#u64, (m + M_GEN) / 2, expected, BigInt((ref.gen + 1) >>> 0));
    if (seen !== expected) {
      this.#refused();
      const gen = Number(seen & LOW32);
      const state = Number(seen >> 32n);
      if (state === STATE_FREE && gen === ((ref.gen + 1) >>> 0)) {
        throw new PoolError('E_POOL_DOUBLE_FREE', `double free of the buffer at offset ${ref.offset} (generation ${ref.gen})`, { path: this.path });
      }
      throw new PoolError('E_POOL_STALE', `stale descriptor: buffer at offset ${ref.offset} has generation ${gen} (${state === STATE_FREE ? 'free' : 'in use'}), descriptor has ${ref.gen}`, {
        path: this.path,
      });
    }
    this.#push(index, m);
    Atomics.add(this.#u64, W_FREES, 1n);
  }

  /** True when `offset` starts a buffer that is in use with generation `gen` (stale-descriptor check). */
  validate(offset: number, gen: number): boolean {
    this.#live();
    const rel = offset - this.dataOffset;
    if (!Number.isInteger(rel) || rel < 0 || rel % this.bufferSize !== 0 || rel / this.bufferSize >= this.bufferCount) return false;
    const w = (M_BASE + (rel / this.bufferSize) * M_WORDS + M_GEN) / 2;
    return Atomics.load(this.#u64, w) === (IN_USE_HI | BigInt(gen >>> 0));
  }

  /**
   * Hand the buffer to `newOwner` (the next process of a chain), so a reclaim after the old owner
   * dies leaves it alone. Throws PoolError E_POOL_BAD_OFFSET, E_POOL_STALE.
   */
  transfer(ref: { offset: number; gen: number }, newOwner: number): void {
    this.#live();
    const index = this.#indexOf(ref.offset);
    if (!this.validate(ref.offset, ref.gen)) {
      throw new PoolError('E_POOL_STALE', `cannot transfer buffer at offset ${ref.offset}: generation ${ref.gen} is not in use`, { path: this.path });
    }
    Atomics.store(this.#u32, M_BASE + index * M_WORDS + M_OWNER, newOwner);
  }

  /**
   * A zero-copy view of `length` bytes (default: to the end of the buffer) at `offset`, which must
   * lie inside one buffer. The view dies with close(): do not keep it past that. E_POOL_RANGE.
   */
  bytes(offset: number, length?: number): Uint8Array {
    this.#live();
    const rel = offset - this.dataOffset;
    if (!Number.isInteger(rel) || rel < 0 || rel >= this.bufferCount * this.bufferSize) {
      throw new PoolError('E_POOL_RANGE', `offset ${offset} is outside the buffers of this pool`, { path: this.path });
    }
    const end = this.dataOffset + (Math.floor(rel / this.bufferSize) + 1) * this.bufferSize;
    const len = length ?? end - offset;
    if (!Number.isInteger(len) || len < 0 || offset + len > end) {
      throw new PoolError('E_POOL_RANGE', `${len} bytes at offset ${offset} cross the end of the buffer`, { path: this.path });
    }
    return this.#u8.subarray(offset, offset + len);
  }

  /** Free every buffer owned by `owner` (a process that is gone). Returns how many were freed. */
  reclaim(owner: number): number {
    this.#live();
    const u32 = this.#u32;
    let n = 0;
    for (let i = 0; i < this.bufferCount; i++) {
      const m = M_BASE + i * M_WORDS;
      if (Atomics.load(u32, m + M_OWNER) !== owner) continue;
      const seen = Atomics.load(this.#u64, (m + M_GEN) / 2);
      if (seen < IN_USE_HI) continue; // state (high half) is free
      // The same CAS as free(): if the owner (or anyone) freed it meanwhile, this one loses.
      if (Atomics.compareExchange(this.#u64, (m + M_GEN) / 2, seen, (seen + 1n) & LOW32) !== seen) continue;
      this.#push(i, m);
      n++;
    }
    if (n) {
      Atomics.add(this.#u64, W_FREES, BigInt(n));
      Atomics.add(this.#u64, W_RECLAIMED, BigInt(n));
    }
    return n;
  }

  /**
   * Reclaim the buffers of every owner pid that no longer exists (kill(pid, 0) says ESRCH).
   * Owners with the top bit set are not pids but queues (a packet ring, docs/packet-chains.md):
   * what waits in a ring belongs to no process and is left alone.
   */
  reclaimDead(): number {
    let n = 0;
    for (const pid of Object.keys(this.stats().byOwner).map(Number)) if (pid < 0x80000000 && !pidAlive(pid)) n += this.reclaim(pid);
    return n;
  }

  stats(): PoolStats {
    this.#live();
    const u32 = this.#u32;
    const u64 = this.#u64;
    const byOwner: Record<number, number> = {};
    let inUse = 0;
    for (let i = 0; i < this.bufferCount; i++) {
      const m = M_BASE + i * M_WORDS;
      if (Atomics.load(u32, m + M_STATE) !== IN_USE) continue;
      inUse++;
      const owner = Atomics.load(u32, m + M_OWNER);
      byOwner[owner] = (byOwner[owner] ?? 0) + 1;
    }
    return {
      backing: this.backing,
      path: this.path,
      size: this.size,
      bufferSize: this.bufferSize,
      bufferCount: this.bufferCount,
      inUse,
      free: this.bufferCount - inUse,
      byOwner,
      counters: {
        allocs: Atomics.load(u64, W_ALLOCS),
        frees: Atomics.load(u64, W_FREES),
        allocFails: Atomics.load(u64, W_ALLOC_FAILS),
        reclaimed: Atomics.load(u64, W_RECLAIMED),
        refused: Atomics.load(u64, W_REFUSED),
      },
    };
  }

  /** Unmap (and for memfd, close) the pool. Idempotent. Views from bytes() must not be used after. */
  close(): void {
    const m = this.#mapping;
    if (!m) return;
    this.#mapping = undefined;
    this.#u32 = new Uint32Array(0);
    this.#u64 = new BigUint64Array(0);
    this.#u8 = new Uint8Array(0);
    backing.unmap(m);
    if (this.#fd >= 0) backing.closeFd(this.#fd);
    this.#fd = -1;
  }

  #push(index: number, m: number): void {
    const u32 = this.#u32;
    const u64 = this.#u64;
    Atomics.store(u32, m + M_OWNER, 0);
    for (;;) {
      const head = Atomics.load(u64, W_HEAD);
      const top = Number(BigInt.asUintN(32, head));
      Atomics.store(u32, m + M_NEXT, top);
      if (Atomics.compareExchange(u64, W_HEAD, head, head + BigInt(TAG_ONE + index - top)) === head) return;
    }
  }

  #indexOf(offset: number): number {
    const rel = offset - this.dataOffset;
    if (!Number.isInteger(rel) || rel < 0 || rel % this.bufferSize !== 0 || rel / this.bufferSize >= this.bufferCount) {
      this.#refused();
      throw new PoolError('E_POOL_BAD_OFFSET', `offset ${offset} is not the start of a buffer of this pool`, { path: this.path });
    }
    return rel / this.bufferSize;
  }

  /**
   * The whole mapping, for layouts that live inside the pool file (the packet plane at
   * `extOffset`). Valid until close(); E_POOL_CLOSED after.
   */
  mapping(): ArrayBuffer {
    this.#live();
    return this.#mapping!.buffer;
  }

  #live(): void {
    if (this.#mapping === undefined) throw new PoolError('E_POOL_CLOSED', `pool ${this.path} is closed`, { path: this.path });
  }

  #refused(): void {
    if (this.#mapping) Atomics.add(this.#u64, W_REFUSED, 1n);
  }
}

/** True unless kill(pid, 0) says the process does not exist (EPERM means it does). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function initHeader(buf: ArrayBuffer, g: ReturnType<typeof geometry>, backingCode: number): void {
  const u32 = new Uint32Array(buf);
  const u64 = new BigUint64Array(buf);
  u32[HDR.version / 4] = VERSION;
  u32[HDR.headerSize / 4] = HEADER_SIZE;
  u32[HDR.metaSize / 4] = META_SIZE;
  u32[HDR.bufSize / 4] = g.bufSize;
  u32[HDR.bufCount / 4] = g.bufCount;
  u32[HDR.metaOff / 4] = META_OFF;
  u32[HDR.dataOff / 4] = g.dataOff;
  u32[HDR.extOff / 4] = g.extOff;
  u32[HDR.extSize / 4] = g.extSize;
  u64[HDR.totalSize / 8] = BigInt(g.totalSize);
  u32[HDR.creatorPid / 4] = process.pid;
  u32[HDR.backing / 4] = backingCode;
  for (let i = 0; i < g.bufCount; i++) {
    const m = M_BASE + i * M_WORDS;
    u32[m + M_NEXT] = i + 1 < g.bufCount ? i + 1 : NONE;
    // owner, gen, state start at zero (a fresh file is zero-filled): free, generation 0.
  }
  u64[W_HEAD] = 0n; // tag 0, index 0
  // Last, with a release store: whoever sees the magic sees everything above.
  Atomics.store(u32, HDR.magic / 4, MAGIC);
}

function checkHeader(m: backing.Mapping, path: string): void {
  const u32 = new Uint32Array(m.buffer);
  const bad = (why: string) => new PoolError('E_POOL_BAD_FILE', `${path} is not a usable pool: ${why}`, { path });
  const magic = Atomics.load(u32, HDR.magic / 4);
  if (magic !== MAGIC) throw bad(`magic 0x${magic.toString(16)}, expected 0x${MAGIC.toString(16)} (not a pool, or still being created)`);
  const version = u32[HDR.version / 4]!;
  if (version !== VERSION) throw bad(`layout version ${version}, this bpfctl speaks ${VERSION}`);
  if (u32[HDR.headerSize / 4] !== HEADER_SIZE || u32[HDR.metaSize / 4] !== META_SIZE || u32[HDR.metaOff / 4] !== META_OFF) {
    throw bad('header/metadata sizes differ from this layout');
  }
  const bufSize = u32[HDR.bufSize / 4]!;
  const bufCount = u32[HDR.bufCount / 4]!;
  const extOff = u32[HDR.extOff / 4]!;
  const extSize = u32[HDR.extSize / 4]!;
  const g = geometry(bufSize, bufCount, PAGE_SIZE, extSize);
  if (g.extOff !== extOff) throw bad(`extension area at ${extOff}, expected ${g.extOff}`);
  if (g.bufSize !== bufSize || bufCount === 0) throw bad(`buffer size ${bufSize} is not a multiple of 64, or no buffers`);
  if (u32[HDR.dataOff / 4] !== g.dataOff) throw bad(`data offset ${u32[HDR.dataOff / 4]}, expected ${g.dataOff}`);
  const total = Number(new BigUint64Array(m.buffer)[HDR.totalSize / 8]!);
  if (total < g.usedSize || total > m.length) throw bad(`total size ${total} does not fit ${g.usedSize} bytes of layout in a ${m.length}-byte file`);
}
