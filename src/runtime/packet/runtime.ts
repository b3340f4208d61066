/**
 * The packet half of a running policy: pktio and every packet function instance as supervised
 * processes (Slot: restarted with backoff when they die), and the packet plane's tables kept equal
 * to what runs. Started by startChain after the classifier is loaded (its xskmaps pinned) and the
 * pool created with the plane's room; stopped before the classifier is removed.
 *
 * What a death costs (docs/packet-chains.md, "Buffer ownership"): the frames the process had in
 * hand are reclaimed and counted; the frames queued in its ring stay for its replacement, which
 * consumes the same ring, so a crash loses at most one batch.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfctlError } from '../../errors.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { ringOf } from '../../schema/packet-layout.ts';
import { buildTsPacketFunction } from '../packet-ts/code.ts';
import type { Pool } from '../pool/index.ts';
import { baseEnv, shExecArgv } from '../supervisor/launch.ts';
import { type Launch, Slot, type SlotHost, type SlotInfo } from '../supervisor/slot.ts';
import { buildPacketFunction, buildPktio } from './build.ts';
import { PacketPlane, type PlaneSnapshot, type PlaneSpec } from './plane.ts';

/** The IR's packet part (src/ir/packet.ts). */
export type PacketIR = NonNullable<PolicyIR['packet']>;

export interface PacketRuntimeOptions {
  ir: PolicyIR;
  pool: Pool;
  /** The policy's pin directory: xskmaps are at `xdp/<ifname>/maps/xsk_chains`. */
  pinDir: string;
  /** Processes join this cgroup before they run. */
  cgroup: string;
  /** Network namespace of the interfaces (a name under /run/netns, or a path). */
  netns?: string;
  /** ifindex of an interface (in `netns`); 0 when it does not exist. */
  ifindexOf: (ifname: string) => number;
  readyTimeoutMs: number;
  graceMs: number;
  log: (line: string) => void;
  progress: (text: string) => void;
}

export interface PacketRuntime {
  readonly plane: PacketPlane;
  /** pktio and every packet function instance. */
  instances(): SlotInfo[];
  /** Runs `n` instances of packet function `fn` (1..32). */
  scale(fn: string, n: number): Promise<SlotInfo[]>;
  /** The plane's counters and tables, with the pool's buffers in use and each chain's coalescing window (for status and top). */
  snapshot(): Omit<PlaneSnapshot, 'chains'> & { chains: (PlaneSnapshot['chains'][number] & { coalesceUs?: number })[]; pool: { inUse: number; bufferCount: number } };
  /** Stops every process (functions drain their rings first) and frees what they held. */
  stop(): Promise<void>;
}

/** The plane's view of the IR: ids and names, egress ports, the ifindex of each port. */
export function planeSpec(p: PacketIR, ifindexOf: (ifname: string) => number): PlaneSpec {
  return {
    functions: p.functions.map((f) => ({ name: f.name })),
    chains: p.chains.map((c) => ({ name: c.name, functions: c.functions, egress: c.egress, poll: c.poll })),
    ports: p.ports.map((port) => ({ interface: port.interface, ifindex: ifindexOf(port.interface) })),
  };
}

/** The pool's extension bytes a policy's packet part needs (0 without one). */
export function planeBytes(ir: PolicyIR): number {
  const p = ir.packet;
  return p && (p.chains.length > 0 || p.functions.length > 0) ? PacketPlane.sizeFor(p.functions.length) : 0;
}

