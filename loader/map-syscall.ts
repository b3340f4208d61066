/**
 * The bpf(2) calls behind the map hot path (MapHotPath, and BpfMap's lookup/update), as cheap as
 * a call from JavaScript gets. The caller writes the address of a prepared bpf_attr into `slot`
 * and calls `lookup()`, `update()` or `delete()`, which take no arguments and return 0 or
 * -errno.
 *
 * Why no arguments: through koffi each argument costs about 13 ns to convert (a call with four
 * integers ~86 ns, with none ~30 ns), and the syscall costs ~400 ns, so four arguments alone
 * miss the 1.2x-of-C target of the hot path. A C function taking no arguments that makes the
 * syscall does not exist, so on x86-64 Linux we write one per command: 39 bytes of machine code
 * in a page of our own (mapped writable, filled, then made read+execute, never both; the same
 * kind of memory V8's JIT uses, so wherever Node runs this can too), which load the attr address
 * from `slot` and make the syscall. The page lives as long as the process (4 KiB, one per
 * JavaScript realm). They are checked once before use: each command on an attr naming fd -1 must
 * come back -EBADF (or -EPERM, where bpf() is refused to this process whatever it asks).
 *
 * Elsewhere, or when that fails, or with BPFCTL_MAP_STUBS=0: libc's syscall() bound with
 * integer-only parameters (koffi's fast call path, ~55 ns more per call than the stubs).
 */
import koffi from 'koffi';

const SYS_BPF = 321; // x86-64
const BPF_MAP_LOOKUP_ELEM = 1;
const BPF_MAP_UPDATE_ELEM = 2;
const BPF_MAP_DELETE_ELEM = 3;
/** Bytes of bpf_attr the calls pass: map_fd@0, key@8, value@16, flags@24. */
export const MAP_ATTR_SIZE = 32;
const EBADF = 9;
const EPERM = 1;

const PAGE = 4096;
const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_FAILED = 0xffffffffffffffffn;
const STUB_STRIDE = 64;

export interface MapSyscalls {
  /** 'stub': the generated zero-argument functions; 'syscall': libc syscall() through koffi. */
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

/**
 * One command's stub: bpf(cmd, *(double *)slot as a pointer, 32), its result (0 or -errno) in rax.
 * Clobbers only registers the System V ABI lets a callee clobber (rax, rcx, rdx, rsi, rdi, r11).
 */
function stubCode(slotAddress: bigint, cmd: number): number[] {
  const imm64: number[] = [];
  for (let i = 0n; i < 8n; i++) imm64.push(Number((slotAddress >> (8n * i)) & 0xffn));
  const imm32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
  return [
    ...[0xf3, 0x0f, 0x1e, 0xfa], // endbr64 (a landing pad where indirect-branch tracking is on, a nop elsewhere)
    ...[0x48, 0xbe, ...imm64], // movabs rsi, slot
    ...[0xf2, 0x48, 0x0f, 0x2c, 0x36], // cvttsd2si rsi, qword [rsi]: the attr address
    ...[0xbf, ...imm32(cmd)], // mov edi, cmd
    ...[0xba, ...imm32(MAP_ATTR_SIZE)], // mov edx, 32
    ...[0xb8, ...imm32(SYS_BPF)], // mov eax, SYS_bpf
    ...[0x0f, 0x05], // syscall
    0xc3, // ret
  ];
}

function viaStubs(): MapSyscalls | null {
  if (state.stub !== undefined) return state.stub;
  state.stub = null;
  if (process.platform !== 'linux' || process.arch !== 'x64') return null;
  const libc = koffi.load('libc.so.6');
  const mmap = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)') as (...a: unknown[]) => bigint | null;
  const mprotect = libc.func('int mprotect(void *addr, size_t len, int prot)') as (...a: unknown[]) => number;
  const munmap = libc.func('int munmap(void *addr, size_t length)') as (...a: unknown[]) => number;
  const page = mmap(null, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page === null || page === MAP_FAILED) return null;
  const slot = newSlot();
  const slotAddress = koffi.address(slot);
  const cmds = [BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM];
  {
    // A view on the page, dropped before the page stops being writable.
    const code = new Uint8Array(koffi.view(page, PAGE));
    for (const [i, cmd] of cmds.entries()) code.set(stubCode(slotAddress, cmd), i * STUB_STRIDE);
  }
  if (mprotect(page, PAGE, PROT_READ | PROT_EXEC) !== 0) {
    munmap(page, PAGE);
    return null;
  }
  const proto = koffi.proto('long (void)');
  const [lookup, update, del] = cmds.map((_, i) => koffi.decode(page + BigInt(i * STUB_STRIDE), proto) as () => number);
  const calls: MapSyscalls = { kind: 'stub', slot, lookup: lookup!, update: update!, delete: del! };
  // The check: the kernel's bpf() answered each command about fd -1 (EPERM: bpf() is refused to
  // this process, on both paths alike).
  const probe = new Uint8Array(new ArrayBuffer(MAP_ATTR_SIZE));
  new DataView(probe.buffer).setInt32(0, -1, true);
  slot[0] = addressNumber(probe);
  const answered = (ret: number) => ret === -EBADF || ret === -EPERM;
  if (!answered(calls.lookup()) || !answered(calls.update()) || !answered(calls.delete())) {
    munmap(page, PAGE);
    return null;
  }
  state.stub = calls;
  return calls;
}

/** The fastest calls available here (see above); `kind` forces one ('stub' falls back when unavailable). */
export function mapSyscalls(kind?: 'stub' | 'syscall'): MapSyscalls {
  if (kind === 'syscall' || (kind === undefined && process.env.BPFCTL_MAP_STUBS === '0')) return viaSyscall();
  return viaStubs() ?? viaSyscall();
}
