/**
 * Existence checks that tell "absent" from "not allowed to look". `fs.existsSync` answers false
 * for both, so an unprivileged user asking about a loaded policy under a root-only pin directory
 * (bpffs dirs are made 0700) was told "not loaded" when the truth was "permission denied".
 * Every check here throws AccessError for EACCES/EPERM instead, which the CLI reports as one line
 * with exit code 77.
 */
import { readdirSync, statSync } from 'node:fs';
import { BpfctlError } from '../errors.ts';

/** The caller may not see or touch `path` (EACCES/EPERM): exit code 77 in the CLI. */
export class AccessError extends BpfctlError {
  readonly path: string;
  readonly syscall: string;
  constructor(what: string, path: string, syscall: string, options?: { cause?: unknown }) {
    super('E_PERM', `${what} ${path}: permission denied`, options);
    this.path = path;
    this.syscall = syscall;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path };
  }
}

const denied = (err: unknown) => {
  const code = (err as { code?: string }).code;
  return code === 'EACCES' || code === 'EPERM';
};

/** True when `path` exists, false when it (or a parent) does not. @throws AccessError when a parent cannot be searched */
export function pathExists(path: string, what = 'cannot read'): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    if (denied(err)) throw new AccessError(what, path, 'stat', { cause: err });
    return false;
  }
}

/** The entries of a directory, [] when it does not exist. @throws AccessError when it cannot be read */
export function listDir(path: string, what = 'cannot list'): string[] {
  try {
    return readdirSync(path);
  } catch (err) {
    if (denied(err)) throw new AccessError(what, path, 'scandir', { cause: err });
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
}

/** True when `path` is a directory; false when absent or not a directory. @throws AccessError */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch (err) {
    if (denied(err)) throw new AccessError('cannot read', path, 'stat', { cause: err });
    return false;
  }
}
