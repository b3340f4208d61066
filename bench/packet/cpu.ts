/**
 * CPU accounting of the packet bench. A DUT's CPU is the CPU time of its own threads: its
 * processes (testpmd, `bpfctl run` and everything under it) and the threaded-NAPI kernel threads
 * of its two veths, where the kernel's part of forwarding runs (XDP, AF_XDP's copy into the UMEM,
 * the whole IP forward + nftables path). Read from each thread's schedstat (nanoseconds).
 * `/proc/stat` busy time of the whole machine is read too, as a cross-check that includes what
 * no thread is charged for (softirqs outside NAPI threads, kworkers) and other people's work.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { CLK_TCK, cpuSeconds, processTree } from '../chain/proc.ts';

/** Pids of kernel threads whose name starts with `prefix` (e.g. `napi/p1a2bi-`). */
export function kthreads(prefix: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').startsWith(prefix)) out.push(Number(e));
    } catch {}
  }
  return out;
}

/** Every pid of the process trees rooted at `roots`. */
export function trees(roots: readonly number[]): number[] {
  return roots.flatMap((p) => processTree(p));
}

/** CPU seconds of the given pids (all their threads). */
export function cpuOf(pids: readonly number[]): number {
  let s = 0;
  for (const p of pids) s += cpuSeconds(p);
  return s;
}

/** Busy CPU seconds of the whole machine (user + nice + system + irq + softirq, every CPU). */
export function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8');
  const v = f.slice(0, f.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = v as [number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq) / CLK_TCK;
}

/**
 * Where things run (bench/packet.ts says why): the DUT on CPU 0, the generator, the sink's NAPI
 * thread and the bench itself on CPU 1. PACKET_PIN=0 leaves everything to the scheduler.
 */
export const PINNED = process.env.PACKET_PIN !== '0';
export const DUT_CPU = '0';
export const LOAD_CPU = '1';

/** Restricts every thread of each pid to `cpus` (a taskset list); pids gone meanwhile are skipped. */
export function pin(pids: readonly number[], cpus: string): void {
  if (!PINNED) return;
  for (const p of pids) spawnSync('taskset', ['-a', '-p', '-c', cpus, String(p)], { stdio: 'ignore' });
}

/** `cmd args` as argv, started on `cpus` when pinning (children inherit it). */
export function onCpus(cpus: string, cmd: string, args: readonly string[]): [string, string[]] {
  return PINNED ? ['taskset', ['-c', cpus, cmd, ...args]] : [cmd, [...args]];
}

/** Busy CPU seconds of one CPU (`cpu0`, ...) from /proc/stat. */
export function cpuBusy(cpu: string): number {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return Number.NaN;
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number) as [number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq) / CLK_TCK;
}

/** CPU seconds of every thread of the given pids, by thread name (`comm`), summed per name. */
export function byThreadName(pids: readonly number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      try {
        const comm = readFileSync(`/proc/${p}/task/${t}/comm`, 'utf8').trim();
        const f = readFileSync(`/proc/${p}/task/${t}/schedstat`, 'utf8');
        out.set(comm, (out.get(comm) ?? 0) + Number(f.slice(0, f.indexOf(' '))) / 1e9);
      } catch {}
    }
  }
  return out;
}
