/**
 * How instance processes are started. Every one is placed in the policy cgroup *before* it runs
 * a single instruction of its own: a tiny shell writes its pid into `cgroup.procs` and then execs
 * the instance (same pid). The cgroup holds a policy's processes together (what `bpfctl status`
 * lists, what stopping a chain must leave empty); registration does not depend on it.
 *
 * Gateways are cluster workers instead (their HTTP socket is shared between them); the supervisor
 * moves each into the cgroup right after the fork.
 */
import { spawn } from 'node:child_process';
import cluster from 'node:cluster';
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { COMPILED, ownModule } from '../../package.ts';
import type { Launch } from './slot.ts';

/** The TS function entry (runtime SDK) and the gateway entry (this folder), as this copy runs them. */
export const FUNCTION_MAIN = ownModule('src/runtime/sdk/main.ts');
export const GATEWAY_MAIN = ownModule('src/runtime/supervisor/gateway-main.ts');

/**
 * Node flags a child entry needs: none for the compiled package (plain JavaScript; handlers come
 * prebuilt), tsx's loader when bpfctl runs from its TypeScript sources (a checkout's tests). tsx
 * as a file URL: `--import tsx` would be resolved from the child's working directory, which is the
 * user's, not bpfctl's.
 */
/**
 * V8's memory reducer runs a few compacting GCs 8 s after a Node process's first full GC (and
 * after each burst of garbage), 20-60 ms of CPU per instance: in a chain that went idle after
 * starting, that was its only CPU use, 0.2-0.3% of a core per instance in the 10-30 s after start
 * (measured with --trace-gc: "Mark-Compact (reduce)" at 8.5-9.5 s). Its delay is a constant for
 * that case (--gc-memory-reducer-start-delay-ms does not move it: tried), so it is turned off for
 * instances and gateway workers. What it would give back is small (6.4 -> 5.1 MB of heap per
 * instance in that trace); ordinary GCs still run whenever the process allocates.
 */
const REDUCER_FLAGS = ['--no-memory-reducer'];

export function childExecArgv(): string[] {
  return COMPILED ? [] : ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href];
}

/** The supervisor's environment minus what would confuse a child. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // With NO_COLOR also set (tests), node warns about FORCE_COLOR on every start.
  delete env.FORCE_COLOR;
  // The supervisor's own IPC channel (a test runner's) is not the child's.
  delete env.NODE_CHANNEL_FD;
  delete env.NODE_CHANNEL_SERIALIZATION_MODE;
  delete env.NODE_UNIQUE_ID;
  return env;
}

/** Node's arguments for a child process running `entry` (a bpfctl module): loader flags, then the reducer's. */
export function nodeEntryArgv(entry: string): string[] {
  return [...childExecArgv(), ...REDUCER_FLAGS, entry];
}

const JOIN_THEN_EXEC = 'echo $$ > "$0" && exec "$@"';

/** A TypeScript function instance: `node <sdk main>`, ready over IPC. */
export function launchTsFunction(cgroup: string, env: Record<string, string>): Launch {
  const child = spawn('/bin/sh', ['-c', JOIN_THEN_EXEC, join(cgroup, 'cgroup.procs'), process.execPath, ...nodeEntryArgv(FUNCTION_MAIN)], {
    env: { ...baseEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return { child, ready: 'ipc' };
}

const SETPRIV = '/usr/bin/setpriv';

/** fd of the chain socket a C instance inherits (after stdin, stdout, stderr and the ready pipe). */
const C_SOCK_FD = 4;

/**
 * A C function instance: the executable the C SDK built; it writes "ready ..." to fd 3. It has no
 * IPC channel to hand a socket over, so the supervisor connects its chain socket to the hub,
 * inserts it (`register`) and passes it down as fd 4; a C instance whose socket fails exits and
 * is restarted with a new one. Unlike a TS instance it has no IPC channel whose closing tells it
 * the supervisor is gone, so it gets a parent-death signal instead (when util-linux's setpriv is
 * there to set one across exec).
 */
export async function launchCFunction(cgroup: string, executable: string, env: Record<string, string>, hubPort: number, register: (fd: number, localPort?: number) => void): Promise<Launch> {
  const sock = await connectChainSocket(hubPort, register);
  try {
    const child = spawn('/bin/sh', shExecArgv(executable, cgroup), {
      env: { ...baseEnv(), ...env, BPFCTL_READY_FD: '3', BPFCTL_SOCK_FD: String(C_SOCK_FD) },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', sock],
    });
    return { child, ready: 'fd3' };
  } finally {
    // The child holds its own copy now. destroy(), not end(): a FIN would close it for the child too.
    sock.destroy();
  }
}

/**
 * A chain socket for a C process (a function or the native gateway) to inherit: connected to the
 * hub by the supervisor and registered before the process exists, so the process never registers
 * anything itself. The caller hands it to the child and then destroys its own copy.
 */
export async function connectChainSocket(hubPort: number, register: (fd: number, localPort?: number) => void): Promise<net.Socket> {
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: hubPort, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      // Nothing may be read here: once registered, the socket's traffic is the child's.
      s.pause();
      resolve(s);
    });
    s.once('error', reject);
  });
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number') {
    sock.destroy();
    throw new Error('connected socket has no fd');
  }
  try {
    register(fd, sock.localPort);
  } catch (err) {
    sock.destroy();
    throw err;
  }
  return sock;
}

/** `/bin/sh` arguments that join `cgroup` (when given) and exec `executable args...` with a parent-death signal. */
export function shExecArgv(executable: string, cgroup?: string, args: readonly string[] = []): string[] {
  const cmd = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'TERM', '--', executable, ...args] : [executable, ...args];
  return cgroup ? ['-c', JOIN_THEN_EXEC, join(cgroup, 'cgroup.procs'), ...cmd] : ['-c', 'exec "$@"', 'sh', ...cmd];
}

let clusterReady = false;

/** A gateway instance as a cluster worker, moved into the policy cgroup; ready over IPC with its HTTP port. */
export function launchGateway(cgroup: string, env: Record<string, string>): Launch {
  if (!clusterReady) {
    // The primary only creates the listening socket; every worker accepts on it itself, so the
    // supervisor stays off the request path (round-robin would route every connection through it).
    // Frozen by the first setupPrimary(): set before it.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    clusterReady = true;
  }
  // No allocation-site pretenuring: when one scavenge finds nearly every object of a request
  // site still alive (a burst of new connections), V8 allocates that site's objects in the old
  // generation from then on, and each finished request keeps its young parts alive through them:
  // ~3 MB promoted per scavenge and 8-15 ms pauses for as long as the gateway runs (measured in
  // bench/chain; BENCHMARKS.md). A request server has no per-request object worth pretenuring.
  cluster.setupPrimary({ exec: GATEWAY_MAIN, execArgv: [...childExecArgv(), ...REDUCER_FLAGS, '--no-allocation-site-pretenuring'], args: [], silent: true });
  const worker = cluster.fork({ ...baseEnv(), ...env });
  try {
    writeFileSync(join(cgroup, 'cgroup.procs'), `${worker.process.pid}\n`);
  } catch (err) {
    worker.process.kill('SIGKILL');
    throw err;
  }
  return { child: worker.process, ready: 'ipc' };
}
