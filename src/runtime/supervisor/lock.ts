/**
 * One supervisor per policy: a second `bpfctl run` of the same policy would replace the first
 * one's pins and pool under its running processes. The lock is a pid file; a file whose pid is
 * gone was left by a supervisor that was killed, and its leftovers (pins, pool file) may be
 * cleaned up by the next one.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BpfctlError } from '../../errors.ts';
import { pidAlive } from '../pool/index.ts';

/** Where supervisors keep their pid files (and control sockets); tests point it elsewhere. */
export function runDir(): string {
  return process.env.BPFCTL_RUN_DIR ?? '/run/bpfctl';
}

export class AlreadyRunningError extends BpfctlError {
  readonly pid: number;
  constructor(policy: string, pid: number) {
    super('E_RUNNING', `policy ${policy} is already running (supervisor pid ${pid}); stop it first (kill -TERM ${pid})`);
    this.pid = pid;
  }
}

export interface RunLock {
  readonly path: string;
  /** The previous holder died without cleaning up. */
  readonly stale: boolean;
  release(): void;
}

/** @throws AlreadyRunningError when a live supervisor holds the policy. */
export function lockPolicy(policy: string, dir = runDir()): RunLock {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, `${policy}.pid`);
  let stale = false;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw err;
      let pid = 0;
      try {
        pid = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // removed meanwhile: try again
      }
      if (pid > 0 && pid !== process.pid && pidAlive(pid)) throw new AlreadyRunningError(policy, pid);
      stale = true;
      try {
        unlinkSync(path);
      } catch {
        // another supervisor won the race; its pid is checked on the next attempt
      }
    }
  }
  let released = false;
  return {
    path,
    stale,
    release: () => {
      if (released) return;
      released = true;
      try {
        if (Number(readFileSync(path, 'utf8').trim()) === process.pid) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}
