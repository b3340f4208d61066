/**
 * Chain benchmark: one three-function chain (upper -> reverse -> stamp, bench/chain/work.ts) run
 * nine ways, side by side in one run (bench/chain/variants.ts):
 *   bpfctl-ts         bpfctl: sk_msg redirects descriptors of a shared pool, TypeScript functions
 *   tcp               the same functions over plain TCP between Node processes (payload in the
 *                     frames): the reference of the TypeScript variants and the HTTP baselines
 *   http-sidecar      Knative-style: every function an HTTP server behind its own proxy sidecar
 *                     (a Node reverse proxy)
 *   bpfctl-c          bpfctl with the same functions in C
 *   tcp-c             the same C functions (the same sources) over plain TCP, behind tcp's
 *                     gateway: the reference of the C variants (bpfctl-c differs from it in the
 *                     transport only)
 *   http-direct       every function an HTTP server calling the next one itself (no sidecars)
 *   http-sidecar-haproxy  http-sidecar with Debian's HAProxy as the sidecars
 *   bpfctl-ts-native  bpfctl-ts behind the native (C) gateway
 *   bpfctl-c-native   bpfctl-c behind the native gateway
 *
 * HTTP level: every variant is started first and stays up; then rounds of wrk points at 1, 16,
 * 64 and 256 connections. In each round, at each concurrency, tcp runs first and last and the
 * other variants in between, in an order that rotates from round to round, so that the machine's
 * drift (it is shared, 2 vCPUs) spreads over all of them and every point has a tcp point on
 * either side of it. Each point: requests/s, p50/p99/p99.9, CPU per request of all the variant's
 * processes (from each thread's schedstat). A variant's row is the median of its points; a ratio
 * vs tcp is the median over rounds of the point against the geometric mean of the two tcp
 * points around it. Then bpfctl-ts and tcp at 16 and 64 connections, the Node gateway's targets,
 * get four more groups of ABBA / BAAB pairs, and so do bpfctl-c and tcp-c. The C variants are
 * compared with tcp-c (the same round's point), the others with tcp; every variant with both
 * sidecar chains too.
 * Idle: after the load, every variant's warm chain with no traffic, all at once, and two fresh
 * `bpfctl run examples/hello-chain` (compiled and from sources: the whole process tree, from 10 s
 * after start over 20 s; bench/chain/hello-idle.ts).
 * Descriptor level (no HTTP): a driver keeps 32 requests circulating through the functions
 * (bpfctl: its own socket registered as a gateway instance, hop 0 descriptors; tcp and tcp-c:
 * their framing), in alternating rounds; bpfctl-ts is paired with tcp, bpfctl-c with tcp-c. The C
 * reference (bench/chain/c-inproc: the three C functions called in a row in one process) gives
 * the work's own CPU per round trip, the floor under both C chains.
 *
 * Run: npm run bench -- chain [--quick]   (root; writes bench/results/chain.json; --quick, a
 * ~1.5 minute smoke run, writes .cache/bench/chain-quick.json instead)
 * CHAIN_VARIANTS=bpfctl-ts,tcp  only these (tcp is added: it is the reference; tcp-c with a C variant)
 * CHAIN_LOOP_ONLY=1             descriptor level only (prints, writes nothing); CHAIN_LOOP_ROUNDS=n
 * CHAIN_ROUNDS=n                HTTP rounds (default 5; --quick: 1)
 * Every process started is stopped and every policy unloaded, on errors and Ctrl-C too.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCInproc } from './chain/c-inproc/run.ts';
import type { LoopResult } from './chain/driver/loop.ts';
import { type HelloIdle, type HelloRun, startHello } from './chain/hello-idle.ts';
import { cpuSeconds, describeProcess, killAllSync, stopAll, totalCpu, wakeups } from './chain/proc.ts';
import { startVariant, VARIANTS, type Variant, type VariantName } from './chain/variants.ts';
import { expected, PAYLOAD } from './chain/work.ts';
import { runWrk } from './chain/wrk.ts';
import { benchCommit } from './commit.ts';

const here = dirname(fileURLToPath(import.meta.url));
const CONCURRENCY = [1, 16, 64, 256] as const;
/** The one-CPU layout of the descriptor level (taskset list). */
const ONE_CPU = '0';
const LOOP_VARIANTS: readonly VariantName[] = ['bpfctl-ts', 'tcp', 'bpfctl-c', 'tcp-c'];
const BPFCTL_VARIANTS: readonly VariantName[] = ['bpfctl-ts', 'bpfctl-c', 'bpfctl-ts-native', 'bpfctl-c-native'];
const REFERENCE: VariantName = 'tcp';
/** The reference of the variants with C functions: the same C functions over plain TCP. */
const C_REFERENCE: VariantName = 'tcp-c';
const C_VARIANTS: readonly VariantName[] = ['bpfctl-c', 'bpfctl-c-native'];
const SIDECARS: readonly VariantName[] = ['http-sidecar', 'http-sidecar-haproxy'];
/** Each variant's reference for the ratios (vs_ref): tcp-c for the C ones, tcp for the rest. */
const referenceOf = (n: VariantName): VariantName => (C_VARIANTS.includes(n) ? C_REFERENCE : REFERENCE);

