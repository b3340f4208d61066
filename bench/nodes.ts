/**
 * Nodes benchmark (issue 14): the chain bench's three-function chain (upper -> reverse -> stamp of
 * a 128-byte payload, bench/chain/work.ts) on one node and spread over three, side by side in one
 * run. Three network namespaces on one bridge are the nodes a, b, c, each running `bpfctl agent
 * run` of bench/nodes/policy (bench/nodes/cluster.ts); the client (wrk) runs on a.
 *   bpfctl-1node        the chain's functions all on a (route /local of a's gateway)
 *   bpfctl-3node        upper on a, reverse on b, stamp on c (route /spread: a -> b -> c -> a)
 *   http-sidecar-3node  the chain bench's http-sidecar chain spread the same way (bench/nodes/http-spread.ts)
 * The cost of a crossing, at c=1 (p50 latency) and c=16 (CPU per request of every process):
 *   cross-node hop  (/detour - /local) / 2: the same chain with reverse on b, two crossings
 *   plain TCP hop   (/detour-tcp - /local) / 2: reverse's work on b reached from a's function over
 *                   a plain TCP connection (bench/nodes/policy/functions/reverse-tcp.ts)
 *   and as a check /spread - /a-b-b: one hop (b -> c) cross-node against the same hop local.
 * The c=1 latency is measured twice: where the scheduler puts the processes, and with every
 * process of the setup, wrk included, on CPU 0 (the same layout for both hops). A request at a
 * time is a sequence of wakeups, and on this VM one across CPUs (the other vCPU halted) costs
 * several times one on the same CPU: which hop's processes happened to land apart moved a
 * round's ratio more than the hops themselves did.
 *
 * Rounds: in each, at c=16, c=64 and c=1, the targets of that concurrency run one after the other
 * in an order that rotates from round to round; ratios and hop costs pair the points of a round.
 * Targets: bpfctl-3node >= 5x http-sidecar-3node's req/s; a cross-node hop <= 1.2x a plain TCP hop.
 *
 * Run: npm run bench -- nodes [--quick]   (root; ~4 minutes; writes bench/results/nodes.json;
 * --quick, ~1 minute, one round of 1 s points, writes .cache/bench/nodes-quick.json instead)
 * NODES_ROUNDS=n (default 5), NODES_SECONDS=n (seconds per point, default 2); NODES_CPU_PROF=1:
 * V8 CPU profiles of the three agents (supervisor + node-link) over the measured rounds, written to
 * .cache/bench/nodes-cpu-prof/ (the profiler's cost is in those rounds' numbers: not for a record).
 * Every agent, process, namespace, pin, pool and cgroup is removed, on errors and Ctrl-C too; a
 * run killed outright is cleaned up by the next one.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_CPUS, killAllSync, pin, stopAll } from './chain/proc.ts';
import { expected, PAYLOAD } from './chain/work.ts';
import { runWrk } from './chain/wrk.ts';
import { benchCommit } from './commit.ts';
import { type Cluster, Rig, removeStale, startCluster } from './nodes/cluster.ts';
import { type HttpSpread, startHttpSpread } from './nodes/http-spread.ts';
import { postFrom } from './nodes/ns.ts';
import { measure, type Point, type Target } from './nodes/point.ts';
import { print } from './nodes/print.ts';
import { type HopCost, hopCost, oneHop, paired, type Row, rows, type Spread, type TargetRow } from './nodes/stats.ts';

const here = dirname(fileURLToPath(import.meta.url));
const VARIANTS = ['bpfctl-1node', 'bpfctl-3node', 'http-sidecar-3node'] as const;
const HOP_ROUTES = ['bpfctl-1node', 'detour', 'detour-tcp', 'bpfctl-3node', 'a-b-b'] as const;
/** Route of a's gateway for each bpfctl target. */
const ROUTE: Record<string, string> = { 'bpfctl-1node': '/local', 'bpfctl-3node': '/spread', detour: '/detour', 'detour-tcp': '/detour-tcp', 'a-b-b': '/a-b-b' };
/** The one-CPU layout (taskset list). */
const ONE_CPU = '0';
/** What runs at each concurrency, in the order of round 0 (it rotates). */
const BLOCKS: { c: number; names: readonly string[]; cpus?: string }[] = [
  { c: 16, names: ['bpfctl-1node', 'bpfctl-3node', 'http-sidecar-3node', 'detour', 'detour-tcp'] },
  { c: 64, names: ['bpfctl-1node', 'bpfctl-3node', 'http-sidecar-3node'] },
  { c: 1, names: ['bpfctl-1node', 'detour', 'detour-tcp', 'bpfctl-3node', 'a-b-b'] },
  { c: 1, names: ['bpfctl-1node', 'detour', 'detour-tcp'], cpus: ONE_CPU },
];
const HOP_NAMES = { base: 'bpfctl-1node', cross: 'detour', tcp: 'detour-tcp' };


