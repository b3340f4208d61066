/**
 * What a failed command prints: one line that names what is wrong, the lines a person needs to
 * fix it, and the exit code. Never a stack trace unless --verbose: an error that is not one of
 * bpfctl's own is still described by its message (and its path, for file-system errors).
 */
import { BpfctlError } from '../errors.ts';
import { EXIT, UsageError } from './errors.ts';

export interface Failure {
  kind: string;
  code: string;
  message: string;
  /** Printed under the message always (source excerpt, first compiler error). */
  excerpt: string;
  /** Printed with --verbose (verifier log, clang's whole output, a stack). */
  detail: string;
  exit: number;
}

/** What an unprivileged user is missing, in one phrase. */
export const PRIVILEGES = 'needs root, or CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN';

const isRoot = () => typeof process.geteuid === 'function' && process.geteuid() === 0;

/** errno-style code of an error or of what it wraps ('EACCES', 'EPERM', ...). */
function errnoCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const c = (e as { code?: unknown }).code;
    if (c === 'EACCES' || c === 'EPERM' || c === 'E_PERM') return c === 'E_PERM' ? 'EPERM' : c;
    const errno = (e as { errno?: unknown }).errno;
    if (errno === 1) return 'EPERM';
    if (errno === 13) return 'EACCES';
  }
  return undefined;
}

/** How a failed system call reads in a sentence: "cannot list /sys/fs/bpf/bpfctl". */
const VERBS: Record<string, string> = {
  scandir: 'cannot list',
  opendir: 'cannot list',
  open: 'cannot open',
  connect: 'cannot connect to',
  mkdir: 'cannot create',
  unlink: 'cannot remove',
  rmdir: 'cannot remove',
  rm: 'cannot remove',
  stat: 'cannot read',
  lstat: 'cannot read',
  access: 'cannot read',
  read: 'cannot read',
  write: 'cannot write',
  chmod: 'cannot change',
  bind: 'cannot listen on',
};

/**
 * A refused operation, as one line: what could not be done, and (for a user who is not root)
 * what it needs. Exit code 77. No detail: a stack trace says nothing more about EACCES, and the
 * "(run with --verbose)" hint would be a second line.
 */
function permissionFailure(kind: string, message: string): Failure {
  const what = firstClause(message);
  const suffix = isRoot() ? 'permission denied' : `permission denied: ${PRIVILEGES}`;
  return { kind, code: 'E_PERM', message: `${what}: ${suffix}`, excerpt: '', detail: '', exit: EXIT.noPermission };
}

export function describeFailure(err: unknown): Failure {
  const perm = errnoCode(err);
  if (err instanceof BpfctlError) {
    // A command's own privilege check (privileges.ts) already says what it needs.
    if (err.name === 'PrivilegeError') return { kind: err.name, code: err.code, message: err.message, excerpt: '', detail: '', exit: EXIT.noPermission };
    if (perm && !isRoot()) return permissionFailure(err.name, err.message);
    const detail = err.detail();
    // Most details start with the one-line message: only what they add to it.
    const more = detail.startsWith(err.message) ? detail.slice(err.message.length).replace(/^\n+/, '') : detail;
    const excerpt = err.excerpt();
    const base = { kind: err.name, code: err.code, excerpt, detail: more === excerpt ? '' : more };
    // Root refused (a frozen map, an LSM, lockdown): not a missing privilege, and the loader's
    // own message says why, so it is an ordinary failure. bpfctl's AccessError is 77 for anyone.
    if (err.code === 'E_PERM' && err.name === 'AccessError') return permissionFailure(err.name, err.message);
    return { ...base, message: err.message, exit: err instanceof UsageError ? EXIT.usage : EXIT.failure };
  }
  const e = err as (Error & { code?: string; path?: string; syscall?: string; address?: string }) | undefined;
  const stack = e?.stack ?? String(err);
  if (perm && !isRoot()) {
    const where = e?.path ?? e?.address;
    const verb = e?.syscall ? (VERBS[e.syscall] ?? e.syscall) : 'operation';
    return permissionFailure('PermissionError', where ? `${verb} ${where}` : verb);
  }
  const message = e?.message ? e.message.split('\n')[0]! : String(err);
  return { kind: e?.name ?? 'Error', code: e?.code ?? 'E_INTERNAL', message: `internal error: ${message}`, excerpt: '', detail: stack, exit: EXIT.failure };
}

/** "pin map 'x' at /p: EPERM: operation not permitted: bpf() needs ..." -> "pin map 'x' at /p". */
function firstClause(message: string): string {
  const i = message.search(/: (EPERM|EACCES|permission denied|operation not permitted)\b/i);
  return i > 0 ? message.slice(0, i) : message;
}