/** One wrk point of one round. */
export interface HttpPoint {
  name: VariantName;
  concurrency: number;
  round: number;
  /** Its place in the round's sequence at this concurrency (tcp: first and last). */
  seq: number;
  rps: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  cpu_us_per_req: number;
  requests: number;
  errors: number;
  /** The variant's process that used the most CPU in the point, and how much (% of a core). */
  busiest: string;
  busiest_cpu_pct: number;
  /** wrk's own CPU (% of a core): near 100, the load generator is the limit. */
  wrk_cpu_pct: number;
}

/** A variant at one concurrency: the median of its points (errors: the sum; `rounds`: how many points). */
export interface HttpRow {
  name: VariantName;
  concurrency: number;
  rps: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  cpu_us_per_req: number;
  idle_cpu_pct: number;
  requests: number;
  /** Non-2xx answers and socket errors wrk saw (0 in a valid run). */
  errors: number;
  rounds: number;
  /** The busiest process (the one most often busiest over the points) and its median CPU. */
  busiest: string;
  busiest_cpu_pct: number;
  wrk_cpu_pct: number;
}

/** Median (and range) of the per-round ratios of a variant to tcp at one concurrency. */
export interface PairedRatio {
  name: VariantName;
  concurrency: number;
  rps: Spread;
  p99: Spread;
  cpu_per_req: Spread;
}

