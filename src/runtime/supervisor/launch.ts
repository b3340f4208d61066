/**
 * How instance processes are started. Every one is placed in the policy cgroup *before* it runs
 * a single instruction of its own: a tiny shell writes its pid into `cgroup.procs` and then execs
 * the instance (same pid). So the process is inside when it connects (gotcha 7) without needing
 * the right to move itself, and nothing it could do first escapes the sockops trust check.
 *
 * Gateways are cluster workers instead (their HTTP socket is shared between them), and join the
 * cgroup themselves before connecting: they are bpfctl's own code, run as the supervisor's user.
 */
import { spawn } from 'node:child_process';
import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Launch } from './slot.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The TS function entry (runtime SDK) and the gateway entry (this folder). */
export const FUNCTION_MAIN = join(HERE, '../sdk/main.ts');
export const GATEWAY_MAIN = join(HERE, 'gateway-main.ts');

/**
 * tsx's loader as a file URL: `--import tsx` would be resolved from the child's working
 * directory, which is the user's, not bpfctl's.
 */
export function tsxLoader(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

/** The supervisor's environment minus what would confuse a child. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // With NO_COLOR also set (tests), node warns about FORCE_COLOR on every start.
  delete env.FORCE_COLOR;
  // The supervisor's own IPC channel (a test runner's) is not the child's.
  delete env.NODE_CHANNEL_FD;
  delete env.NODE_CHANNEL_SERIALIZATION_MODE;
  delete env.NODE_UNIQUE_ID;
  return env;
}

const JOIN_THEN_EXEC = 'echo $$ > "$0" && exec "$@"';

/** A TypeScript function instance: `node --import tsx src/runtime/sdk/main.ts`, ready over IPC. */
export function launchTsFunction(cgroup: string, env: Record<string, string>): Launch {
  const child = spawn('/bin/sh', ['-c', JOIN_THEN_EXEC, join(cgroup, 'cgroup.procs'), process.execPath, '--import', tsxLoader(), FUNCTION_MAIN], {
    env: { ...baseEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return { child, ready: 'ipc' };
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * A C function instance: the executable the C SDK built; it writes "ready ..." to fd 3. Unlike a
 * TS instance it has no IPC channel whose closing tells it the supervisor is gone, so it gets a
 * parent-death signal instead (when util-linux's setpriv is there to set one across exec).
 */
export function launchCFunction(cgroup: string, executable: string, env: Record<string, string>): Launch {
  const cmd = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'TERM', '--', executable] : [executable];
  const child = spawn('/bin/sh', ['-c', JOIN_THEN_EXEC, join(cgroup, 'cgroup.procs'), ...cmd], {
    env: { ...baseEnv(), ...env, BPFCTL_READY_FD: '3' },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  return { child, ready: 'fd3' };
}

let clusterReady = false;

/** A gateway instance as a cluster worker; ready over IPC with its HTTP port. */
export function launchGateway(env: Record<string, string>): Launch {
  if (!clusterReady) {
    // The primary only creates the listening socket; every worker accepts on it itself, so the
    // supervisor stays off the request path (round-robin would route every connection through it).
    // Frozen by the first setupPrimary(): set before it.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    clusterReady = true;
  }
  cluster.setupPrimary({ exec: GATEWAY_MAIN, execArgv: ['--import', tsxLoader()], args: [], silent: true });
  const worker = cluster.fork({ ...baseEnv(), ...env });
  return { child: worker.process, ready: 'ipc' };
}
