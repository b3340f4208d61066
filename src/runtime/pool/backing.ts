/**
 * Where a pool's memory comes from and how it gets mapped: hugetlbfs files, /dev/shm files, or a
 * memfd. libc is reached through koffi (mmap, munmap, memfd_create), which the layering allows for
 * `src/runtime/pool`: it is not libbpf. File descriptors come from node:fs, which hands out real
 * OS descriptors, so open/ftruncate/fstat/close need no FFI.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { PoolError } from './errors.ts';
import { type BackingKind, PAGE_SIZE } from '../../schema/pool-layout.ts';

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x1;
const MFD_CLOEXEC = 0x1;
const MFD_HUGETLB = 0x4;
const MAP_FAILED = 0xffffffffffffffffn;

interface Libc {
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): bigint | null;
  munmap(addr: bigint, length: number): number;
  memfd_create(name: string, flags: number): number;
  strerror(errnum: number): string;
}

let libc: Libc | undefined;
function c(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
      munmap: lib.func('int munmap(void *addr, size_t length)'),
      memfd_create: lib.func('int memfd_create(const char *name, unsigned int flags)'),
      strerror: lib.func('const char *strerror(int errnum)'),
    } as Libc;
  }
  return libc;
}

function errnoText(): string {
  const e = koffi.errno();
  return `${c().strerror(e)} (errno ${e})`;
}

/** Files of named pools: `<dir>/bpfctl-pool-<name>`. */
export const FILE_PREFIX = 'bpfctl-pool-';
export const SHM_DIR = '/dev/shm';

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export function checkName(name: string): void {
  if (!NAME_RE.test(name) || name === '.' || name === '..') {
    throw new PoolError('E_POOL_ARG', `bad pool name '${name}': use 1-64 of [A-Za-z0-9_.-]`);
  }
}

export interface HugeInfo {
  /** Mount point of a hugetlbfs whose page size is `pageSize`. */
  mount: string;
  pageSize: number;
  /** Pages free and not reserved by someone else's mapping. */
  freePages: number;
}

/** The hugetlbfs mounts, each with its page size (mount option `pagesize=`, else the default). */
export function hugetlbfsMounts(): { mount: string; pageSize: number }[] {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/mounts', 'utf8');
  } catch {
    return [];
  }
  const defKb = Number(/^Hugepagesize:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 2048);
  const out: { mount: string; pageSize: number }[] = [];
  for (const line of mounts.split('\n')) {
    const [, mnt, type, opts] = line.split(' ');
    if (type !== 'hugetlbfs' || !mnt) continue;
    const ps = /(?:^|,)pagesize=(\d+)([KMG]?)/.exec(opts ?? '');
    const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>;
    const pageSize = ps ? Number(ps[1]) * (mult[ps[2] ?? ''] ?? 1) : defKb * 1024;
    out.push({ mount: mnt.replace(/\\040/g, ' '), pageSize });
  }
  return out;
}

/** Free (unreserved) huge pages of one size, from sysfs. */
export function freeHugePages(pageSize: number): number {
  const dir = `/sys/kernel/mm/hugepages/hugepages-${pageSize / 1024}kB`;
  try {
    const free = Number(readFileSync(`${dir}/free_hugepages`, 'utf8'));
    const resv = Number(readFileSync(`${dir}/resv_hugepages`, 'utf8'));
    return Math.max(0, free - resv);
  } catch {
    return 0;
  }
}

/** A hugetlbfs mount with enough free pages for `bytes` (rounded up to its page size), if any. */
export function hugeFor(bytes: number): HugeInfo | undefined {
  for (const m of hugetlbfsMounts()) {
    const freePages = freeHugePages(m.pageSize);
    if (freePages * m.pageSize >= Math.ceil(bytes / m.pageSize) * m.pageSize) return { ...m, freePages };
  }
  return undefined;
}

/** Candidate files for a pool name, hugetlbfs mounts first. */
export function candidatePaths(name: string): string[] {
  return [...hugetlbfsMounts().map((m) => join(m.mount, FILE_PREFIX + name)), join(SHM_DIR, FILE_PREFIX + name)];
}