export async function startPacketRuntime(o: PacketRuntimeOptions): Promise<PacketRuntime> {
  const p = o.ir.packet!;
  // Built before anything starts: a handler that does not compile leaves nothing running.
  // Each function's argv, and the environment its instances get beyond the common part
  // (TypeScript: its bundle and the shim).
  const codes = new Map<number, { argv: string[]; env: Record<string, string> }>();
  for (const f of p.functions) codes.set(f.id, await packetFunctionCode(f, o.progress));
  o.progress('building pktio');
  const pktioExe = await buildPktio();
  for (const port of p.ports) if (!o.ifindexOf(port.interface)) throw new PacketRuntimeError(`packet port ${port.interface}: no such interface${o.netns ? ` in netns ${o.netns}` : ''}`);
  const plane = PacketPlane.init(o.pool, planeSpec(p, o.ifindexOf));

  const slots: Slot[] = [];
  /** Instances each function runs now, by slot number (what `live_ring` lists). */
  const live = new Map<number, Set<number>>(p.functions.map((f) => [f.id, new Set<number>()]));
  const publish = (fn: number) => plane.setLive(fn, [...live.get(fn)!].sort((a, b) => a - b));
  const pollOf = (fn: number) => p.chains.some((c) => c.poll && c.functions.includes(fn));
  const fnById = new Map(p.functions.map((f) => [f.id, f]));
  let stopping = false;

  // A producer that died between claiming ring slots and publishing them leaves holes that stall
  // the ring's consumer for good: seen twice a second apart after a death, they are filled.
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopping) fn();
    }, ms);
    timers.add(t);
  };
  const allRings = () => [0, ...p.functions.flatMap((f) => Array.from({ length: 32 }, (_, i) => ringOf(f.id, i)))];
  const repairHoles = () => {
    const seen = allRings()
      .map((r) => [r, plane.holes(r)] as const)
      .filter(([, h]) => h.length > 0);
    if (!seen.length) return;
    later(1000, () => {
      for (const [r, h] of seen) {
        const n = plane.fillHoles(r, h);
        if (n) o.log(`[supervisor] ring ${r}: ${n} slot(s) a dead process had claimed were never published; filled so the ring moves on`);
      }
    });
  };

  const host: SlotHost = {
    register() {
      throw new PacketRuntimeError('packet processes do not register sockets');
    },
    up(slot) {
      if (slot.kind === 'pktio') {
        plane.pktioPid = slot.pid ?? 0;
        return;
      }
      plane.setInstance(slot.fnId, slot.instance, slot.pid ?? 0, 'live');
      live.get(slot.fnId)!.add(slot.instance);
      publish(slot.fnId);
    },
    down(slot, pid, planned) {
      // The process is gone: what it owned is nobody's now. Queued frames are the ring's, not its.
      const n = pid ? o.pool.reclaim(pid) : 0;
      if (!planned) later(100, repairHoles);
      if (slot.kind === 'pktio') {
        plane.pktioPid = 0;
        if (n && !planned) o.log(`[pktio] died holding ${n} buffers (fill rings, transmissions): reclaimed`);
        return;
      }
      plane.addReclaimed(slot.fnId, slot.instance, n);
      if (n && !planned) o.log(`[${slot.label}] died holding ${n} frames: dropped and counted as reclaimed`);
      // A crashed instance keeps its place in live_ring: its ring buffers frames until the
      // replacement takes them. A planned stop left the list before the process was told to go.
      plane.setInstance(slot.fnId, slot.instance, 0, planned ? 'empty' : 'restarting');
    },
    log: o.log,
  };

  const launchNf = (fnId: number, inst: number) => (): Launch => {
    const f = fnById.get(fnId)!;
    const code = codes.get(fnId)!;
    const [exe, ...args] = code.argv;
    const child = spawn('/bin/sh', shExecArgv(exe!, o.cgroup, args), {
      env: {
        ...baseEnv(),
        ...f.env,
        ...code.env,
        BPFCTL_POOL: o.pool.path,
        BPFCTL_PKT_FN: String(fnId),
        BPFCTL_PKT_INST: String(inst),
        BPFCTL_PKT_POLL: pollOf(fnId) ? '1' : '0',
        BPFCTL_FN_NAME: f.name,
        BPFCTL_READY_FD: '3',
      },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    plane.setInstance(fnId, inst, child.pid ?? 0, 'starting');
    return { child, ready: 'fd3' };
  };
  const nfSlot = (fnId: number, inst: number) => new Slot('packet', fnById.get(fnId)!.name, fnId, inst, launchNf(fnId, inst), host, o.readyTimeoutMs);

  // The pool may be shared with request chains: pktio keeps a quarter of it in its fill rings, and
  // the chains may hold another quarter (three quarters when there are no request chains), so no
  // flood or slow function can take the buffers HTTP requests need.
  const fill = Math.max(1, Math.floor(o.pool.bufferCount / 4));
  const maxInFlight = o.ir.functions.length > 0 ? Math.max(64, Math.floor(o.pool.bufferCount / 4)) : Math.max(64, o.pool.bufferCount - fill - 64);
  const pktioArgs = ['--pool', o.pool.path, '--max-in-flight', String(maxInFlight)];
  for (const port of p.ports) {
    const map = port.ingress ? join(o.pinDir, 'xdp', port.interface, 'maps', 'xsk_chains') : '';
    pktioArgs.push('--port', `${port.id}:${port.interface}${map ? `:${map}` : ''}`);
  }
  // Coalescing happens where frames enter a chain: a batch made there stays one down the chain.
  for (const c of p.chains) if (c.coalesce) pktioArgs.push('--coalesce', `${c.id}:${c.coalesce.us}`);
  const launchPktio = (): Launch => {
    // In the interfaces' namespace: nsenter execs pktio in place (same pid, same cgroup).
    const argv = o.netns ? ['/usr/bin/nsenter', `--net=${netnsPath(o.netns)}`, pktioExe, ...pktioArgs] : [pktioExe, ...pktioArgs];
    const child = spawn('/bin/sh', shExecArgv(argv[0]!, o.cgroup, argv.slice(1)), { env: { ...baseEnv(), BPFCTL_READY_FD: '3' }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    return { child, ready: 'fd3' };
  };

  const stopAll = async () => {
    stopping = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    for (const s of slots) s.halt();
    // pktio first: no new frames enter; then the functions drain what is queued and stop.
    await Promise.all(slots.filter((s) => s.kind === 'pktio').map((s) => s.stop(o.graceMs)));
    for (const f of p.functions) {
      live.get(f.id)!.clear();
      publish(f.id);
    }
    await Promise.all(slots.filter((s) => s.kind === 'packet').map((s) => s.stop(o.graceMs)));
    for (const f of p.functions) for (let i = 0; i < 32; i++) plane.drainRing(ringOf(f.id, i));
    plane.drainRing(0);
  };

  try {
    // Functions first, so the first frame pktio takes has somewhere to go.
    for (const f of p.functions) for (let i = 0; i < f.instances; i++) slots.push(nfSlot(f.id, i));
    for (const s of slots) void s.start();
    await Promise.all(slots.map((s) => s.ready));
    const io = new Slot('pktio', 'pktio', 0, 0, launchPktio, host, o.readyTimeoutMs);
    slots.push(io);
    void io.start();
    await io.ready;
    o.progress(`pktio bound ${String(io.info.ports ?? p.ports.map((x) => x.interface).join(','))}`);
  } catch (err) {
    await stopAll();
    throw err;
  }

  const scale = async (name: string, n: number): Promise<SlotInfo[]> => {
    const f = p.functions.find((x) => x.name === name);
    if (!f) throw new PacketRuntimeError(`no packet function ${name}`);
    if (!Number.isInteger(n) || n < 1 || n > 32) throw new PacketRuntimeError(`instances of ${name} must be 1..32, got ${n}`);
    if (stopping) throw new PacketRuntimeError('the policy is stopping');
    const mine = slots.filter((s) => s.kind === 'packet' && s.fnId === f.id && s.state !== 'stopped');
    if (n > mine.length) {
      const used = new Set(mine.map((s) => s.instance));
      const added: Slot[] = [];
      for (let i = 0; added.length < n - mine.length; i++) if (!used.has(i)) added.push(nfSlot(f.id, i));
      slots.push(...added);
      for (const s of added) void s.start();
      await Promise.all(added.map((s) => s.ready));
    } else if (n < mine.length) {
      const removed = mine.sort((a, b) => b.instance - a.instance).slice(0, mine.length - n);
      // Out of live_ring first; after a grace period no producer still holds the old list, then
      // the instance drains its ring (SIGTERM) and exits. Anything still queued is freed.
      for (const s of removed) live.get(f.id)!.delete(s.instance);
      publish(f.id);
      for (const s of removed) plane.setInstance(f.id, s.instance, s.pid ?? 0, 'draining');
      await new Promise((r) => setTimeout(r, 50));
      await Promise.all(removed.map((s) => s.stop(o.graceMs)));
      for (const s of removed) {
        const left = plane.drainRing(ringOf(f.id, s.instance));
        if (left) o.log(`[${s.label}] ${left} frames were still queued when it stopped: freed`);
        slots.splice(slots.indexOf(s), 1);
      }
    }
    return slots.filter((s) => s.kind === 'packet' && s.fnId === f.id).map((s) => s.snapshot());
  };

  return {
    plane,
    instances: () => slots.map((s) => s.snapshot()),
    scale,
    snapshot: () => {
      const st = o.pool.stats();
      const snap = plane.snapshot();
      // The plane holds no chain settings pktio does not read from it: the window comes from the IR.
      const chains = snap.chains.map((c, i) => {
        const us = p.chains[i]?.coalesce?.us;
        return us ? { ...c, coalesceUs: us } : c;
      });
      return { ...snap, chains, pool: { inUse: st.inUse, bufferCount: st.bufferCount } };
    },
    stop: stopAll,
  };
}

/** A packet part that cannot start or change: a missing interface, an unknown function, a bad count. */
export class PacketRuntimeError extends BpfctlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_PACKET_RUNTIME', message, options);
  }
}

/**
 * What one packet function's instances run: a C handler built with nf_main.c, a TypeScript one
 * bundled for the TypeScript runtime, or the command as given (checked to exist). `bpfctl build`
 * checks a policy's packet functions with this too.
 * @throws PacketFunctionBuildError, PacketHandlerError, SourceError, PacketRuntimeError
 */
export async function packetFunctionCode(f: PacketIR['functions'][number], progress: (msg: string) => void = () => {}): Promise<{ argv: string[]; env: Record<string, string> }> {
  if (f.language === 'c') {
    progress(`building packet function ${f.name}`);
    return { argv: [await buildPacketFunction(f.handler!)], env: {} };
  }
  if (f.language === 'ts') {
    progress(`building packet function ${f.name}`);
    return buildTsPacketFunction(f.name, f.handler!);
  }
  const exe = f.command![0]!;
  if (!findExecutable(exe)) throw new PacketRuntimeError(`packetFunctions.${f.name}.command[0]: ${exe}: no such executable${exe.includes('/') ? '' : ' on PATH'}`);
  return { argv: [...f.command!], env: {} };
}

/** True when `exe` (a path, or a name looked up on PATH) is an executable file. */
function findExecutable(exe: string): boolean {
  const ok = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (exe.includes('/')) return ok(exe);
  return (process.env.PATH ?? '').split(':').some((d) => d && ok(join(d, exe)));
}

function netnsPath(ns: string): string {
  return ns.includes('/') ? ns : `/run/netns/${ns}`;
}