/** A paired ratio against a named variant. */
export interface PairedRatioVs extends PairedRatio {
  vs: VariantName;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface IdleRow {
  name: VariantName;
  cpu_pct: number;
  wakeups_per_s: number;
  processes: number;
}

export interface LoopRow {
  name: VariantName;
  rt_per_s: number;
  p50_us: number;
  p99_us: number;
  /** Chain processes and driver together; `cpu_us_per_rt_chain` without the driver. */
  cpu_us_per_rt: number;
  cpu_us_per_rt_chain: number;
  round_trips: number;
  errors: number;
}

export interface Target {
  what: string;
  value: number;
  target: string;
  met: boolean;
}

export interface ChainBenchResult {
  /** One row per variant and concurrency (medians of the rounds). */
  variants: HttpRow[];
  /** Every point of every round. */
  http_rounds: HttpPoint[];
  /**
   * Ratios to each variant's reference, medians of the per-round pairs: tcp-c for bpfctl-c and
   * bpfctl-c-native, tcp for the others (tcp-c included: C against TypeScript functions).
   */
  vs_ref: PairedRatioVs[];
  /** Ratios of every variant to http-sidecar and to http-sidecar-haproxy (paired by round). */
  vs_sidecars: PairedRatioVs[];
  idle: IdleRow[];
  /** `bpfctl run examples/hello-chain`, idle from 10 s after start over 20 s. */
  hello_idle: HelloIdle[];
  /** The best round of each variant (by rt/s); every round is in `loop_rounds`. */
  loop: LoopRow[];
  loop_rounds: LoopRow[][];
  /**
   * The same rounds with the driver and every process of the chain confined to one CPU, the same
   * layout for both variants of a pair: what the transport costs without cross-CPU wakeups.
   */
  loop_rounds_one_cpu: LoopRow[][];
  /**
   * Not variants, for context: tcp with a write per frame; c-in-process, the three C functions
   * called in a row in one process (no transport, no driver: its CPU is the work alone).
   */
  loop_reference: (Omit<LoopRow, 'name'> & { name: string })[];
  ratios: Record<string, number>;
  targets: Target[];
  failures: { name: string; error: string }[];
  machine: Record<string, unknown>;
}

interface Settings {
  quick: boolean;
  rounds: number;
  /** Extra groups of bpfctl-ts/tcp pairs, and of bpfctl-c/tcp-c pairs, at c=16 and c=64. */
  focusRounds: number;
  httpSeconds: number;
  warmupSeconds: number;
  /** From the last load (and the hello chains' start) to the idle window. */
  settleMs: number;
  idleSeconds: number;
  loop: { inflight: number; warmupMs: number; measureMs: number };
  loopRounds: number;
}

const LOOP_ONLY = process.env.CHAIN_LOOP_ONLY === '1';

// Five 1-second points per variant and concurrency rather than three of 2 s: on a shared machine
// one burst of someone else's work spoils a point, and the median of five shrugs off two.
function settings(quick: boolean): Settings {
  const s: Settings = quick
    ? { quick, rounds: 1, focusRounds: 0, httpSeconds: 1, warmupSeconds: 1, settleMs: 3000, idleSeconds: 4, loop: { inflight: 32, warmupMs: 500, measureMs: 1500 }, loopRounds: 1 }
    : { quick, rounds: 5, focusRounds: 4, httpSeconds: 1, warmupSeconds: 2, settleMs: 10_000, idleSeconds: 20, loop: { inflight: 32, warmupMs: 700, measureMs: 2000 }, loopRounds: 6 };
  const env = (name: string) => {
    const n = Number(process.env[name]);
    return Number.isInteger(n) && n > 0 ? n : null;
  };
  s.rounds = env('CHAIN_ROUNDS') ?? s.rounds;
  s.loopRounds = env('CHAIN_LOOP_ROUNDS') ?? s.loopRounds;
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[chain bench] ${s}\n`);

function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function spread(xs: number[]): Spread {
  const v = xs.filter(Number.isFinite);
  return { median: median(v), min: v.length ? Math.min(...v) : Number.NaN, max: v.length ? Math.max(...v) : Number.NaN };
}

/** One POST of the payload; the variant must answer exactly what the chain computes. */
async function check(v: Variant): Promise<void> {
  const res = await fetch(v.url, { method: 'POST', body: PAYLOAD, headers: { 'content-type': 'application/octet-stream' } });
  const body = await res.text();
  if (res.status !== 200 || body !== expected()) {
    throw new Error(`${v.name} answered ${res.status} ${JSON.stringify(body.slice(0, 200))}, expected ${JSON.stringify(expected())}`);
  }
}

async function point(v: Variant, c: number, round: number, seq: number, seconds: number): Promise<HttpPoint> {
  const pids = v.pids();
  const cpu0 = pids.map(cpuSeconds);
  const t0 = performance.now();
  const w = await runWrk(v.url, c, seconds);
  const secs = (performance.now() - t0) / 1000;
  const each = pids.map((p, i) => cpuSeconds(p) - cpu0[i]!);
  const cpu = each.reduce((a, b) => a + b, 0);
  const top = each.indexOf(Math.max(...each));
  return {
    name: v.name,
    concurrency: c,
    round,
    seq,
    rps: w.rps,
    p50_us: w.p50_us,
    p99_us: w.p99_us,
    p999_us: w.p999_us,
    cpu_us_per_req: w.requests ? (cpu * 1e6) / w.requests : Number.NaN,
    requests: w.requests,
    errors: w.non2xx + w.errors,
    busiest: describeProcess(pids[top]!),
    busiest_cpu_pct: (each[top]! / secs) * 100,
    wrk_cpu_pct: (w.cpu_s / secs) * 100,
  };
}

function mostOften(xs: string[]): string {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '?';
}

/** `xs` rotated by `k`: every round and concurrency starts with another variant. */
const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

function rows(points: HttpPoint[], idle: IdleRow[]): HttpRow[] {
  const out: HttpRow[] = [];
  for (const name of VARIANTS) {
    for (const c of CONCURRENCY) {
      const ps = points.filter((p) => p.name === name && p.concurrency === c);
      if (!ps.length) continue;
      const m = (f: (p: HttpPoint) => number) => median(ps.map(f));
      out.push({
        name,
        concurrency: c,
        rps: m((p) => p.rps),
        p50_us: m((p) => p.p50_us),
        p99_us: m((p) => p.p99_us),
        p999_us: m((p) => p.p999_us),
        cpu_us_per_req: m((p) => p.cpu_us_per_req),
        idle_cpu_pct: idle.find((i) => i.name === name)?.cpu_pct ?? Number.NaN,
        requests: ps.reduce((a, p) => a + p.requests, 0),
        errors: ps.reduce((a, p) => a + p.errors, 0),
        rounds: ps.length,
        busiest: mostOften(ps.map((p) => p.busiest)),
        busiest_cpu_pct: m((p) => p.busiest_cpu_pct),
        wrk_cpu_pct: m((p) => p.wrk_cpu_pct),
      });
    }
  }
  return out;
}

/**
 * The reference's points of the same round and concurrency, as one (geometric means): tcp ran
 * first and last, so this is what tcp did around the point.
 */
function around(points: HttpPoint[], reference: VariantName, c: number, round: number): { rps: number; p50_us: number; p99_us: number; cpu_us_per_req: number } | null {
  const ts = points.filter((q) => q.name === reference && q.concurrency === c && q.round === round);
  if (!ts.length) return null;
  const g = (f: (p: HttpPoint) => number) => Math.exp(ts.reduce((a, p) => a + Math.log(f(p)), 0) / ts.length);
  return { rps: g((p) => p.rps), p50_us: g((p) => p.p50_us), p99_us: g((p) => p.p99_us), cpu_us_per_req: g((p) => p.cpu_us_per_req) };
}

/** Every variant of `names` (default: all) against `reference`, paired by round. */
function pairedVs(points: HttpPoint[], reference: VariantName, names: readonly VariantName[] = VARIANTS): PairedRatioVs[] {
  const out: PairedRatioVs[] = [];
  for (const name of names) {
    if (name === reference) continue;
    for (const c of CONCURRENCY) {
      const pairs: [HttpPoint, NonNullable<ReturnType<typeof around>>][] = [];
      for (const p of points) {
        if (p.name !== name || p.concurrency !== c) continue;
        const t = around(points, reference, c, p.round);
        if (t) pairs.push([p, t]);
      }
      if (!pairs.length) continue;
      out.push({
        name,
        vs: reference,
        concurrency: c,
        rps: spread(pairs.map(([a, b]) => a.rps / b.rps)),
        p99: spread(pairs.map(([a, b]) => a.p99_us / b.p99_us)),
        cpu_per_req: spread(pairs.map(([a, b]) => a.cpu_us_per_req / b.cpu_us_per_req)),
      });
    }
  }
  return out;
}

function loopRow(name: VariantName, r: LoopResult): LoopRow {
  return {
    name,
    rt_per_s: r.rt_per_s,
    p50_us: r.p50_us,
    p99_us: r.p99_us,
    cpu_us_per_rt: r.roundTrips ? ((r.cpu_chain_s + r.cpu_driver_s) * 1e6) / r.roundTrips : Number.NaN,
    cpu_us_per_rt_chain: r.roundTrips ? (r.cpu_chain_s * 1e6) / r.roundTrips : Number.NaN,
    round_trips: r.roundTrips,
    errors: r.errors,
  };
}

const key = (n: VariantName) => n.replace(/-/g, '_');

/** Every variant against its reference (tcp-c for the C ones, tcp for the rest), paired by round. */
function pairedVsRef(points: HttpPoint[]): PairedRatioVs[] {
  return [
    ...pairedVs(
      points,
      REFERENCE,
      VARIANTS.filter((n) => referenceOf(n) === REFERENCE),
    ),
    ...pairedVs(points, C_REFERENCE, C_VARIANTS),
  ].sort((a, b) => VARIANTS.indexOf(a.name) - VARIANTS.indexOf(b.name) || a.concurrency - b.concurrency);
}

/** The C reference's CPU per round trip: the work alone, without transport or driver. */
export const WORK_REFERENCE = 'c-in-process';

function ratiosAndTargets(points: HttpPoint[], vsRef: PairedRatioVs[], vsSidecars: PairedRatioVs[], idle: IdleRow[], hello: HelloIdle[], rounds: LoopRow[][], roundsOneCpu: LoopRow[][], loopRef: { name: string; cpu_us_per_rt_chain: number }[]): { ratios: Record<string, number>; targets: Target[] } {
  const ratios: Record<string, number> = {};
  const targets: Target[] = [];
  const add = (what: string, value: number, target: string, met: (v: number) => boolean) => {
    if (Number.isFinite(value)) targets.push({ what, value, target, met: met(value) });
  };
  for (const r of [...vsRef, ...vsSidecars]) {
    const vs = key(r.vs);
    ratios[`http_c${r.concurrency}_rps_${key(r.name)}_vs_${vs}`] = r.rps.median;
    ratios[`http_c${r.concurrency}_p99_${key(r.name)}_vs_${vs}`] = r.p99.median;
    ratios[`http_c${r.concurrency}_cpu_${key(r.name)}_vs_${vs}`] = r.cpu_per_req.median;
  }
  const vs = (n: VariantName, c: number, ref: VariantName = REFERENCE) => [...vsRef, ...vsSidecars].find((r) => r.name === n && r.concurrency === c && r.vs === ref);
  for (const c of [16, 64]) {
    const r = vs('bpfctl-ts', c);
    if (!r) continue;
    add(`HTTP c=${c}: bpfctl-ts req/s / tcp`, r.rps.median, '>= 1.0', (v) => v >= 1.0);
    add(`HTTP c=${c}: bpfctl-ts CPU per request / tcp`, r.cpu_per_req.median, '<= 1.0', (v) => v <= 1.0);
    add(`HTTP c=${c}: bpfctl-ts p99 / tcp`, r.p99.median, '<= 1.2', (v) => v <= 1.2);
  }
  // The targets against http-sidecar (the Node sidecar, the baseline they were set on); the
  // HAProxy sidecars' ratios are in `ratios` beside them.
  for (const sidecar of SIDECARS) {
    for (const c of [16, 64]) {
      const p50 = spread(
        points.filter((p) => p.name === 'bpfctl-ts' && p.concurrency === c).map((p) => p.p50_us / (around(points, sidecar, c, p.round)?.p50_us ?? Number.NaN)),
      ).median;
      ratios[`http_c${c}_p50_bpfctl_ts_vs_${key(sidecar)}`] = p50;
      if (sidecar !== 'http-sidecar') continue;
      const a = vs('bpfctl-ts', c, sidecar);
      if (a) add(`HTTP c=${c}: bpfctl-ts req/s / http-sidecar`, a.rps.median, '>= 5', (v) => v >= 5);
      add(`HTTP c=${c}: bpfctl-ts p50 / http-sidecar`, p50, '<= 0.2', (v) => v <= 0.2);
    }
  }
  const native = vs('bpfctl-ts-native', 64);
  if (native) {
    add('HTTP c=64: bpfctl-ts-native req/s / tcp', native.rps.median, '>= 1.8', (v) => v >= 1.8);
    add('HTTP c=64: bpfctl-ts-native p99 / tcp', native.p99.median, '<= 1.0', (v) => v <= 1.0);
    const s = vs('bpfctl-ts-native', 64, 'http-sidecar');
    if (s) add('HTTP c=64: bpfctl-ts-native req/s / http-sidecar', s.rps.median, '>= 15', (v) => v >= 15);
  }
  for (const i of idle) if (BPFCTL_VARIANTS.includes(i.name)) add(`idle CPU of the warm ${i.name} chain (% of a core)`, i.cpu_pct, '< 0.5', (v) => v < 0.5);
  // The compiled CLI is what users run. From the sources, tsx's own tooling is resident by
  // construction (its esbuild service, whenever its transform cache was cold for a file): that
  // run is reported beside it, not held to the target.
  for (const h of hello) if (h.mode === 'compiled') add(`idle CPU of bpfctl run examples/hello-chain, ${h.mode} (% of a core, whole tree)`, h.cpu_pct, '< 0.5', (v) => v < 0.5);
  // Descriptor level: per-round pairs, like the HTTP level; bpfctl-ts with tcp, bpfctl-c with tcp-c.
  const pair = (a: VariantName, ref: VariantName, f: (r: LoopRow) => number, of = rounds) =>
    spread(
      of.map((rs) => {
        const x = rs.find((r) => r.name === a);
        const t = rs.find((r) => r.name === ref);
        return x && t ? f(x) / f(t) : Number.NaN;
      }),
    ).median;
  for (const [n, ref] of [
    ['bpfctl-ts', REFERENCE],
    ['bpfctl-c', C_REFERENCE],
    ['tcp-c', REFERENCE],
  ] as const) {
    ratios[`loop_rt_${key(n)}_vs_${key(ref)}`] = pair(n, ref, (r) => r.rt_per_s);
    ratios[`loop_cpu_${key(n)}_vs_${key(ref)}`] = pair(n, ref, (r) => r.cpu_us_per_rt);
    ratios[`loop_cpu_chain_${key(n)}_vs_${key(ref)}`] = pair(n, ref, (r) => r.cpu_us_per_rt_chain);
    ratios[`loop_p50_${key(n)}_vs_${key(ref)}`] = pair(n, ref, (r) => r.p50_us);
    ratios[`loop_rt_${key(n)}_vs_${key(ref)}_one_cpu`] = pair(n, ref, (r) => r.rt_per_s, roundsOneCpu);
    ratios[`loop_cpu_${key(n)}_vs_${key(ref)}_one_cpu`] = pair(n, ref, (r) => r.cpu_us_per_rt, roundsOneCpu);
  }
  // What the transport costs the two C chains: the chain's CPU per round trip less the work's
  // own (the C reference), per round.
  const work = loopRef.find((r) => r.name === WORK_REFERENCE)?.cpu_us_per_rt_chain;
  if (work !== undefined) ratios.loop_cpu_transport_bpfctl_c_vs_tcp_c = pair('bpfctl-c', C_REFERENCE, (r) => r.cpu_us_per_rt_chain - work);
  add('loop: bpfctl-ts rt/s / tcp rt/s (median of paired rounds; unpinned)', ratios.loop_rt_bpfctl_ts_vs_tcp!, '>= 1.3', (v) => v >= 1.3);
  add('loop: bpfctl-ts CPU/rt / tcp CPU/rt (median of paired rounds; unpinned)', ratios.loop_cpu_bpfctl_ts_vs_tcp!, '<= 0.8', (v) => v <= 0.8);
  if (roundsOneCpu.length) {
    add('loop: bpfctl-ts rt/s / tcp rt/s (median of paired rounds; one CPU, both alike)', ratios.loop_rt_bpfctl_ts_vs_tcp_one_cpu!, '>= 1.3', (v) => v >= 1.3);
    add('loop: bpfctl-ts CPU/rt / tcp CPU/rt (median of paired rounds; one CPU, both alike)', ratios.loop_cpu_bpfctl_ts_vs_tcp_one_cpu!, '<= 0.8', (v) => v <= 0.8);
  }
  for (const [k, v] of Object.entries(ratios)) if (!Number.isFinite(v)) delete ratios[k];
  return { ratios, targets };
}

function machine(s: Settings, loads: number[][], seconds: number): Record<string, unknown> {
  let wrk = 'unknown';
  try {
    wrk = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0] ?? wrk;
  } catch (err) {
    // wrk -v exits 1 after printing its version.
    wrk = String((err as { stdout?: string }).stdout ?? '').split('\n')[0] || wrk;
  }
  const one = loads.map((l) => l[0]!);
  return {
    when: new Date().toISOString(),
    commit: benchCommit(here),
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    wrk,
    quick: s.quick,
    rounds: s.rounds,
    focus_rounds: s.focusRounds,
    http_seconds: s.httpSeconds,
    idle_seconds: s.idleSeconds,
    idle_settle_seconds: s.settleMs / 1000,
    loop: s.loop,
    loop_rounds: s.loopRounds,
    payload_bytes: PAYLOAD.length,
    loadavg_start: loads[0],
    loadavg_end: loads[loads.length - 1],
    // The 1-minute load average at every round boundary: how busy the shared machine was.
    loadavg_1m_samples: one,
    bench_seconds: Math.round(seconds),
  };
}

const fmt = (n: number | undefined, d = 0) => (n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');

function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return `${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}\n`;
}

const x = (s: Spread) => `${fmt(s.median, 2)}x (${fmt(s.min, 2)}-${fmt(s.max, 2)})`;

export function print(r: ChainBenchResult): void {
  const out: string[] = [];
  out.push(`HTTP level (wrk -t1, POST of the payload, ${fmt(r.machine.http_seconds as number)} s points; median of each variant's points)`);
  out.push(
    table(
      ['variant', 'conc', 'req/s', 'p50 us', 'p99 us', 'p99.9 us', 'CPU us/req', 'errors', 'points'],
      r.variants.map((v) => [v.name, String(v.concurrency), fmt(v.rps), fmt(v.p50_us), fmt(v.p99_us), fmt(v.p999_us), fmt(v.cpu_us_per_req, 1), String(v.errors), String(v.rounds)]),
    ),
  );
  out.push('Where the CPU went: the busiest process of each variant and wrk itself (median % of a core; 2 cores in all)');
  out.push(
    table(
      ['variant', 'conc', 'busiest process', 'its CPU %', 'wrk CPU %'],
      r.variants.filter((v) => v.concurrency >= 16).map((v) => [v.name, String(v.concurrency), v.busiest, fmt(v.busiest_cpu_pct), fmt(v.wrk_cpu_pct)]),
    ),
  );
  out.push('Against the reference: tcp-c for the C variants, tcp for the others (median of the per-round ratios, range in brackets)');
  out.push(table(['variant', 'vs', 'conc', 'req/s', 'p99', 'CPU/req'], r.vs_ref.map((v) => [v.name, v.vs, String(v.concurrency), x(v.rps), x(v.p99), x(v.cpu_per_req)])));
  out.push('Against the two sidecar chains (Node proxy, HAProxy), c=16 and c=64 (median of the per-round ratios)');
  out.push(
    table(
      ['variant', 'vs', 'conc', 'req/s', 'p99', 'CPU/req'],
      r.vs_sidecars.filter((v) => v.concurrency === 16 || v.concurrency === 64).filter((v) => !SIDECARS.includes(v.name) || v.vs === 'http-sidecar').map((v) => [v.name, v.vs, String(v.concurrency), x(v.rps), x(v.p99), x(v.cpu_per_req)]),
    ),
  );
  out.push('Idle (warm chains after the load, no traffic, all at once)');
  out.push(table(['variant', 'CPU % of a core', 'wakeups/s', 'processes'], r.idle.map((i) => [i.name, fmt(i.cpu_pct, 3), fmt(i.wakeups_per_s, 1), String(i.processes)])));
  for (const h of r.hello_idle) {
    if (h.skipped) {
      out.push(`bpfctl run examples/hello-chain (${h.mode}): skipped: ${h.skipped}\n`);
      continue;
    }
    out.push(`bpfctl run examples/hello-chain (${h.mode}${h.built ? `, dist built ${h.built}` : ''}): ${fmt(h.cpu_pct, 3)}% of a core, ${fmt(h.wakeups_per_s, 1)} wakeups/s`);
    out.push(table(['process', 'pid', 'CPU %', 'wakeups/s'], h.processes.map((p) => [p.what, String(p.pid), fmt(p.cpu_pct, 3), fmt(p.wakeups_per_s, 1)])));
  }
  out.push(`Descriptor level (32 in flight, no HTTP; best of ${r.loop_rounds.length} round${r.loop_rounds.length === 1 ? '' : 's'})`);
  out.push(
    table(
      ['variant', 'rt/s', 'p50 us', 'p99 us', 'CPU us/rt', 'of which chain', 'errors'],
      [...r.loop, ...r.loop_reference.map((l) => ({ ...l, name: `(${l.name}, reference)` }))].map((l) => [l.name, fmt(l.rt_per_s), fmt(l.p50_us), fmt(l.p99_us), fmt(l.cpu_us_per_rt, 2), fmt(l.cpu_us_per_rt_chain, 2), String(l.errors)]),
    ),
  );
  for (const [layout, of] of [
    ['unpinned', r.loop_rounds],
    ['every process on CPU 0', r.loop_rounds_one_cpu],
  ] as const) {
    if (!of.length) continue;
    const pairs = (a: VariantName, b: VariantName, f: (l: LoopRow) => number) =>
      of.map((rs) => {
        const p = rs.find((l) => l.name === a);
        const q = rs.find((l) => l.name === b);
        return p && q ? f(p) / f(q) : Number.NaN;
      });
    const rt = [pairs('bpfctl-ts', 'tcp', (l) => l.rt_per_s), pairs('bpfctl-c', 'tcp-c', (l) => l.rt_per_s)];
    const cpu = [pairs('bpfctl-ts', 'tcp', (l) => l.cpu_us_per_rt), pairs('bpfctl-c', 'tcp-c', (l) => l.cpu_us_per_rt)];
    out.push(`Descriptor level, round by round (${layout}): bpfctl-ts / tcp and bpfctl-c / tcp-c (rt/s; CPU per round trip)`);
    out.push(
      table(
        ['round', 'bpfctl-ts/tcp rt/s', 'CPU/rt', 'bpfctl-c/tcp-c rt/s', 'CPU/rt'],
        of.map((_, i) => [String(i + 1), fmt(rt[0]![i], 2), fmt(cpu[0]![i], 2), fmt(rt[1]![i], 2), fmt(cpu[1]![i], 2)]).concat([['median', fmt(median(rt[0]!), 2), fmt(median(cpu[0]!), 2), fmt(median(rt[1]!), 2), fmt(median(cpu[1]!), 2)]]),
      ),
    );
  }
  out.push('Targets');
  out.push(table(['', 'value', 'target', 'met'], r.targets.map((t) => [t.what, fmt(t.value, t.value < 10 ? 2 : 1), t.target, t.met ? 'yes' : 'NO'])));
  const loads = (r.machine.loadavg_1m_samples as number[] | undefined) ?? [];
  if (loads.length) out.push(`1-minute load average during the run: ${fmt(Math.min(...loads), 2)}-${fmt(Math.max(...loads), 2)} (2 cores)\n`);
  for (const f of r.failures) out.push(`FAILED ${f.name}: ${f.error}\n`);
  process.stdout.write(`${out.join('\n')}`);
}

export async function run(opts: { quick?: boolean; variants?: readonly VariantName[] } = {}): Promise<ChainBenchResult> {
  const s = settings(opts.quick ?? process.argv.includes('--quick'));
  const fromEnv = process.env.CHAIN_VARIANTS?.split(',').filter((n): n is VariantName => (VARIANTS as readonly string[]).includes(n));
  const asked = opts.variants ?? (fromEnv?.length ? fromEnv : VARIANTS);
  // tcp is the reference of the ratios; tcp-c that of the C variants.
  const wanted = VARIANTS.filter((n) => n === REFERENCE || asked.includes(n) || (n === C_REFERENCE && asked.some((a) => C_VARIANTS.includes(a))));
  const t0 = Date.now();
  const loads: number[][] = [os.loadavg()];
  let interrupted = false;
  const up: Variant[] = [];
  const hellos: HelloRun[] = [];

  // Ctrl-C / kill: SIGTERM to every process started (a bpfctl host unloads its policy, even
  // mid-start), then leave. A second signal, or 'exit' with children still around, kills what
  // is left outright.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      killAllSync();
      process.exit(130);
    }
    interrupted = true;
    log(`${sig}: stopping every variant and leaving`);
    void stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllSync);

