/**
 * The bpf(2) calls behind the map hot path (MapHotPath, and BpfMap's lookup/update), as cheap as
 * a call from JavaScript gets. The caller writes the address of a prepared bpf_attr into `slot`
 * and calls `lookup()`, `update()` or `delete()`, which take no arguments and return 0 or
 * -errno.
 *
 * Why no arguments: through koffi each argument costs about 13-16 ns to convert (a call with four
 * integers ~116 ns, with none ~54 ns), and the syscall ~800 ns on this machine, so four
 * arguments alone miss the 1.2x-of-C target of the hot path (measured in bench/maps). libc has no
 * zero-argument bpf call, so `native/map-syscalls.c` holds three, and `slot` is a variable of
 * that library. It is built with the system C compiler (clang, which bpfctl needs anyway) into
 * the cache the first time, keyed by the source's hash, and checked once before use: each
 * command on an attr naming fd -1 must come back -EBADF (or -EPERM, where bpf() is refused to this
 * process whatever it asks).
 *
 * When it cannot be built, loaded or checked, or with BPFCTL_MAP_STUBS=0: libc's syscall() bound
 * with integer-only parameters (koffi's fast call path, ~55 ns more per call).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { cacheRoot, PACKAGE_ROOT } from '../src/package.ts';

const SYS_BPF = 321; // x86-64
const BPF_MAP_LOOKUP_ELEM = 1;
const BPF_MAP_UPDATE_ELEM = 2;
const BPF_MAP_DELETE_ELEM = 3;
/** Bytes of bpf_attr the calls pass: map_fd@0, key@8, value@16, flags@24. */
export const MAP_ATTR_SIZE = 32;
const EBADF = 9;
const EPERM = 1;


export interface MapSyscalls {
  /** 'stub': the zero-argument functions of native/map-syscalls.c; 'syscall': libc syscall() through koffi. */
  readonly kind: 'stub' | 'syscall';
  /** The address of the bpf_attr for the next call (a float64 holds any x86-64 user address exactly). */
  readonly slot: Float64Array;
  readonly lookup: () => number;
  readonly update: () => number;
  readonly delete: () => number;
}

/** One realm's calls, shared by every copy of this module there (an ES and a CommonJS one). */
const STATE_KEY = Symbol.for('bpfctl.loader.mapSyscalls');
const shared = globalThis as Record<symbol, { stub?: MapSyscalls | null; syscall?: MapSyscalls } | undefined>;
shared[STATE_KEY] ??= {};
const state = shared[STATE_KEY];

/** A buffer's address as a number (x86-64 user addresses have 47 bits). */
export function addressNumber(buf: Uint8Array | Float64Array): number {
  const n = Number(koffi.address(buf));
  if (!Number.isSafeInteger(n)) throw new Error(`buffer address ${n} does not fit a safe integer`);
  return n;
}

function newSlot(): Float64Array {
  // Its own ArrayBuffer: memory outside V8's heap, which the GC never moves.
  return new Float64Array(new ArrayBuffer(8));
}

/** libc's syscall() with integer parameters only: koffi's fast path, no pointer probing. */
function viaSyscall(): MapSyscalls {
  if (state.syscall) return state.syscall;
  const sys = koffi.load('libc.so.6').func('long syscall(long nr, long cmd, intptr_t attr, uint32_t size)') as (
    nr: number,
    cmd: number,
    attr: number,
    size: number,
  ) => number;
  const slot = newSlot();
  const call = (cmd: number) => () => (sys(SYS_BPF, cmd, slot[0]!, MAP_ATTR_SIZE) === 0 ? 0 : -koffi.errno());
  state.syscall = { kind: 'syscall', slot, lookup: call(BPF_MAP_LOOKUP_ELEM), update: call(BPF_MAP_UPDATE_ELEM), delete: call(BPF_MAP_DELETE_ELEM) };
  return state.syscall;
}

/** The helper library in the cache, built from its source when it is not there yet; null when it cannot be. */
function nativeLibrary(): string | null {
  const src = join(PACKAGE_ROOT, 'loader/native/map-syscalls.c');
  let code: Buffer;
  try {
    code = readFileSync(src);
  } catch {
    return null;
  }
  const cc = process.env.BPFCTL_CC ?? 'clang';
  const hash = createHash('sha256').update(code).update(`\0${cc}\0${process.arch}`).digest('hex').slice(0, 16);
  const dir = join(cacheRoot(), 'native');
  const lib = join(dir, `map-syscalls-${hash}.so`);
  if (existsSync(lib)) return lib;
  try {
    mkdirSync(dir, { recursive: true });
    // Built under a temporary name and renamed: another process never loads half a file.
    const tmp = `${lib}.${process.pid}.tmp`;
    const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-Wall', '-o', tmp, src], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
    if (r.status !== 0) {
      rmSync(tmp, { force: true });
      return null;
    }
    renameSync(tmp, lib);
    return lib;
  } catch {
    return null;
  }
}

function viaNative(): MapSyscalls | null {
  if (state.stub !== undefined) return state.stub;
  state.stub = null;
  if (process.platform !== 'linux') return null;
  const path = nativeLibrary();
  if (!path) return null;
  let calls: MapSyscalls;
  try {
    const lib = koffi.load(path);
    const slotPtr = (lib.func('void *bpfctl_map_slot(void)') as () => unknown)();
    const slot = new Float64Array(koffi.view(slotPtr, 8));
    const fn = (name: string) => lib.func(`long ${name}(void)`) as () => number;
    calls = { kind: 'stub', slot, lookup: fn('bpfctl_map_lookup'), update: fn('bpfctl_map_update'), delete: fn('bpfctl_map_delete') };
  } catch {
    return null;
  }
  // The check: the kernel's bpf() answered each command about fd -1 (EPERM: bpf() is refused to
  // this process, on both paths alike).
  const probe = new Uint8Array(new ArrayBuffer(MAP_ATTR_SIZE));
  new DataView(probe.buffer).setInt32(0, -1, true);
  calls.slot[0] = addressNumber(probe);
  const answered = (ret: number) => ret === -EBADF || ret === -EPERM;
  if (!answered(calls.lookup()) || !answered(calls.update()) || !answered(calls.delete())) return null;
  state.stub = calls;
  return calls;
}

/** The fastest calls available here (see above); `kind` forces one ('stub' falls back when unavailable). */
export function mapSyscalls(kind?: 'stub' | 'syscall'): MapSyscalls {
  if (kind === 'syscall' || (kind === undefined && process.env.BPFCTL_MAP_STUBS === '0')) return viaSyscall();
  return viaNative() ?? viaSyscall();
}
