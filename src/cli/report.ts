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

export function describeFailure(err: unknown): Failure {
  const perm = !isRoot() ? errnoCode(err) : undefined;
  if (err instanceof BpfctlError) {
    const detail = err.detail();
    // Most details start with the one-line message: only what they add to it.
    const more = detail.startsWith(err.message) ? detail.slice(err.message.length).replace(/^\n+/, '') : detail;
    const excerpt = err.excerpt();
    const base = { kind: err.name, code: err.code, excerpt, detail: more === excerpt ? '' : more };
    if (perm) return { ...base, message: `${firstClause(err.message)}: permission denied: ${PRIVILEGES}`, exit: EXIT.noPermission };
    return { ...base, message: err.message, exit: err instanceof UsageError ? EXIT.usage : EXIT.failure };
  }
  const e = err as (Error & { code?: string; path?: string; syscall?: string; address?: string }) | undefined;
  const stack = e?.stack ?? String(err);
  if (perm) {
    const what = e?.path ?? e?.address ?? e?.syscall ?? 'operation';
    return { kind: 'PermissionError', code: 'E_PERM', message: `${e?.syscall ? `${e.syscall} ` : ''}${what}: permission denied: ${PRIVILEGES}`, excerpt: '', detail: stack, exit: EXIT.noPermission };
  }
  const message = e?.message ? e.message.split('\n')[0]! : String(err);
  return { kind: e?.name ?? 'Error', code: e?.code ?? 'E_INTERNAL', message: `internal error: ${message}`, excerpt: '', detail: stack, exit: EXIT.failure };
}

/** "pin map 'x' at /p: EPERM: operation not permitted: bpf() needs ..." -> "pin map 'x' at /p". */
function firstClause(message: string): string {
  const i = message.search(/: (EPERM|EACCES|permission denied|operation not permitted)\b/i);
  return i > 0 ? message.slice(0, i) : message;
}
