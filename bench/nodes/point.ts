/**
 * One measured point of the nodes bench: wrk (../chain/wrk.ts) run inside the client's namespace
 * against one target for a few seconds, and around it the CPU of every process of the target's
 * setup (each thread's schedstat, ../chain/proc.ts) and of the whole machine (/proc/stat: how much
 * of the two cores other people's work and the hypervisor took while the point ran).
 */
import { readFileSync } from 'node:fs';
import { CLK_TCK, cpuSeconds } from '../chain/proc.ts';
import { runWrk } from '../chain/wrk.ts';
import type { Proc } from './cluster.ts';

export interface Target {
  name: string;
  url: string;
  /** The client's namespace. */
  netns: string;
  procs(): Proc[];
}

export interface Point {
  name: string;
  concurrency: number;
  round: number;
  /** Its place in the round's sequence at this concurrency (the order rotates from round to round). */
  seq: number;
  rps: number;
  p50_us: number;
  p99_us: number;
  cpu_us_per_req: number;
  requests: number;
  /** Non-2xx answers and socket errors wrk saw (0 in a valid run). */
  errors: number;
  /** The process that used the most CPU, and how much (% of a core). */
  busiest: string;
  busiest_cpu_pct: number;
  wrk_cpu_pct: number;
  /** CPU per request of each process of the setup (us; those above 0.5 us). */
  procs: Record<string, number>;
  /** Cores busy with work that was neither the setup's nor wrk's, and cores stolen by the hypervisor. */
  others_cores: number;
  steal_cores: number;
  /** Set when every process of the setup (and wrk) ran confined to these CPUs. */
  cpus?: string;
}

/** user+nice+system+irq+softirq, and steal, of all CPUs, in seconds (/proc/stat's first line). */
function machineCpu(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return { busy: (user + nice + system + irq + softirq) / CLK_TCK, steal: steal / CLK_TCK };
}

export async function measure(t: Target, c: number, seconds: number, round: number, seq: number, cpus?: string): Promise<Point> {
  const procs = t.procs();
  const cpu0 = procs.map((p) => cpuSeconds(p.pid));
  const m0 = machineCpu();
  const t0 = performance.now();
  const w = await runWrk(t.url, c, seconds, t.netns);
  const secs = (performance.now() - t0) / 1000;
  const m1 = machineCpu();
  const each = procs.map((p, i) => cpuSeconds(p.pid) - cpu0[i]!);
  const cpu = each.reduce((a, b) => a + b, 0);
  const top = each.indexOf(Math.max(...each));
  const per: Record<string, number> = {};
  procs.forEach((p, i) => {
    const us = w.requests ? (each[i]! * 1e6) / w.requests : 0;
    if (us > 0.5) per[p.label] = Math.round(((per[p.label] ?? 0) + us) * 10) / 10;
  });
  const wrkCpu = Number.isFinite(w.cpu_s) ? w.cpu_s : 0;
  return {
    name: t.name,
    concurrency: c,
    round,
    seq,
    rps: w.rps,
    p50_us: w.p50_us,
    p99_us: w.p99_us,
    cpu_us_per_req: w.requests ? (cpu * 1e6) / w.requests : Number.NaN,
    requests: w.requests,
    errors: w.non2xx + w.errors,
    busiest: procs[top]?.label ?? '?',
    busiest_cpu_pct: ((each[top] ?? 0) / secs) * 100,
    wrk_cpu_pct: (w.cpu_s / secs) * 100,
    procs: per,
    // /proc/stat counts in 10 ms units: over a 2 s point, "others" is good to ~0.02 cores.
    others_cores: Math.max(0, (m1.busy - m0.busy - cpu - wrkCpu) / secs),
    steal_cores: (m1.steal - m0.steal) / secs,
    ...(cpus ? { cpus } : {}),
  };
}
