/**
 * Commands that change the kernel or talk to a supervisor (load, run, apply, unload, scale, route
 * and set changes, attach/detach) check their privileges before doing anything: an unprivileged
 * user gets one line saying what the command needs and exit code 77, instead of a compile, a pool
 * file and progress lines followed by a refusal (and nothing half-made is left to clean up).
 * Read-only commands do not ask: they try, and a refusal is reported the same way (report.ts), so
 * a pin made readable to a user stays readable.
 */
import { readFileSync } from 'node:fs';
import { BpfctlError } from '../errors.ts';
import { PRIVILEGES } from './report.ts';

// Bit numbers in the capability sets (linux/capability.h).
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

/** A command the caller lacks the privileges for. Exit code 77. */
export class PrivilegeError extends BpfctlError {
  constructor(what: string, why: string) {
    super('E_PERM', `${what}: ${PRIVILEGES} (${why})`);
  }
}

/** The effective capability set of this process, from /proc (0n when it cannot be read). */
function effectiveCaps(): bigint {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? BigInt(`0x${m[1]}`) : 0n;
  } catch {
    return 0n;
  }
}

/** Root, or the three capabilities bpfctl's kernel work needs. */
export function hasPrivileges(): boolean {
  if (typeof process.geteuid === 'function' && process.geteuid() === 0) return true;
  const caps = effectiveCaps();
  return [CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN].every((c) => (caps >> BigInt(c)) & 1n);
}

/**
 * Whether this kernel lets a user without CAP_BPF load programs and create maps at all
 * (`kernel.unprivileged_bpf_disabled` = 0; Debian and most distributions set 2).
 */
export function unprivilegedBpfAllowed(): boolean {
  try {
    return readFileSync('/proc/sys/kernel/unprivileged_bpf_disabled', 'utf8').trim() === '0';
  } catch {
    return false;
  }
}

/** @throws PrivilegeError naming `what` and why it needs them, when the caller lacks the privileges. */
export function requirePrivileges(what: string, why: string): void {
  if (!hasPrivileges()) throw new PrivilegeError(what, why);
}
