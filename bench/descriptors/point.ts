/**
 * One measured point: a launcher process (main.c) for one variant and phase, its `result` line
 * parsed, with the derived per-descriptor and per-batch figures. Launchers run one at a time;
 * `killLaunchers` is the bench's way out on Ctrl-C (their hop processes die with them).
 */
import { type ChildProcess, spawn } from 'node:child_process';

export const VARIANTS = ['ring-event', 'ring-poll', 'skmsg', 'unix'] as const;
export type VariantName = (typeof VARIANTS)[number];
export type Phase = 'max' | 'rate' | 'idle';
/** Descriptors per send (layout.h DB_BATCH). */
export const BATCH = 32;

/** The launcher's `result` line (main.c prints it). Arrays: producer, middle hop, consumer. */
export interface RawResult {
  transport: VariantName;
  phase: Phase;
  rate: number;
  seconds: number;
  descs: number;
  desc_per_s: number;
  cpu_ns: number[];
  tick_cpu_ns: number[];
  vcsw: number[];
  ivcsw: number[];
  syscalls: number[];
  batches: number[];
  gate: number[];
  ring_full: number[];
  /** Paced producer: batches sent more than 1 ms late (in a catch-up), and not sent (more than 20 ms behind). */
  late_batches: number;
  skipped_batches: number;
  machine_busy_ns: number;
  irq_ns: number;
  softirq_ns: number;
  steal_ns: number;
  lat: { n: number; mean_ns: number; p50_ns: number; p90_ns: number; p99_ns: number; p999_ns: number };
  errors: number;
}

export interface Point extends RawResult {
  round: number;
  /** Place in the round's sequence of this phase. */
  seq: number;
  /** CPU of the three processes (schedstat), per descriptor delivered to the consumer. */
  cpu_ns_per_desc: number;
  /** CPU of the three processes, % of one core. */
  cpu_pct: number;
  /** Transport syscalls (send/recv, futex wait/wake of the rings) of all three, per batch the producer sent. */
  syscalls_per_batch: number;
  /** Voluntary context switches (sleeps that ended in a wakeup) of all three, per batch sent. */
  sleeps_per_batch: number;
  /** /proc/stat softirq + irq time of the whole machine, per descriptor (others' included). */
  softirq_ns_per_desc: number;
  /** Machine busy time not charged to the three processes, cores (the launcher, the bench, other people). */
  others_cores: number;
  /** Time the hypervisor took our vCPUs for something else, cores. */
  steal_cores: number;
}

export interface PointOptions {
  rate: number;
  warmMs: number;
  measureMs: number;
  settleMs: number;
  /** The skmsg variant's sockhash (inherited as fd 3). */
  mapFd?: number;
  /** `P,M,C`: the CPUs of producer, middle hop and consumer (default: the scheduler's choice). */
  cpus?: string;
}

const live = new Set<ChildProcess>();

export function killLaunchers(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
  live.clear();
}

function derive(r: RawResult, round: number, seq: number): Point {
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const cpu = sum(r.cpu_ns);
  const batches = r.batches[0]! || Number.NaN;
  return {
    ...r,
    round,
    seq,
    cpu_ns_per_desc: r.descs ? cpu / r.descs : Number.NaN,
    cpu_pct: (cpu / (r.seconds * 1e9)) * 100,
    syscalls_per_batch: sum(r.syscalls) / batches,
    sleeps_per_batch: sum(r.vcsw) / batches,
    softirq_ns_per_desc: r.descs ? (r.softirq_ns + r.irq_ns) / r.descs : Number.NaN,
    others_cores: (r.machine_busy_ns - cpu) / (r.seconds * 1e9),
    steal_cores: r.steal_ns / (r.seconds * 1e9),
  };
}

/** Runs one point; rejects with the launcher's own one-line error when it fails. */
export function runPoint(bin: string, name: VariantName, phase: Phase, o: PointOptions, round: number, seq: number): Promise<Point> {
  const args = ['--transport', name, '--phase', phase, '--warm-ms', String(o.warmMs), '--measure-ms', String(o.measureMs), '--settle-ms', String(o.settleMs)];
  if (phase !== 'max') args.push('--rate', String(Math.round(o.rate)));
  if (o.cpus) args.push('--cpus', o.cpus);
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
  if (name === 'skmsg') {
    if (o.mapFd === undefined) return Promise.reject(new Error('skmsg: no sockhash loaded'));
    stdio.push(o.mapFd);
    args.push('--map-fd', '3');
  }
  // Its own process group: Ctrl-C reaches the bench, which kills it.
  const proc = spawn(bin, args, { stdio, detached: true });
  live.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => {
    err = (err + c).slice(-4000);
  });
  const limitMs = o.warmMs + o.measureMs + o.settleMs + 15_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), limitMs);
    proc.once('error', (e) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(new Error(`${name} ${phase}: cannot start ${bin}: ${e.message}`));
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      const line = out.split('\n').find((l) => l.startsWith('result '));
      const why = err.trim().split('\n').pop() ?? '';
      if (!line) return reject(new Error(`${name} ${phase}: ${why || `launcher exited (${code ?? signal}) without a result`}`));
      const p = derive(JSON.parse(line.slice('result '.length)) as RawResult, round, seq);
      if (p.errors) return reject(new Error(`${name} ${phase}: the consumer saw ${p.errors} descriptors out of order or altered`));
      if (code !== 0) return reject(new Error(`${name} ${phase}: launcher exited ${code ?? signal}: ${why}`));
      resolve(p);
    });
  });
}
