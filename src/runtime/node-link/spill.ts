/**
 * When a function's local instances are overloaded, some of its requests go to other nodes'
 * instances of it ("spill", docs/multi-node.md). The signal is how much CPU its local instance
 * processes want: the time their main thread ran plus the time it waited on a run queue to run
 * (/proc/PID/schedstat), per second of wall time. A function process that is always running or
 * ready to run is what queues requests; counting the run-queue wait too means an instance starved
 * by other processes on its cores reads as overloaded, as it is, not as 60% busy. It is measured
 * without touching the data path, and a process that waits on I/O does not look busy.
 *
 * Spilling lists the remote instance ids after the local ones in `instances`, so the kernel's
 * `req_id % count` sends each of them the same share as a local instance. It starts when the
 * local instances are on average at least ON_BUSY busy, and stops when the load they would carry
 * alone (what they use now, scaled back up by the share spilling takes away) falls under OFF_BUSY:
 * judged on that projection, not on the lowered use itself, a load just over the limit does not
 * flip spilling on and off every interval.
 */
import { readFileSync } from 'node:fs';

/** Average busy fraction of the local instances at which spilling starts. */
export const ON_BUSY = 0.85;
/** Projected busy fraction without spilling under which it stops. */
export const OFF_BUSY = 0.6;
/** How often the instances' CPU is sampled. */
export const SAMPLE_MS = 500;
/** Nanoseconds a process's main thread ran plus waited to run, or null when it is gone. */
export function demandNs(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/schedstat`, 'latin1');
  } catch {
    return null;
  }
  const [run, wait] = text.split(' ').map(Number);
  return Number.isFinite(run) && Number.isFinite(wait) ? run! + wait! : null;
}

/** Busy fraction (wanted CPU per wall second) of each process since it was last asked about (null the first time). */
export class CpuMeter {
  private last = new Map<number, { ns: number; at: number }>();

  busy(pids: number[], now = performance.now()): (number | null)[] {
    const out = pids.map((pid) => {
      const ns = demandNs(pid);
      if (ns === null) {
        this.last.delete(pid);
        return null;
      }
      const prev = this.last.get(pid);
      this.last.set(pid, { ns, at: now });
      if (!prev || now <= prev.at) return null;
      return (ns - prev.ns) / 1e6 / (now - prev.at);
    });
    return out;
  }

  /** Forgets processes that are not among `pids` (instances replaced or stopped). */
  keep(pids: Set<number>): void {
    for (const pid of this.last.keys()) if (!pids.has(pid)) this.last.delete(pid);
  }
}

/**
 * Whether to spill next, from whether it spills now, the local instances' average busy fraction,
 * and how many local and remote instances there are.
 */
export function decideSpill(spilling: boolean, busy: number, local: number, remote: number): boolean {
  if (remote === 0 || local === 0) return false;
  if (!spilling) return busy >= ON_BUSY;
  // Spilling, the local instances carry local/(local+remote) of the load: alone they would be at busy*(local+remote)/local.
  return (busy * (local + remote)) / local >= OFF_BUSY;
}
