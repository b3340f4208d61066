/**
 * The descriptor-transport bench's rounds (bench/descriptors.ts describes the method): all rounds
 * of max points, then all rounds of paced points, each round every variant once in an order that
 * rotates from round to round, then one idle point per variant. The paced rate is 20% of the
 * slowest variant's median max (DESC_RATE overrides it).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLauncher, loadRedirect, type Redirect } from './build.ts';
import { BATCH, killLaunchers, type Phase, type Point, type PointOptions, runPoint, VARIANTS, type VariantName } from './point.ts';
import { fmt, LOW_STEAL, lowStealTable, median, REFERENCE, type Row, rows, splitTable, table } from './report.ts';

const here = dirname(fileURLToPath(import.meta.url));

interface Settings {
  quick: boolean;
  rounds: number;
  max: { warmMs: number; measureMs: number };
  rate: { warmMs: number; measureMs: number };
  idle: { warmMs: number; settleMs: number; measureMs: number };
}

function settings(quick: boolean): Settings {
  const s: Settings = quick
    ? { quick, rounds: 1, max: { warmMs: 300, measureMs: 1000 }, rate: { warmMs: 300, measureMs: 1500 }, idle: { warmMs: 300, settleMs: 300, measureMs: 3000 } }
    : { quick, rounds: 7, max: { warmMs: 500, measureMs: 1500 }, rate: { warmMs: 500, measureMs: 1500 }, idle: { warmMs: 500, settleMs: 500, measureMs: 3000 } };
  if (process.env.DESC_ROUNDS) s.rounds = Math.max(1, Number(process.env.DESC_ROUNDS) || 1);
  return s;
}

export interface DescriptorsResult {
  variants: Row[];
  rate_desc_per_s: number;
  points: Point[];
  failures: { name: string; error: string }[];
  machine: Record<string, unknown>;
  method: Record<string, string>;
}

const METHOD: Record<string, string> = {
  chain: 'three processes forked by one launcher (bench/descriptors/main.c): producer -> middle hop -> consumer, unpinned on 2 vCPUs',
  descriptors: '16-byte struct bpfctl_pkt_desc, each naming a 2048-byte frame buffer in a MAP_SHARED memfd; the producer stamps CLOCK_MONOTONIC into the frame, the middle hop sets hop + 1, the consumer checks order and hop and reads the stamp',
  batches: '32 descriptors per send; receivers take up to 32 at a time',
  window: 'the producer keeps at most 1024 descriptors in flight (sk_msg ingress redirect has no backpressure) and sleeps on a futex until half of it is free, in every variant alike',
  'ring-event': 'packet_ring.h rings (1024 slots, the plane\'s size) in the memfd; consumers FUTEX_WAIT when empty, producers FUTEX_WAKE only a sleeper, once per batch',
  'ring-poll': 'the same rings; consumers spin (pause) on an empty ring',
  skmsg: 'one TCP socket per hop (connected to the launcher) in a sockhash; sk_msg program (bench/descriptors/redirect.bpf.c, loaded and attached through bpfctl\'s loader) redirects each sendmsg whole into the socket under the first descriptor\'s hop, BPF_F_INGRESS; hops block in recv',
  unix: 'a SOCK_SEQPACKET socketpair per hop; hops block in recv',
  max: 'producer flat out (within the window); descriptors/s the consumer took',
  rate: 'producer paced with clock_nanosleep (timer slack 1 ns), one batch every 32/rate s (a late producer sends what is due at once; more than 20 ms behind it skips); rate = 20% of the slowest variant\'s median max; latency: stamp to the consumer\'s clock_gettime after the receive, 25 ns histogram buckets (upper edges)',
  idle: 'traffic for the warm-up, then none: CPU of the three over the window',
  cpu: 'per process /proc/<pid>/schedstat on-CPU time (the ns clock utime + stime are sampled from; utime + stime kept as tick_cpu_ns), the three processes summed, per descriptor the consumer took; sk_msg ingress redirect runs in the sender\'s sendmsg (process context), so it is in the sender\'s system time; machine-wide /proc/stat softirq + irq kept per point as a check',
  syscalls: 'send/recv calls, ring futex waits and wakes, of the three, per batch sent; the window\'s futex calls are counted apart (gate)',
  sleeps: 'voluntary context switches of the three per batch sent (each a sleep that ended in a wakeup)',
  rounds: 'all rounds of max points, then all rounds of paced points; in each round every variant once, in an order rotating per round; then one idle point per variant; rows are medians of rounds, ratios medians of per-round ratios vs skmsg',
  low_steal: 'points during which steal stayed under 0.2 cores, reported apart (medians of those points): what the transports cost when the host leaves the VM alone',
  steal: 'this is a VM: /proc/stat steal time (the hypervisor running something else on our vCPUs) is kept per point; it comes in bursts, is high whenever the hops sleep and wake often, and is what makes single points vary by 2x',
};

const log = (m: string) => process.stderr.write(`descriptors: ${m}\n`);
const rotate = <T>(xs: readonly T[], k: number) => xs.map((_, i) => xs[(i + k) % xs.length]!);

/** 20% of the slowest max, down to two significant digits. */
function moderate(maxes: number[]): number {
  const r = Math.min(...maxes) * 0.2;
  const p = 10 ** (Math.floor(Math.log10(r)) - 1);
  return Math.floor(r / p) * p;
}