  const points: HttpPoint[] = [];
  const idle: IdleRow[] = [];
  const helloIdle: HelloIdle[] = [];
  const loop: LoopRow[] = [];
  const rounds: LoopRow[][] = [];
  const roundsOneCpu: LoopRow[][] = [];
  const loopRef: (Omit<LoopRow, 'name'> & { name: string })[] = [];
  const failures: { name: string; error: string }[] = [];
  const fail = (name: string, err: unknown) => {
    failures.push({ name, error: err instanceof Error ? err.message : String(err) });
    log(`${name} failed: ${err instanceof Error ? err.message : String(err)}`);
  };
  try {
    // Every variant up before anything is measured (starting one costs CPU), each checked once.
    for (const name of wanted) {
      if (interrupted) break;
      log(`starting ${name}`);
      let v: Variant | null = null;
      try {
        v = await startVariant(name);
        await check(v);
        up.push(v);
      } catch (err) {
        if (interrupted) break;
        fail(name, err);
        await v?.stop();
      }
    }
    const http = LOOP_ONLY ? [] : up;
    // JIT and connection pools warm before anything counts.
    for (const v of http) {
      if (interrupted) break;
      await runWrk(v.url, 64, s.warmupSeconds);
    }
    const ref = http.find((v) => v.name === REFERENCE);
    const others = http.filter((v) => v !== ref);
    for (let round = 0; round < s.rounds && !interrupted; round++) {
      for (const [ci, c] of CONCURRENCY.entries()) {
        const order = ref ? [ref, ...rotate(others, round * CONCURRENCY.length + ci), ref] : rotate(others, round * CONCURRENCY.length + ci);
        for (const [seq, v] of order.entries()) {
          if (interrupted) break;
          try {
            const p = await point(v, c, round, seq, s.httpSeconds);
            points.push(p);
            log(`round ${round + 1} ${v.name} c=${c}: ${p.rps.toFixed(0)} req/s, p50 ${p.p50_us} us, p99 ${p.p99_us} us, ${p.cpu_us_per_req.toFixed(1)} us CPU/req`);
          } catch (err) {
            if (!interrupted) fail(`${v.name} c=${c}`, err);
          }
        }
      }
      loads.push(os.loadavg());
    }
    // The comparison the Node gateway's targets are about, bpfctl-ts against tcp at 16 and 64
    // connections, gets more pairs: groups of four points, ABBA and BAAB in turn, each group a
    // round of its own (its bpfctl-ts points against its two tcp points). So does bpfctl-c
    // against tcp-c, the same gateway and functions over the other transport, in rounds after
    // those (so that no pair crosses from one kind of group to the other).
    const focus: [Variant | undefined, Variant | undefined, number][] = [
      [http.find((v) => v.name === 'bpfctl-ts'), ref, s.rounds],
      [http.find((v) => v.name === 'bpfctl-c'), http.find((v) => v.name === C_REFERENCE), s.rounds + s.focusRounds],
    ];
    for (const [a, b, first] of focus) {
      for (let g = 0; g < s.focusRounds && a && b && !interrupted; g++) {
        for (const c of [16, 64]) {
          const order = g % 2 ? [b, a, a, b] : [a, b, b, a];
          for (const [seq, v] of order.entries()) {
            if (interrupted) break;
            try {
              const p = await point(v, c, first + g, seq, s.httpSeconds);
              points.push(p);
              log(`pair group ${g + 1} ${v.name} c=${c}: ${p.rps.toFixed(0)} req/s, p99 ${p.p99_us} us, ${p.cpu_us_per_req.toFixed(1)} us CPU/req`);
            } catch (err) {
              if (!interrupted) fail(`${v.name} c=${c}`, err);
            }
          }
        }
        loads.push(os.loadavg());
      }
    }
    // Idle: the warm chains, all at once, once the load has settled; and two fresh bpfctl runs
    // of examples/hello-chain, from 10 s after their start. V8's memory reducer runs a few
    // garbage collections in the seconds after allocation stops (10-70 ms of CPU per process,
    // 2-17 s after the load); the settle time lets most of that pass. A chain that polled, or
    // ran a timer, shows in the window whatever the settle time.
    if (!LOOP_ONLY && !interrupted) {
      for (const mode of ['compiled', 'sources'] as const) hellos.push(startHello(mode));
      for (const h of hellos) {
        try {
          await h.ready;
        } catch (err) {
          fail(`bpfctl run examples/hello-chain (${h.mode})`, err);
        }
      }
      await sleep(s.settleMs);
      const marks = http.map((v) => {
        const pids = v.pids();
        return { v, pids, cpu: totalCpu(pids), wake: pids.reduce((a, p) => a + wakeups(p), 0) };
      });
      for (const h of hellos) h.mark();
      const w0 = performance.now();
      await sleep(s.idleSeconds * 1000);
      const secs = (performance.now() - w0) / 1000;
      for (const m of marks) {
        const cpu = totalCpu(m.pids) - m.cpu;
        const wake = m.pids.reduce((a, p) => a + wakeups(p), 0) - m.wake;
        idle.push({ name: m.v.name, cpu_pct: (cpu / secs) * 100, wakeups_per_s: wake / secs, processes: m.pids.length });
        log(`${m.v.name} idle: ${((cpu / secs) * 100).toFixed(3)}% of a core, ${(wake / secs).toFixed(1)} wakeups/s`);
      }
      for (const h of hellos.splice(0)) {
        const r = await h.finish();
        helloIdle.push(r);
        log(`bpfctl run examples/hello-chain (${r.mode}) idle: ${r.skipped ?? `${r.cpu_pct.toFixed(3)}% of a core, ${r.wakeups_per_s.toFixed(1)} wakeups/s`}`);
      }
    }
    // Descriptor level: rounds alternating between the variants, each variant's best round
    // kept (and every round, for the paired ratios). Each round twice: where the scheduler puts
    // the processes, and with all of them (driver included) on CPU 0, the same layout for every
    // variant: on this VM a wakeup across CPUs costs ~10x one on the same CPU, and which
    // processes happen to share a CPU moves a round's ratio more than the transport does.
    const loopers = up.filter((v) => v.loop && LOOP_VARIANTS.includes(v.name));
    for (let round = 0; round < s.loopRounds && !interrupted; round++) {
      for (const [layout, into, cpus] of [
        ['unpinned', rounds, undefined],
        ['one CPU', roundsOneCpu, ONE_CPU],
      ] as const) {
        const these: LoopRow[] = [];
        for (const v of rotate(loopers, round)) {
          if (interrupted) break;
          try {
            const r = loopRow(v.name, await v.loop!({ ...s.loop, cpus }));
            these.push(r);
            log(`${v.name} loop round ${round + 1} (${layout}): ${r.rt_per_s.toFixed(0)} rt/s, p50 ${r.p50_us.toFixed(0)} us, ${r.cpu_us_per_rt.toFixed(2)} us CPU/rt`);
          } catch (err) {
            if (!interrupted) fail(`${v.name} loop`, err);
          }
        }
        into.push(these);
      }
    }
    // For context, not a target: the TCP chain writing each frame on its own, as a Node program
    // does without explicit batching. The tcp variant batches like the bpfctl runtime does.
    const tcp = up.find((v) => v.name === 'tcp');
    if (tcp && !interrupted && !LOOP_ONLY) {
      try {
        const r = loopRow('tcp', await tcp.loop!(s.loop, true));
        loopRef.push({ ...r, name: 'tcp-unbatched' });
        log(`tcp-unbatched loop (reference): ${r.rt_per_s.toFixed(0)} rt/s, ${r.cpu_us_per_rt.toFixed(2)} us CPU/rt`);
      } catch (err) {
        if (!interrupted) fail('tcp-unbatched loop', err);
      }
    }
    // The C reference: the work of the C chains without any transport, what their CPU per round
    // trip cannot go below.
    if (loopers.some((v) => C_VARIANTS.includes(v.name) || v.name === C_REFERENCE) && !interrupted) {
      try {
        const r = loopRow('tcp-c', await runCInproc(s.loop));
        loopRef.push({ ...r, name: WORK_REFERENCE });
        log(`${WORK_REFERENCE} (reference): ${r.rt_per_s.toFixed(0)} rt/s, ${r.cpu_us_per_rt.toFixed(3)} us CPU/rt`);
      } catch (err) {
        if (!interrupted) fail(`${WORK_REFERENCE} reference`, err);
      }
    }
    for (const v of loopers) {
      const best = rounds
        .flat()
        .filter((r) => r.name === v.name)
        .sort((a, b) => b.rt_per_s - a.rt_per_s)[0];
      if (best) loop.push(best);
    }
  } finally {
    if (!interrupted) {
      for (const h of hellos) await h.finish().catch(() => {});
      for (const v of up) await v.stop();
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', killAllSync);
  }
  loads.push(os.loadavg());
  const vsRef = pairedVsRef(points);
  const vsSidecars = SIDECARS.flatMap((sc) => pairedVs(points, sc));
  const { ratios, targets } = ratiosAndTargets(points, vsRef, vsSidecars, idle, helloIdle, rounds, roundsOneCpu, loopRef);
  const unb = loopRef.find((r) => r.name === 'tcp-unbatched');
  const la = loop.find((r) => r.name === 'bpfctl-ts');
  if (unb && la) {
    ratios.loop_rt_bpfctl_ts_vs_tcp_unbatched = la.rt_per_s / unb.rt_per_s;
    ratios.loop_cpu_bpfctl_ts_vs_tcp_unbatched = la.cpu_us_per_rt / unb.cpu_us_per_rt;
  }
  const result: ChainBenchResult = {
    variants: rows(points, idle),
    http_rounds: points,
    vs_ref: vsRef,
    vs_sidecars: vsSidecars,
    idle,
    hello_idle: helloIdle,
    loop,
    loop_rounds: rounds,
    loop_rounds_one_cpu: roundsOneCpu,
    loop_reference: loopRef,
    ratios,
    targets,
    failures,
    machine: machine(s, loads, (Date.now() - t0) / 1000),
  };
  // An interrupted run is partial: it must not replace the last complete results (the signal
  // handler exits once everything is stopped). Loop-only runs print and write nothing.
  if (interrupted) return result;
  if (!LOOP_ONLY) {
    // A quick run is a smoke test: it never replaces the recorded results.
    const file = s.quick ? join(here, '../.cache/bench/chain-quick.json') : join(here, 'results/chain.json');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${file}`);
  }
  print(result);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await run();
  process.exitCode = r.failures.length ? 1 : 0;
}