export interface PairedRow {
  a: string;
  b: string;
  concurrency: number;
  rps: Spread;
  p50: Spread;
  cpu_per_req: Spread;
}

export interface NodesBenchResult {
  /** bpfctl-1node, bpfctl-3node, http-sidecar-3node at c=16 and c=64 (medians of the rounds). */
  variants: Row[];
  /** Every route of a's gateway the hop costs use, at c=1 and c=16. */
  hop_routes: Row[];
  paired: PairedRow[];
  hops: HopCost[];
  ratios: Record<string, number>;
  targets: TargetRow[];
  points: Point[];
  failures: { name: string; error: string }[];
  machine: Record<string, unknown>;
}

interface Settings {
  quick: boolean;
  rounds: number;
  seconds: number;
  warmupSeconds: number;
}

function settings(quick: boolean): Settings {
  const s: Settings = quick ? { quick, rounds: 1, seconds: 1, warmupSeconds: 1 } : { quick, rounds: 5, seconds: 2, warmupSeconds: 2 };
  const env = (name: string) => {
    const n = Number(process.env[name]);
    return Number.isInteger(n) && n > 0 ? n : null;
  };
  s.rounds = env('NODES_ROUNDS') ?? s.rounds;
  s.seconds = env('NODES_SECONDS') ?? s.seconds;
  return s;
}

const log = (s: string) => process.stderr.write(`[nodes bench] ${s}\n`);
const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

function pairedRow(points: Point[], a: string, b: string, c: number): PairedRow {
  return { a, b, concurrency: c, rps: paired(points, a, b, c, (p) => p.rps), p50: paired(points, a, b, c, (p) => p.p50_us), cpu_per_req: paired(points, a, b, c, (p) => p.cpu_us_per_req) };
}

