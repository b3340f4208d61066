/**
 * Loader errors. Every failure from libbpf or the bpf() syscall becomes a LoaderError that names
 * the operation, the errno and what usually causes it; a program the verifier rejects becomes a
 * VerifierError whose message is the one line that matters and whose detail() is the full log.
 */
import { constants } from 'node:os';
import { BpfctlError } from '../src/errors.ts';
import { libbpfMessages } from './libbpf.ts';

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);
// Kernel-internal errnos that leak out of bpf() and libbpf's own error space.
ERRNO_NAMES.set(524, 'ENOTSUPP');
const LIBBPF_ERRNO: Record<number, string> = {
  4000: 'LIBELF',
  4001: 'FORMAT',
  4002: 'KVERSION',
  4003: 'ENDIAN',
  4004: 'INTERNAL',
  4005: 'RELOC',
  4006: 'LOAD',
  4007: 'VERIFY',
  4008: 'PROG2BIG',
  4009: 'KVER',
  4010: 'PROGTYPE',
  4011: 'WRNGPID',
  4012: 'INVSEQ',
  4013: 'NLPARSE',
};

export const ENOENT = constants.errno.ENOENT;
export const EPERM = constants.errno.EPERM;
export const EACCES = constants.errno.EACCES;
export const EINVAL = constants.errno.EINVAL;
export const ENOSPC = constants.errno.ENOSPC;
export const EEXIST = constants.errno.EEXIST;
export const EBUSY = constants.errno.EBUSY;
export const E2BIG = constants.errno.E2BIG;
export const EOPNOTSUPP = constants.errno.EOPNOTSUPP;
export const ENOTSUPP = 524;

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? (LIBBPF_ERRNO[errno] ? `LIBBPF_ERRNO__${LIBBPF_ERRNO[errno]}` : `errno ${errno}`);
}

/** The usual cause of an errno from bpf(), in words a person can act on. */
export function explainErrno(errno: number): string {
  switch (errno) {
    case EPERM:
      return 'operation not permitted: bpf() needs root or CAP_BPF (+CAP_NET_ADMIN for networking, CAP_PERFMON for tracing); on kernels before 5.11 also raise RLIMIT_MEMLOCK (ulimit -l unlimited)';
    case EACCES:
      return 'permission denied (the verifier or an LSM refused, or the pin is not accessible)';
    case ENOENT:
      return 'no such file, pin or kernel object';
    case EINVAL:
      return 'invalid argument (the kernel or libbpf rejected the request)';
    case EEXIST:
      return 'already exists (key present with "noexist", or a pin at that path)';
    case EBUSY:
      return 'busy: something is already attached there';
    case E2BIG:
      return 'map is full (max_entries reached) or the argument is too big';
    case ENOSPC:
      return 'no space (map full, or log buffer too small)';
    case EOPNOTSUPP:
    case ENOTSUPP:
      return 'not supported by this kernel, map type or device';
    case 4001:
      return 'not a valid BPF ELF object';
    default:
      return '';
  }
}

/**
 * Every code a LoaderError carries. E_EXIST ("it exists": a key with 'noexist', a pin at that
 * path) is not E_BUSY ("something holds the device or hook": an XDP program already attached).
 */
export type LoaderErrorCode =
  | 'E_NOENT'
  | 'E_PERM'
  | 'E_INVAL'
  | 'E_EXIST'
  | 'E_BUSY'
  | 'E_NOTSUPP'
  | 'E_ELF'
  | 'E_LOADER'
  | 'E_STATE'
  | 'E_BPFFS'
  | 'E_TRACEFS'
  | 'E_MMAP'
  | 'E_MANIFEST'
  | 'E_RDONLY';

