/**
 * Memory-mapped array maps (`BPF_F_MMAPABLE`): user space reads (and, unless frozen, writes) the
 * values as plain memory, with no syscall per access. That is how a process follows a table that
 * changes live (routes, instances) at the cost of a load per request instead of ~2 us per lookup.
 *
 * The mapping holds `maxEntries` values, each `valueSize` rounded up to 8 bytes, value 0 at offset
 * 0 (the kernel's array layout). It stays valid after the map's fd is closed (the mapping holds a
 * reference to the map) until `unmap()`.
 */
import koffi from 'koffi';
import { LoaderError } from './errors.ts';
import { lastErrno } from './libbpf.ts';
import type { BpfMap } from './map.ts';

/** linux/bpf.h */
export const BPF_F_MMAPABLE = 1 << 10;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const PAGE = 4096;
/** (void *)-1 as koffi returns it. */
const MAP_FAILED = 0xffffffffffffffffn;

let mm: { mmap: (...a: unknown[]) => bigint | null; munmap: (...a: unknown[]) => number } | undefined;
function libc() {
  if (!mm) {
    const h = koffi.load('libc.so.6');
    mm = {
      mmap: h.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as never,
      munmap: h.func('int munmap(void *addr, size_t length)') as never,
    };
  }
  return mm;
}

export class MappedArray {
  /** Bytes of every value, in index order (`stride` apart). */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly stride: number;
  readonly entries: number;
  private ptr: bigint | null;
  private readonly length: number;

  constructor(ptr: bigint, length: number, stride: number, entries: number) {
    this.ptr = ptr;
    this.length = length;
    this.stride = stride;
    this.entries = entries;
    this.bytes = new Uint8Array(koffi.view(ptr, length));
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  /** The value at `index` (a view, not a copy). */
  value(index: number): Uint8Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.entries) throw new RangeError(`index ${index} outside 0..${this.entries - 1}`);
    return this.bytes.subarray(index * this.stride, index * this.stride + this.stride);
  }

  unmap(): void {
    if (this.ptr === null) return;
    libc().munmap(this.ptr, this.length);
    this.ptr = null;
  }
}

/**
 * Maps an array map created with BPF_F_MMAPABLE.
 * @throws LoaderError E_INVAL when the map is not an mmapable array, or mmap's errno otherwise.
 */
export function mmapArray(map: BpfMap, opts: { writable?: boolean } = {}): MappedArray {
  if (map.type !== 'array' || (map.flags & BPF_F_MMAPABLE) === 0) {
    throw new LoaderError('E_INVAL', 22, `map ${map.name} (${map.type}) cannot be memory-mapped: only array maps created with BPF_F_MMAPABLE can`);
  }
  const stride = Math.ceil(map.valueSize / 8) * 8;
  const length = Math.ceil((stride * map.maxEntries) / PAGE) * PAGE;
  const prot = PROT_READ | (opts.writable ? PROT_WRITE : 0);
  const ptr = libc().mmap(null, length, prot, MAP_SHARED, map.fd, 0);
  if (ptr === null || ptr === MAP_FAILED) {
    const errno = lastErrno();
    throw new LoaderError('E_MMAP', errno, `mmap of map ${map.name} (${length} bytes) failed`);
  }
  return new MappedArray(ptr, length, stride, map.maxEntries);
}