function results(all: Point[]): Pick<NodesBenchResult, 'variants' | 'hop_routes' | 'paired' | 'hops' | 'ratios' | 'targets'> {
  const points = all.filter((p) => !p.cpus);
  const oneCpu = all.filter((p) => p.cpus === ONE_CPU);
  const pairs: PairedRow[] = [];
  for (const c of [16, 64]) pairs.push(pairedRow(points, 'bpfctl-3node', 'http-sidecar-3node', c));
  for (const c of [1, 16, 64]) pairs.push(pairedRow(points, 'bpfctl-3node', 'bpfctl-1node', c));
  const hops = [
    hopCost(points, 'latency, p50 at c=1 (us)', 1, (p) => p.p50_us, HOP_NAMES),
    hopCost(points, 'CPU per request at c=16 (us)', 16, (p) => p.cpu_us_per_req, HOP_NAMES),
    ...(oneCpu.length ? [hopCost(oneCpu, 'latency, p50 at c=1, every process on CPU 0 (us)', 1, (p) => p.p50_us, HOP_NAMES)] : []),
  ];
  const ratios: Record<string, number> = {};
  const k = (s: string) => s.replace(/-/g, '_');
  for (const p of pairs) {
    ratios[`c${p.concurrency}_rps_${k(p.a)}_vs_${k(p.b)}`] = p.rps.median;
    ratios[`c${p.concurrency}_p50_${k(p.a)}_vs_${k(p.b)}`] = p.p50.median;
    ratios[`c${p.concurrency}_cpu_${k(p.a)}_vs_${k(p.b)}`] = p.cpu_per_req.median;
  }
  ratios.hop_latency_us_cross_node = hops[0]!.cross_node;
  ratios.hop_latency_us_plain_tcp = hops[0]!.plain_tcp;
  ratios.hop_latency_cross_node_vs_plain_tcp = hops[0]!.ratio;
  ratios.hop_cpu_us_cross_node = hops[1]!.cross_node;
  ratios.hop_cpu_us_plain_tcp = hops[1]!.plain_tcp;
  ratios.hop_cpu_cross_node_vs_plain_tcp = hops[1]!.ratio;
  if (hops[2]) {
    ratios.hop_latency_us_cross_node_one_cpu = hops[2].cross_node;
    ratios.hop_latency_us_plain_tcp_one_cpu = hops[2].plain_tcp;
    ratios.hop_latency_cross_node_vs_plain_tcp_one_cpu = hops[2].ratio;
  }
  ratios.one_hop_p50_us_spread_minus_a_b_b = oneHop(points, 1, (p) => p.p50_us, 'bpfctl-3node', 'a-b-b');
  for (const [key, v] of Object.entries(ratios)) if (!Number.isFinite(v)) delete ratios[key];
  const targets: TargetRow[] = [];
  const add = (what: string, value: number, target: string, met: (v: number) => boolean) => {
    if (Number.isFinite(value)) targets.push({ what, value, target, met: met(value) });
  };
  for (const p of pairs.filter((q) => q.b === 'http-sidecar-3node')) add(`c=${p.concurrency}: bpfctl-3node req/s / http-sidecar-3node req/s`, p.rps.median, '>= 5', (v) => v >= 5);
  add('cross-node hop / plain TCP hop, latency (p50, c=1)', hops[0]!.ratio, '<= 1.2', (v) => v <= 1.2);
  add('cross-node hop / plain TCP hop, CPU per request (c=16)', hops[1]!.ratio, '<= 1.2', (v) => v <= 1.2);
  if (hops[2]) add('cross-node hop / plain TCP hop, latency (p50, c=1, every process on CPU 0)', hops[2].ratio, '<= 1.2', (v) => v <= 1.2);
  return {
    variants: rows(points, VARIANTS, [16, 64]),
    hop_routes: rows(points, HOP_ROUTES, [1, 16]),
    paired: pairs,
    hops,
    ratios,
    targets,
  };
}

function machine(s: Settings, loads: number[][], seconds: number): Record<string, unknown> {
  let wrk = 'unknown';
  try {
    wrk = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0] ?? wrk;
  } catch (err) {
    // wrk -v exits 1 after printing its version.
    wrk = String((err as { stdout?: string }).stdout ?? '').split('\n')[0] || wrk;
  }
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
    point_seconds: s.seconds,
    warmup_seconds: s.warmupSeconds,
    payload_bytes: PAYLOAD.length,
    loadavg_start: loads[0],
    loadavg_end: loads[loads.length - 1],
    loadavg_1m_samples: loads.map((l) => l[0]!),
    bench_seconds: Math.round(seconds),
  };
}

