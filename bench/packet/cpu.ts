/**
 * CPU accounting of the packet bench. A DUT's CPU is the CPU time of its own threads: its
 * processes (testpmd, `bpfctl run` and everything under it) and the threaded-NAPI kernel threads
 * of its two veths, where the kernel's part of forwarding runs (XDP, AF_XDP's copy into the UMEM,
 * the whole IP forward + nftables path). Read from each thread's schedstat (nanoseconds).
 * `/proc/stat` busy time of the whole machine is read too, as a cross-check that includes what
 * no thread is charged for (softirqs outside NAPI threads, kworkers) and other people's work.
 */
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