function codeFor(errno: number): LoaderErrorCode {
  if (errno === ENOENT) return 'E_NOENT';
  if (errno === EPERM || errno === EACCES) return 'E_PERM';
  if (errno === EINVAL) return 'E_INVAL';
  if (errno === EEXIST) return 'E_EXIST';
  if (errno === EBUSY) return 'E_BUSY';
  if (errno === EOPNOTSUPP || errno === ENOTSUPP) return 'E_NOTSUPP';
  if (errno >= 4000 && errno < 4100) return 'E_ELF';
  return 'E_LOADER';
}

/** A failure in the loader: a libbpf call or a bpf() syscall, with its errno explained. */
export class LoaderError extends BpfctlError {
  declare readonly code: LoaderErrorCode;
  readonly errno: number;
  /** libbpf's own messages around the failure (its print callback), oldest first. */
  readonly libbpfLog: string[];

  constructor(code: LoaderErrorCode, errno: number, message: string, opts: { libbpfLog?: string[]; cause?: unknown } = {}) {
    super(code, message, { cause: opts.cause });
    this.errno = errno;
    this.libbpfLog = opts.libbpfLog ?? [];
  }

  override detail(): string {
    // --verbose adds what the message does not already say.
    const rest = this.libbpfLog.map((l) => l.replace(/^libbpf: /, '')).filter((l) => !this.message.includes(l.trim()));
    return rest.length ? `${this.message}\nlibbpf:\n  ${rest.join('\n  ')}` : this.message;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), errno: this.errno, errnoName: errnoName(this.errno), libbpfLog: this.libbpfLog };
  }
}

/** libbpf's wrap-up lines ("failed to load object 'x'"), which repeat a failure without its cause. */
const GENERIC = [
  /^failed to load object\b/,
  /^failed to open object\b/,
  /^prog '[^']+': failed to load: -?\d+$/,
  /^failed to load BPF skeleton/,
  /^Error loading ELF/,
  /^-- (BEGIN|END) PROG LOAD LOG --$/,
];

/**
 * The line in libbpf's messages that says why an operation failed: the last one that is not a
 * generic wrap-up ("prog 'x': missing BPF prog type, check ELF section name 'sk_skb1'", "elf:
 * legacy map definitions in 'maps' section are not supported ..."). Undefined when libbpf said
 * nothing useful.
 */
export function libbpfReason(log: readonly string[]): string | undefined {
  for (let i = log.length - 1; i >= 0; i--) {
    const line = log[i]!.replace(/^libbpf: /, '').trim();
    if (line && !GENERIC.some((re) => re.test(line))) return line;
  }
  return undefined;
}

function isRoot(): boolean {
  return typeof process.geteuid === 'function' && process.geteuid() === 0;
}

/**
 * Build the LoaderError for `what` failing with `errno` (positive). When libbpf printed why (its
 * messages since the operation began), that reason is the message; otherwise the errno's usual
 * cause. EPERM as root names what refuses root (bpffs names, LSMs) instead of privileges.
 */
export function loaderError(what: string, errno: number, opts: { code?: LoaderErrorCode; hint?: string } = {}): LoaderError {
  const log = libbpfMessages();
  const reason = libbpfReason(log);
  let explained = opts.hint ?? explainErrno(errno);
  if (!opts.hint && (errno === EPERM || errno === EACCES) && isRoot()) {
    explained = `${errno === EPERM ? 'operation not permitted' : 'permission denied'} although running as root (a frozen map, such as .rodata after load; a bpffs name with a dot; an LSM, lockdown or a pin's permissions)`;
  }
  const useReason = reason && !opts.hint && !((errno === EPERM || errno === EACCES) && !isRoot());
  const msg = useReason ? `${what}: libbpf: ${reason} (${errnoName(errno)})` : `${what}: ${errnoName(errno)}${explained ? `: ${explained}` : ''}`;
  return new LoaderError(opts.code ?? codeFor(errno), errno, msg, { libbpfLog: log });
}

/** Throw a LoaderError when a libbpf call returned a negative errno; returns the value otherwise. */
export function check(ret: number, what: string): number {
  if (ret < 0) throw loaderError(what, -ret);
  return ret;
}