/** One POST from node a; the target must answer exactly what the chain computes. */
async function check(t: Target): Promise<void> {
  const want = expected();
  let last = '';
  // The node-link lists a peer's functions a moment after the peers are up: a few tries.
  for (let i = 0; i < 20; i++) {
    const r = await postFrom(t.netns, t.url, PAYLOAD);
    if (r.status === 200 && r.body === want) return;
    last = `${r.status} ${JSON.stringify(r.body.slice(0, 200))}`;
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error(`${t.name} (${t.url}) answered ${last}, expected ${JSON.stringify(want)}`);
}

export async function run(opts: { quick?: boolean } = {}): Promise<NodesBenchResult> {
  const s = settings(opts.quick ?? process.argv.includes('--quick'));
  const t0 = Date.now();
  const loads: number[][] = [os.loadavg()];
  const points: Point[] = [];
  const failures: { name: string; error: string }[] = [];
  const fail = (name: string, err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    failures.push({ name, error: msg });
    log(`${name} failed: ${msg}`);
  };
  removeStale(log);
  let interrupted = false;
  let rig: Rig | null = null;
  let cluster: Cluster | null = null;
  let http: HttpSpread | null = null;
  const destroyRig = () => {
    try {
      rig?.destroy();
    } catch (err) {
      log(`cleanup: ${(err as Error).message}`);
    }
    rig = null;
  };
  // Ctrl-C / kill: SIGTERM to every process started (each agent tears its node down), then the
  // namespaces and directories. A second signal, or 'exit' with children left, kills outright.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      killAllSync();
      destroyRig();
      process.exit(130);
    }
    interrupted = true;
    log(`${sig}: stopping the agents and the baseline, removing the namespaces, leaving`);
    void stopAll(20_000).finally(() => {
      destroyRig();
      process.exit(130);
    });
  };
  const onExit = () => {
    killAllSync();
    destroyRig();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  try {
    rig = new Rig();
    const a = rig.node('a');
    log(`nodes ${rig.nodes.map((n) => `${n.name}=${n.ns} ${n.ip}`).join(', ')}`);
    cluster = await startCluster(rig, log);
    log('starting http-sidecar-3node');
    http = await startHttpSpread(rig.nodes);
    const c = cluster;
    const h = http;
    const targets = new Map<string, Target>();
    for (const [name, route] of Object.entries(ROUTE)) targets.set(name, { name, url: c.url(route), netns: a.ns, procs: () => c.procs() });
    targets.set('http-sidecar-3node', { name: 'http-sidecar-3node', url: h.url, netns: a.ns, procs: () => h.procs() });
    for (const t of targets.values()) {
      if (interrupted) break;
      await check(t);
    }
    // JIT, connections and the node-links' batching warm before anything counts.
    for (const t of targets.values()) {
      if (interrupted) break;
      await runWrk(t.url, 64, s.warmupSeconds, t.netns);
    }
    const profiling = process.env.NODES_CPU_PROF === '1';
    if (profiling) c.startCpuProfiles();
    for (let round = 0; round < s.rounds && !interrupted; round++) {
      for (const [bi, b] of BLOCKS.entries()) {
        // The bench itself too: the wrk it starts inherits its CPUs.
        const setup = () => [process.pid, ...c.procs().map((p) => p.pid), ...h.procs().map((p) => p.pid)];
        if (b.cpus) pin(setup(), b.cpus);
        for (const [seq, name] of rotate(b.names, round + bi).entries()) {
          if (interrupted) break;
          try {
            const p = await measure(targets.get(name)!, b.c, s.seconds, round, seq, b.cpus);
            // Interrupted during the point: its processes were stopping under it.
            if (interrupted) break;
            points.push(p);
            log(`round ${round + 1} ${name} c=${b.c}: ${p.rps.toFixed(0)} req/s, p50 ${p.p50_us} us, p99 ${p.p99_us} us, ${p.cpu_us_per_req.toFixed(1)} us CPU/req, others ${p.others_cores.toFixed(2)} cores${p.errors ? `, ${p.errors} errors` : ''}`);
          } catch (err) {
            if (!interrupted) fail(`${name} c=${b.c}`, err);
          }
        }
        if (b.cpus) pin(setup(), ALL_CPUS);
      }
      loads.push(os.loadavg());
    }
    if (profiling && !interrupted) log(`CPU profiles of the agents: ${(await c.stopCpuProfiles()).join(' ')}`);
  } catch (err) {
    if (!interrupted) fail('setup', err);
  } finally {
    if (!interrupted) {
      await http?.stop();
      await cluster?.stop();
      destroyRig();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('exit', onExit);
    }
  }
  loads.push(os.loadavg());
  const result: NodesBenchResult = { ...results(points), points, failures, machine: machine(s, loads, (Date.now() - t0) / 1000) };
  // An interrupted run is partial and writes nothing (the signal handler exits once all is gone).
  if (interrupted) return result;
  // A quick run is a smoke test and a profiled one pays for the profiler: neither replaces the
  // recorded results; nor does a failed setup.
  if (points.length) {
    const profiled = process.env.NODES_CPU_PROF === '1';
    const file = s.quick || profiled ? join(here, `../.cache/bench/nodes-${profiled ? 'profiled' : 'quick'}.json`) : join(here, 'results/nodes.json');
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