/** A name or a path: names are looked up on the hugetlbfs mounts, then /dev/shm. */
export function resolvePoolPath(nameOrPath: string): string {
  if (nameOrPath.includes('/')) return nameOrPath;
  checkName(nameOrPath);
  const found = candidatePaths(nameOrPath).find((p) => existsSync(p));
  if (!found) throw new PoolError('E_POOL_NOENT', `no pool named '${nameOrPath}' (looked in ${candidatePaths(nameOrPath).join(', ')})`);
  return found;
}

export interface Mapping {
  ptr: bigint;
  length: number;
  buffer: ArrayBuffer;
}

export function mapFd(fd: number, length: number, path: string): Mapping {
  const ptr = c().mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (ptr === null || ptr === MAP_FAILED) {
    throw new PoolError('E_POOL_MAP', `mmap of ${length} bytes of ${path} failed: ${errnoText()}`, { path });
  }
  return { ptr, length, buffer: koffi.view(ptr, length) };
}

export function unmap(m: Mapping): void {
  c().munmap(m.ptr, m.length);
}

export interface Created {
  kind: BackingKind;
  path: string;
  /** Kept open only for memfd (the path is /proc/<pid>/fd/<fd>; the fd is the pool's life). */
  fd: number;
  mapping: Mapping;
}

/**
 * Create and map a new pool file of `size` bytes (already rounded to `pageSize`). Fails with
 * E_POOL_EXISTS rather than reusing a file someone else may have mapped.
 */
export function createBacking(kind: BackingKind, name: string, size: number, o: { mode: number; huge?: HugeInfo }): Created {
  if (kind === 'memfd') {
    const fd = c().memfd_create(`${FILE_PREFIX}${name}`, MFD_CLOEXEC | (o.huge ? MFD_HUGETLB : 0));
    if (fd < 0) throw new PoolError('E_POOL_MAP', `memfd_create failed: ${errnoText()}`);
    const path = `/proc/${process.pid}/fd/${fd}`;
    try {
      ftruncateSync(fd, size);
      return { kind, path, fd, mapping: mapFd(fd, size, path) };
    } catch (err) {
      closeSync(fd);
      throw wrapFs(err, path);
    }
  }
  const dir = kind === 'hugetlbfs' ? o.huge?.mount : SHM_DIR;
  if (!dir) throw new PoolError('E_POOL_NO_HUGEPAGES', 'no hugetlbfs mount');
  const path = join(dir, FILE_PREFIX + name);
  // A name resolves to the first file of that name (hugetlbfs mounts, then /dev/shm): one on
  // another backing would be what every process opening the pool by name maps instead of this.
  const other = candidatePaths(name).find((p) => p !== path && existsSync(p));
  if (other) throw new PoolError('E_POOL_EXISTS', `pool '${name}' exists (${other}); remove it with 'bpfctl pool rm ${name}'`, { path: other });
  let fd: number;
  try {
    fd = openSync(path, 'wx+', o.mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new PoolError('E_POOL_EXISTS', `pool '${name}' exists (${path}); remove it with 'bpfctl pool rm ${name}'`, { path });
    }
    throw wrapFs(err, path);
  }
  try {
    ftruncateSync(fd, size);
    return { kind, path, fd: -1, mapping: mapFd(fd, size, path) };
  } catch (err) {
    // hugetlbfs reserves pages at mmap time: ENOMEM here means too few free huge pages.
    unlinkSync(path);
    throw wrapFs(err, path);
  } finally {
    closeSync(fd);
  }
}

/** Map an existing pool file whole. */
export function openBacking(path: string): Mapping {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PoolError('E_POOL_NOENT', `no pool file ${path}`, { path });
    throw wrapFs(err, path);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < PAGE_SIZE) throw new PoolError('E_POOL_BAD_FILE', `${path} is ${size} bytes: too small to be a pool`, { path });
    return mapFd(fd, size, path);
  } finally {
    closeSync(fd);
  }
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PoolError('E_POOL_NOENT', `no pool file ${path}`, { path });
    throw wrapFs(err, path);
  }
}

function wrapFs(err: unknown, path: string): unknown {
  if (err instanceof PoolError) return err;
  const e = err as NodeJS.ErrnoException;
  return new PoolError('E_POOL_MAP', `${path}: ${e.message}`, { path, cause: err });
}

export function closeFd(fd: number): void {
  closeSync(fd);
}
