/**
 * The variants of the chain bench, each started as a set of processes the bench can measure
 * (`pids`: their process trees are the variant's CPU) and stop:
 *   bpfctl-ts         bpfctl (sk_msg + pool) with the TypeScript functions of ./bpfctl
 *   tcp               the same functions over plain TCP between Node processes (./tcp)
 *   http-sidecar      Knative-style: an HTTP server per function behind its own proxy sidecar (./http)
 *   bpfctl-c          bpfctl with the C functions of ./c
 *   tcp-c             the C functions of ./c over plain TCP (./tcp-c), behind tcp's gateway:
 *                     bpfctl-c's like-for-like baseline
 *   http-direct       an HTTP server per function, each calling the next one itself (./http)
 *   http-sidecar-haproxy  http-sidecar with Debian's HAProxy as every function's sidecar
 *   bpfctl-ts-native  bpfctl-ts behind the native (C) gateway (`gateway: { engine: 'native' }`)
 *   bpfctl-c-native   bpfctl-c behind the native gateway
 */
import { fileURLToPath } from 'node:url';
import type { LoopResult } from './driver/loop.ts';
import { type Child, processTree, spawnTs } from './proc.ts';
import { startHttpChain } from './http/start.ts';
import { startTcpCFunctions } from './tcp-c/start.ts';
import { type StartFunctions, startTcpChain, startTcpFunctions } from './tcp/start.ts';

export const VARIANTS = ['bpfctl-ts', 'tcp', 'http-sidecar', 'bpfctl-c', 'tcp-c', 'http-direct', 'http-sidecar-haproxy', 'bpfctl-ts-native', 'bpfctl-c-native'] as const;
export type VariantName = (typeof VARIANTS)[number];

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export interface LoopSettings {
  inflight: number;
  warmupMs: number;
  measureMs: number;
  /** Confine the driver and the chain to these CPUs for the loop (taskset list); unset: wherever the scheduler puts them. */
  cpus?: string;
}

export interface Variant {
  readonly name: VariantName;
  /** The route's URL (POST the payload). */
  readonly url: string;
  /** Every process of the variant right now (process trees of its roots). */
  pids(): number[];
  /**
   * The descriptor-level loop (no HTTP), for the variants that have one. `unbatched` (tcp only):
   * functions that write each frame on its own, for reference.
   */
  loop?: (s: LoopSettings, unbatched?: boolean) => Promise<LoopResult>;
  stop(): Promise<void>;
}

async function driverResult(d: Child, s: LoopSettings): Promise<LoopResult> {
  const m = await d.line(/^result (.*)$/, s.warmupMs + s.measureMs + 30_000);
  return JSON.parse(m[1]!) as LoopResult;
}

function loopArgs(s: LoopSettings): string[] {
  return ['--inflight', String(s.inflight), '--warmup', String(s.warmupMs), '--measure', String(s.measureMs), ...(s.cpus ? ['--cpus', s.cpus] : [])];
}

type BpfctlVariant = 'bpfctl-ts' | 'bpfctl-c' | 'bpfctl-ts-native' | 'bpfctl-c-native';

async function startBpfctl(name: BpfctlVariant, policy: string): Promise<Variant> {
  const host = spawnTs(`${name}-host`, here('./bpfctl/host.ts'), [policy]);
  let info: string;
  try {
    // Cold start includes building the C functions and the native gateway (cached after the
    // first run) and tsx.
    info = (await host.line(/^ready (.*)$/, 120_000))[1]!;
  } catch (err) {
    await host.stop();
    throw err;
  }
  const pids = () => processTree(host.pid);
  return {
    name,
    url: (JSON.parse(info) as { url: string }).url,
    pids,
    loop: async (s) => {
      const d = spawnTs(`${name}-driver`, here('./driver/loop-bpfctl.ts'), ['--info', info, '--pids', pids().join(','), ...loopArgs(s)]);
      try {
        return await driverResult(d, s);
      } finally {
        await d.stop();
      }
    },
    // The host tears the chain down (processes, pins, pool) on SIGTERM; its grace covers the
    // supervisor's own SIGTERM-to-SIGKILL delay for the instances.
    stop: () => host.stop('SIGTERM', 15_000),
  };
}

/** tcp (Node functions) or tcp-c (C functions): the same gateway, framing and loop driver. */
async function startTcp(name: 'tcp' | 'tcp-c'): Promise<Variant> {
  const functions: StartFunctions = name === 'tcp' ? startTcpFunctions : startTcpCFunctions;
  const chain = await startTcpChain(functions, `${name}-gateway`);
  return {
    name,
    url: chain.url,
    pids: () => chain.pids().flatMap(processTree),
    loop: async (s, unbatched = false) => {
      // A chain of its own, with the driver where the gateway was.
      const d = spawnTs(`${name}-driver`, here('./driver/loop-tcp.ts'), loopArgs(s));
      let fns: Child[] = [];
      try {
        const port = Number((await d.line(/^listening (\d+)$/))[1]);
        if (unbatched && name !== 'tcp') throw new Error(`${name}: no unbatched loop`);
        const f = name === 'tcp' ? await startTcpFunctions(port, unbatched) : await functions(port);
        fns = f.children;
        d.send(`connect ${f.lastPort} ${fns.flatMap((c) => processTree(c.pid)).join(',')}`);
        return await driverResult(d, s);
      } finally {
        await Promise.all([d, ...fns].map((c) => c.stop()));
      }
    },
    stop: chain.stop,
  };
}

async function startHttp(name: 'http-sidecar' | 'http-direct' | 'http-sidecar-haproxy'): Promise<Variant> {
  const chain = await startHttpChain(name !== 'http-direct', name === 'http-sidecar-haproxy' ? 'haproxy' : 'node');
  return { name, url: chain.url, pids: () => chain.pids().flatMap(processTree), stop: chain.stop };
}

export function startVariant(name: VariantName): Promise<Variant> {
  switch (name) {
    case 'bpfctl-ts':
      return startBpfctl(name, here('./bpfctl/policy.ts'));
    case 'bpfctl-c':
      return startBpfctl(name, here('./c/policy.ts'));
    case 'bpfctl-ts-native':
      return startBpfctl(name, here('./bpfctl/policy-native.ts'));
    case 'bpfctl-c-native':
      return startBpfctl(name, here('./c/policy-native.ts'));
    case 'tcp':
    case 'tcp-c':
      return startTcp(name);
    case 'http-sidecar':
    case 'http-direct':
    case 'http-sidecar-haproxy':
      return startHttp(name);
  }
}
