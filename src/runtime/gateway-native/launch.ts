/**
 * Starting a native gateway process, the way C function instances start
 * (src/runtime/supervisor/launch.ts): the supervisor connects its chain socket to the hub,
 * inserts it into `socks` under the gateway's key (`register`) and hands it down as fd 4; the
 * process says "ready ... port=N" on fd 3. It has no IPC channel, so instance deaths reach it as
 * lines on a pipe (fd 5), whose end also tells it the supervisor is gone; a parent-death signal
 * (util-linux's setpriv) covers a supervisor killed outright.
 */
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { readManifest } from '../../deploy/manifest.ts';
import { connectChainSocket, shExecArgv } from '../supervisor/launch.ts';
import type { Launch } from '../supervisor/slot.ts';

/** The extra environment of a native gateway (the rest is gatewayEnv's, src/runtime/supervisor/gateway-env.ts). */
export const NATIVE_GW_ENV = {
  fnNames: 'BPFCTL_GW_FN_NAMES',
  recvBuffers: 'BPFCTL_GW_RECV_BUFFERS',
  maxInFlight: 'BPFCTL_GW_MAX_IN_FLIGHT',
  maxPerClient: 'BPFCTL_GW_MAX_PER_CLIENT',
  readyFd: 'BPFCTL_READY_FD',
  sockFd: 'BPFCTL_SOCK_FD',
  controlFd: 'BPFCTL_CONTROL_FD',
} as const;

const READY_FD = 3;
const SOCK_FD = 4;
const CONTROL_FD = 5;

export interface NativeGatewayLaunch {
  executable: string;
  /** The policy cgroup the process joins before it runs (null: none, for tests without one). */
  cgroup: string | null;
  env: Record<string, string>;
  /** Function id -> name, for its messages ("function upper has no live instance"). */
  functionNames: ReadonlyMap<number, string> | Record<number, string>;
  hubPort: number;
  /** Inserts the connected chain socket into `socks` (key 0 << 16 | gwInst). */
  register: (fd: number, localPort?: number) => void;
}

/** The control line for a dead instance: "down <fn> <inst> <id,id,...>". */
export function instanceDownLine(m: { fnId: number; inst: number; before: readonly number[] }): string {
  return `down ${m.fnId} ${m.inst} ${m.before.join(',')}\n`;
}

function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.FORCE_COLOR;
  delete env.NODE_CHANNEL_FD;
  delete env.NODE_CHANNEL_SERIALIZATION_MODE;
  delete env.NODE_UNIQUE_ID;
  return env;
}

/** Starts one native gateway process. @throws Error when the hub cannot be reached or the socket not registered. */
export async function launchNativeGateway(o: NativeGatewayLaunch): Promise<Launch> {
  const sock = await connectChainSocket(o.hubPort, o.register);
  try {
    const names = o.functionNames instanceof Map ? [...o.functionNames] : Object.entries(o.functionNames);
    const child = spawn('/bin/sh', shExecArgv(o.executable, o.cgroup ?? undefined), {
      env: {
        ...baseEnv(),
        ...o.env,
        [NATIVE_GW_ENV.fnNames]: names.map(([id, n]) => `${id}=${n}`).join(','),
        [NATIVE_GW_ENV.readyFd]: String(READY_FD),
        [NATIVE_GW_ENV.sockFd]: String(SOCK_FD),
        [NATIVE_GW_ENV.controlFd]: String(CONTROL_FD),
      },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', sock, 'pipe'],
    });
    const control = (child.stdio as unknown as (Writable | null)[])[CONTROL_FD] ?? null;
    // A gateway that died leaves a broken pipe: the write fails, the slot restarts the process.
    control?.on('error', () => {});
    return {
      child,
      ready: 'fd3',
      send: (m: unknown) => {
        const d = m as { type?: string; fnId?: number; inst?: number; before?: number[] };
        if (d?.type !== 'bpfctl:instance-down' || typeof d.fnId !== 'number' || typeof d.inst !== 'number' || !Array.isArray(d.before)) return;
        if (control && !control.destroyed) control.write(instanceDownLine({ fnId: d.fnId, inst: d.inst, before: d.before }));
      },
    };
  } finally {
    // The child holds its own copy now. destroy(), not end(): a FIN would close it for the child too.
    sock.destroy();
  }
}

export interface NativeGatewaySlot {
  executable: string;
  cgroup: string;
  /** gatewayEnv() of this gateway process. */
  env: Record<string, string>;
  pinDir: string;
  hubPort: number;
  /** The pool's buffers and the gateway process count: bodies still arriving may hold 1/8 of the pool between them. */
  poolBuffers: number;
  processes: number;
  register: (fd: number, localPort?: number) => void;
}

/**
 * What a gateway slot of `bpfctl run` starts with engine 'native'. Function names are read from the
 * manifest at each start, so a gateway restarted after `apply` added a function names it too.
 */
export function nativeGatewayLauncher(o: NativeGatewaySlot): () => Promise<Launch> {
  return () =>
    launchNativeGateway({
      executable: o.executable,
      cgroup: o.cgroup,
      env: { ...o.env, [NATIVE_GW_ENV.recvBuffers]: String(Math.floor(o.poolBuffers / 8 / Math.max(1, o.processes))) },
      functionNames: Object.fromEntries(readManifest(o.pinDir).ir.functions.map((f) => [f.id, f.name])),
      hubPort: o.hubPort,
      register: o.register,
    });
}