function describe(p: Point): string {
  const base = `round ${p.round + 1} ${p.transport} ${p.phase}:`;
  if (p.phase === 'idle') return `${base} ${fmt(p.cpu_pct, 2)}% of a core`;
  const steal = `, steal ${fmt(p.steal_ns / (p.seconds * 1e9), 2)} cores`;
  const lat =
    p.phase === 'rate' ? `, p50 ${fmt(p.lat.p50_ns / 1000, 1)} us p99 ${fmt(p.lat.p99_ns / 1000, 1)} us, ${fmt(p.late_batches)} batches late, ${fmt(p.skipped_batches)} skipped` : '';
  return `${base} ${fmt(p.desc_per_s)} desc/s, ${fmt(p.cpu_ns_per_desc)} CPU ns/desc${lat}, ${fmt(p.syscalls_per_batch, 2)} syscalls/batch, others ${fmt(p.others_cores, 2)} cores${steal}`;
}

export function print(r: DescriptorsResult): void {
  const out: string[] = [];
  const rounds = r.machine.rounds as number;
  out.push(`Descriptor transport: producer -> middle -> consumer, batches of ${BATCH} (medians of ${rounds} round${rounds === 1 ? '' : 's'}; (ratio) vs ${REFERENCE}, median of per-round ratios)\n`);
  out.push(table(r.variants, r.rate_desc_per_s));
  out.push(`\nThe points during which the hypervisor took less than ${LOW_STEAL} cores (steal; medians of those points)\n`);
  out.push(lowStealTable(r.variants, r.rate_desc_per_s));
  out.push("\nCPU by process (ns per descriptor; idle: % of a core); the max points' spread; at max: the three together in % of a core, the machine's other busy cores, steal\n");
  out.push(splitTable(r.variants));
  const loads = (r.machine.loadavg_1m_samples as number[] | undefined) ?? [];
  if (loads.length) out.push(`\n1-minute load average during the run: ${fmt(Math.min(...loads), 2)}-${fmt(Math.max(...loads), 2)} (2 cores)`);
  for (const f of r.failures) out.push(`FAILED ${f.name}: ${f.error}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** DESC_REPORT_ONLY=1: the rows and tables again from the points of the recorded run (no measuring). */
function reportOnly(file: string): DescriptorsResult {
  const r = JSON.parse(readFileSync(file, 'utf8')) as DescriptorsResult;
  r.variants = rows(r.points, VARIANTS.filter((n) => r.points.some((p) => p.transport === n)));
  r.method = METHOD;
  writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  log(`rewrote ${file} from its points`);
  print(r);
  return r;
}

export async function run(opts: { quick?: boolean } = {}): Promise<DescriptorsResult> {
  const s = settings(opts.quick ?? process.argv.includes('--quick'));
  const resultFile = s.quick ? join(here, '../../.cache/bench/descriptors-quick.json') : join(here, '../results/descriptors.json');
  if (process.env.DESC_REPORT_ONLY === '1') return reportOnly(resultFile);
  const asked = process.env.DESC_VARIANTS?.split(',').filter((n): n is VariantName => (VARIANTS as readonly string[]).includes(n));
  const names = asked?.length ? VARIANTS.filter((n) => asked.includes(n) || n === REFERENCE) : VARIANTS;
  const t0 = Date.now();
  const loads: number[][] = [os.loadavg()];
  const points: Point[] = [];
  const failures: { name: string; error: string }[] = [];
  let rate = Number(process.env.DESC_RATE) || 0;

  const bin = buildLauncher();
  let redirect: Redirect | undefined;
  let interrupted = false;
  const teardownSync = () => {
    killLaunchers();
    try {
      redirect?.close();
    } catch {}
    redirect = undefined;
  };
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = true;
    log(`${sig}: stopping`);
    teardownSync();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', teardownSync);
  try {
    redirect = loadRedirect();
    const point = async (name: VariantName, phase: Phase, o: Omit<PointOptions, 'mapFd'>, round: number, seq: number) => {
      try {
        const p = await runPoint(bin, name, phase, { ...o, mapFd: redirect!.fd, cpus: process.env.DESC_CPUS }, round, seq);
        points.push(p);
        log(describe(p));
      } catch (err) {
        const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
        failures.push({ name: `${name} ${phase} round ${round + 1}`, error: msg });
        log(`FAILED ${msg}`);
      }
    };
    // Max points first, every round: the paced rate comes from their medians, not from one round.
    for (let round = 0; round < s.rounds && !interrupted; round++) {
      for (const [i, n] of rotate(names, round).entries()) await point(n, 'max', { rate: 0, settleMs: 0, ...s.max }, round, i);
      loads.push(os.loadavg());
    }
    if (!rate) {
      const maxes = names.map((n) => median(points.filter((p) => p.phase === 'max' && p.transport === n).map((p) => p.desc_per_s))).filter((m) => m > 0);
      if (!maxes.length) throw new Error('no variant reached a max: nothing to pace at');
      rate = moderate(maxes);
      log(`paced points at ${fmt(rate)} desc/s (20% of the slowest variant's median max)`);
    }
    for (let round = 0; round < s.rounds && !interrupted; round++) {
      for (const [i, n] of rotate(names, round).entries()) await point(n, 'rate', { rate, settleMs: 0, ...s.rate }, round, i);
      loads.push(os.loadavg());
    }
    // Idle is either ~0 or a core per spinning hop: once per variant is enough.
    for (const [i, n] of names.entries()) if (!interrupted) await point(n, 'idle', { rate, ...s.idle }, 0, i);
  } finally {
    teardownSync();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', teardownSync);
  }
  const result: DescriptorsResult = {
    variants: rows(points, names),
    rate_desc_per_s: rate,
    points,
    failures,
    machine: {
      date: new Date(t0).toISOString(),
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model,
      kernel: os.release(),
      node: process.version,
      quick: s.quick,
      rounds: s.rounds,
      settings: { max: s.max, rate: s.rate, idle: s.idle },
      cpus_of_hops: process.env.DESC_CPUS ?? 'unpinned',
      loadavg_1m_samples: loads.map((l) => l[0]),
      bench_seconds: Math.round((Date.now() - t0) / 1000),
    },
    method: METHOD,
  };
  // A quick run is a smoke test: it never replaces the recorded results.
  mkdirSync(dirname(resultFile), { recursive: true });
  writeFileSync(resultFile, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${resultFile}`);
  print(result);
  return result;
}
