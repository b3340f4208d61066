/**
 * bpffs: pinning programs, maps and links by path, reopening pins, and making directories.
 * Paths must lie on a bpf filesystem; a pin elsewhere fails with a clear error instead of EPERM.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statfsSync, unlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { check, EEXIST, ENOENT, LoaderError, loaderError } from './errors.ts';
import { closeFd, fdKind } from './info.ts';
import { lib } from './libbpf.ts';

const BPF_FS_MAGIC = 0xcafe4a11;
export const DEFAULT_BPFFS = '/sys/fs/bpf';

function nearestExisting(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

export function isBpffs(path: string): boolean {
  try {
    return statfsSync(nearestExisting(path)).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Make sure a bpf filesystem is mounted at `root` (mounting it if not). */
export function ensureBpffs(root = DEFAULT_BPFFS): void {
  if (existsSync(root) && statfsSync(root).type === BPF_FS_MAGIC) return;
  mkdirSync(root, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', root], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new LoaderError('E_BPFFS', 1, `cannot mount bpffs at ${root}: ${stderr || String(err)} (needs root)`);
  }
}

function assertBpffs(path: string): void {
  if (!isBpffs(path)) {
    throw new LoaderError('E_BPFFS', 22, `${path} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf, or use a path under it)`);
  }
}

/** mkdir -p on bpffs (0700: pins carry the same power as the fds they hold). */
export function mkdirp(dir: string): void {
  assertBpffs(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/**
 * The bpffs file name for a program or map name, as bpftool and libbpf (bpf_object__pin_maps)
 * make it: bpffs refuses names containing '.', so `lb_minim.bss` pins as `lb_minim_bss` and
 * `.rodata.str1.1` as `_rodata_str1_1`; '/' would make a directory.
 */
export function pinName(name: string): string {
  return name.replace(/[./]/g, '_') || '_';
}

/** Pin any BPF object fd at `path`, creating parent directories. */
export function pinFd(fd: number, path: string, what: string): void {
  const base = basename(path);
  if (base.includes('.')) {
    throw new LoaderError('E_INVAL', 22, `pin ${what} at ${path}: bpffs refuses names containing '.' (use ${pinName(base)}, as bpftool does)`);
  }
  mkdirp(dirname(path));
  const ret = lib().bpf_obj_pin(fd, path) as number;
  if (ret === -EEXIST) throw loaderError(`pin ${what} at ${path}`, EEXIST, { hint: 'a pin already exists at that path (unpin it first)' });
  check(ret, `pin ${what} at ${path}`);
}

/** Open a pin and check it holds the expected kind of object. The caller owns the returned fd. */
export function openPinnedFd(path: string, kind: 'prog' | 'map' | 'link'): number {
  const fd = lib().bpf_obj_get(path) as number;
  if (fd === -ENOENT) throw loaderError(`open pinned ${kind} ${path}`, ENOENT, { hint: 'nothing is pinned at that path' });
  check(fd, `open pinned ${kind} ${path}`);
  const actual = fdKind(fd);
  if (actual !== kind) {
    closeFd(fd);
    throw new LoaderError('E_INVAL', 22, `${path} holds a ${actual}, not a ${kind}`);
  }
  return fd;
}

/** Remove a pin. Returns false when nothing was pinned there. */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Remove a pin directory and everything pinned below it. */
export function unpinAll(dir: string): void {
  if (!existsSync(dir)) return;
  assertBpffs(dir);
  rmSync(dir, { recursive: true, force: true });
}