/** Lines that carry no information about why verification failed. */
const NOISE = [/^processed \d+ insns/, /^verification time/, /^stack depth/, /^-- (BEGIN|END)/, /^\s*$/, /^max_states_per_insn/];
const INSN = /^(\d+): \(([0-9a-f]{2})\)/;
/** Instruction lines, register state dumps, source comments and branch markers. */
const EAGAIN_ERRNO = 11;
const STATE = /^(\d+: |;|\s*R\d+(_\w+)?=|from \d+ to \d+:|func#)/;

/**
 * The kernel verifier rejected a program. `message` is one line: the failing instruction and the
 * reason, then how many lines of log were left out; `log` and `detail()` hold the whole log.
 */
export class VerifierError extends BpfctlError {
  readonly program: string;
  readonly errno: number;
  readonly log: string[];
  /** The log was cut by the kernel even at the largest buffer we tried. */
  readonly truncated: boolean;

  constructor(program: string, errno: number, log: string[], truncated = false) {
    super('E_VERIFIER', VerifierError.summarise(program, errno, log));
    this.program = program;
    this.errno = errno;
    this.log = log;
    this.truncated = truncated;
  }

  /** `prog 'x' rejected by the verifier (EACCES): 12: (71) r3 = *(u8 *)(r2 +0): invalid access to packet (40 lines omitted)` */
  static summarise(program: string, errno: number, log: string[]): string {
    // The verifier stops when a signal is pending (EAGAIN) and libbpf retries a few times: a
    // process that gets signals faster than verification takes (a sampling CPU profiler's
    // SIGPROF every millisecond or so) can never load the program. Nothing is wrong with it.
    if (errno === EAGAIN_ERRNO) {
      return `prog '${program}' was not verified: the verifier was interrupted by signals every time it tried (EAGAIN, retried by libbpf); this process receives signals faster than verification takes (a CPU profiler such as node --cpu-prof?): load before starting the profiler, or from another process`;
    }
    const meaningful = log.map((l) => l.trimEnd()).filter((l) => !NOISE.some((re) => re.test(l)));
    const prefix = `prog '${program}' rejected by the verifier (${errnoName(errno)})`;
    if (!meaningful.length) return `${prefix}: no verifier log`;
    // The verifier walks every path; past its budget it gives up whatever the code's correctness.
    const tooLarge = meaningful.find((l) => /BPF program is too large|processed \d+ insns \(limit \d+\)/i.test(l) && /too large|limit/.test(l));
    if (tooLarge && /too large/i.test(tooLarge)) {
      return `${prefix}: too complex to verify (${tooLarge.trim()}): the verifier explores every path and ran out of its 1,000,000-instruction budget; split the program, or for a classification section use fewer inline rules and put long lists in sets`;
    }
    // The reason is the trailing text after the last instruction or state dump (one or two
    // lines: "invalid access to packet ..." + "R1 offset is outside of the packet"); the
    // instruction it is about is the last instruction line before it.
    let i = meaningful.length - 1;
    const reason: string[] = [];
    while (i >= 0 && reason.length < 2 && !STATE.test(meaningful[i]!)) reason.unshift(meaningful[i--]!);
    if (!reason.length) reason.push(meaningful[i--]!);
    let insn: string | undefined;
    for (; i >= 0; i--) {
      if (INSN.test(meaningful[i]!)) {
        insn = meaningful[i]!.replace(/\s*;.*$/, '');
        break;
      }
    }
    const shown = reason.length + (insn ? 1 : 0);
    const omitted = Math.max(0, log.length - shown);
    return `${prefix}: ${insn ? `${insn}: ` : ''}${reason.join('; ')}${omitted ? ` (${omitted} ${omitted === 1 ? 'line' : 'lines'} omitted)` : ''}`;
  }

  override detail(): string {
    return `${this.message}\n${this.log.join('\n')}${this.truncated ? '\n[log truncated]' : ''}`;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), program: this.program, errno: this.errno, log: this.log, truncated: this.truncated };
  }
}
