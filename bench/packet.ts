/**
 * Packet benchmark (issue 11): one veth topology, sender ns -> veth -> DUT ns -> veth -> receiver
 * ns (bench/packet/topo.ts), and six DUTs between the two veths, side by side in one run
 * (bench/packet/duts.ts): bpfctl's 2-NF packet chain (source NAT + counter) event-driven, with
 * wakeup coalescing and polling, the kernel's forwarding with the NAT in nftables, dpdk-testpmd on net_af_xdp ports,
 * and an XDP program forwarding with a devmap redirect. For each, at 64 and 1500-byte frames:
 * max packets/s at the sink, p50/p99 latency at a moderate load, CPU per packet at full load and
 * at 10% of the variant's own max, and its idle CPU.
 *
 * Method, and why:
 * - CPUs: the DUT on CPU 0 (its processes started under taskset, testpmd's lcores there, the
 *   NAPI threads of its two veths pinned), everything else on CPU 1 (the generator, the sink's
 *   NAPI thread, this process). On 2 vCPUs that is the only split where the DUT has a core of
 *   its own and its max is its own, not what the generator leaves it; every variant gets the
 *   same one core. PACKET_PIN=0 leaves it all to the scheduler (for comparison).
 * - Generator (packet/gen.c + gen.bpf.c): flat out, BPF_PROG_RUN in live-frames mode: the
 *   kernel transmits the program's XDP_TX frames on the sender's veth through ndo_xdp_xmit, so
 *   the DUT's veth receives xdp_frames as from a NIC's rx ring, at ~100-300 ns of generator CPU
 *   a frame; what the DUT cannot take is dropped at its veth's ring, as a NIC drops at a full
 *   rx ring. Paced: one frame per send(2) on an AF_PACKET socket into a veth pair inside the
 *   sender's namespace whose far end redirects it (XDP) to the sender's veth, so the DUT gets the
 *   same xdp_frames, one every 1/rate seconds as the timer allows (no bursts an event-driven DUT
 *   could batch). gen.bpf.c says why not live frames for paced traffic. 16 UDP flows (source
 *   ports), no UDP checksum, the send time stamped in the payload by the XDP program.
 * - Sink (packet/sink.bpf.c): XDP on the receiver's veth counts, checks the NAT was done,
 *   histograms the one-way latency (both stamps are the kernel's CLOCK_MONOTONIC, shared by the
 *   namespaces) and drops. Its NAPI thread runs at real-time priority: the measuring instrument
 *   must not drop frames behind the flat-out generator on its CPU. Read through bpfctl's loader.
 * - CPU (packet/cpu.ts): every veth gets threaded NAPI, so the kernel's share of forwarding (XDP,
 *   AF_XDP's copy into the UMEM, IP forwarding + nftables, the transmit into the receiver's veth)
 *   runs in kernel threads `napi/<veth>-<id>` charged per thread, not as softirq time on whatever
 *   CPU raised it. A DUT's CPU is the schedstat time of its processes' threads plus the NAPI
 *   threads of its two veths; per packet: divided by the frames received at the sink. Checks:
 *   CPU 0's busy time in /proc/stat (`DUT CPU busy`, 10 ms ticks; other people's work on CPU 0
 *   counts there too), and the whole machine's busy time minus DUT, generator and sink
 *   (`unattributed`: softirqs outside NAPI threads, kworkers, other people). Cost this puts on
 *   every variant alike: a frame that finds a DUT thread asleep pays its wakeup (on this VM a few
 *   us), which dominates CPU per packet at low rates.
 * - Rounds: every variant comes up, runs its points at both frame sizes and goes down, in an
 *   order that rotates from round to round; reported values are the medians of the rounds,
 *   ratios the medians of per-round ratios. Idle: once per variant, its first round, after its
 *   points and a settle, with the generator blocked and no traffic.
 * - Moderate load for latency: MODERATE_PPS frames/s for every variant (at most half its max).
 *
 * Run: npm run bench -- packet [--quick]   (root; writes bench/results/packet.json, ~3 min;
 * --quick, ~1 min, writes .cache/bench/packet-quick.json instead)
 * PACKET_VARIANTS=kernel-nft,testpmd  only these;  PACKET_ROUNDS=n  rounds (default 3, quick 1);
 * PACKET_PIN=0  nothing pinned (the scheduler places everything; for comparison)
 * PACKET_COALESCE_US=n  bpfctl-coalesce's window (default 200)
 * Every namespace, process and XDP program the bench made is removed, on errors and Ctrl-C too.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllSync, stopAll } from './chain/proc.ts';
import { byThreadName, cpuBusy, cpuOf, DUT_CPU, kthreads, LOAD_CPU, machineBusy, PINNED, pin } from './packet/cpu.ts';
import { COALESCE_US, type Dut, removeDpdkRun, Skipped, startDut, VARIANTS, type VariantName } from './packet/duts.ts';
import { FLOWS, type Gen, startGen } from './packet/gen.ts';
import { attachSink, buildGen, quantileUs, type Sink, type SinkSnapshot } from './packet/progs.ts';
import { createTopology, removeStale, setThreaded, type Topology } from './packet/topo.ts';

const here = dirname(fileURLToPath(import.meta.url));
const FRAME_SIZES = [64, 1500] as const;
/** The common "moderate load" of the latency points, frames/s (at most half a variant's max). */
const MODERATE_PPS = 20_000;
/** Other work on the DUT's CPU above which a point is taken again (% of a core; ticks are 1% of a 1 s point). */
const OTHERS_MAX_PCT = 10;
const REFERENCE_KERNEL: VariantName = 'kernel-nft';
const REFERENCE_POLL: VariantName = 'testpmd';

type Kind = 'max' | '10pct' | 'moderate';

/** One measured point. */
export interface Point {
  name: VariantName;
  frame_bytes: number;
  round: number;
  kind: Kind;
  /** Asked of the generator (0: flat out). */
  offered_pps: number;
  sent_pps: number;
  rx_pps: number;
  /** Frames sent that did not reach the sink (fraction). */
  loss: number;
  p50_us: number;
  p99_us: number;
  /** DUT CPU, % of one core, and per frame received. */
  dut_cpu_pct: number;
  cpu_ns_per_pkt: number;
  gen_cpu_pct: number;
  sink_cpu_pct: number;
  /** Machine busy time (/proc/stat) not charged to DUT, generator or sink, per frame received. */
  unattributed_ns_per_pkt: number;
  /** Pinned: how busy the DUT's CPU was (/proc/stat, 10 ms ticks; anyone's work on it counts). */
  dut_cpu_busy_pct: number;
  /** Pinned: the DUT's CPU busy with anything but the DUT (other people's work), % of a core. */
  others_on_dut_cpu_pct: number;
  /** Pinned: how busy the generator's and sink's CPU was: near 100 at max, they were the limit. */
  load_cpu_busy_pct: number;
  /** Tries made of this point (one disturbed by other work on the DUT's CPU is taken again; the least disturbed counts). */
  attempts: number;
  /** The DUT's busiest threads by name (NAPI threads as napi/<veth>), % of a core. */
  threads: { name: string; cpu_pct: number }[];
  /** Frames that reached the sink without the NAT address as source, when the DUT does NAT. */
  not_natted: number;
}

/** A variant at one frame size: medians of its rounds; or why it was skipped. */
export interface VariantRow {
  name: VariantName;
  frame_bytes: number;
  max_pps: number | null;
  p50_us: number | null;
  p99_us: number | null;
  cpu_ns_per_pkt_full: number | null;
  cpu_ns_per_pkt_10pct: number | null;
  idle_cpu_pct: number | null;
  skipped?: string;
  /** Extras: what the generator got out at max, the rate of the latency points, the 10% point's own latency. */
  sent_pps_at_max?: number;
  moderate_pps?: number;
  p50_us_10pct?: number;
  p99_us_10pct?: number;
  dut_cpu_pct_full?: number;
  gen_cpu_pct_full?: number;
  unattributed_ns_per_pkt_full?: number;
  dut_cpu_busy_pct_full?: number;
  /** Frames/s per core of DUT CPU at max (1e9 / CPU ns per frame): what one core of it would do. */
  pps_per_dut_core?: number;
  others_on_dut_cpu_pct_full?: number;
  /** The generator's and sink's CPU at max: near 100, they limited max_pps, not the DUT. */
  load_cpu_busy_pct_full?: number;
  /** The busiest DUT threads in its best max point. */
  threads_full?: { name: string; cpu_pct: number }[];
  rounds?: number;
}

export interface Target {
  what: string;
  frame_bytes: number;
  value: number | null;
  target: string;
  met: boolean | null;
  note?: string;
}

export interface PacketBenchResult {
  variants: VariantRow[];
  points: Point[];
  idle: { name: VariantName; cpu_pct: number; seconds: number }[];
  ratios: Record<string, number>;
  targets: Target[];
  failures: { name: string; error: string }[];
  machine: Record<string, unknown>;
  method: Record<string, string>;
}

interface Settings {
  quick: boolean;
  rounds: number;
  /** Extra tries of a point disturbed by other work on the DUT's CPU. */
  retries: number;
  maxSeconds: number;
  pacedSeconds: number;
  warmSeconds: number;
  idleSeconds: number;
  settleMs: number;
}

function settings(quick: boolean): Settings {
  const s: Settings = quick
    ? { quick, rounds: 1, retries: 1, maxSeconds: 0.5, pacedSeconds: 0.5, warmSeconds: 0.2, idleSeconds: 2, settleMs: 500 }
    : { quick, rounds: 3, retries: 2, maxSeconds: 1, pacedSeconds: 1, warmSeconds: 0.3, idleSeconds: 5, settleMs: 1500 };
  const n = Number(process.env.PACKET_ROUNDS);
  if (Number.isInteger(n) && n > 0) s.rounds = n;
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[packet bench] ${s}\n`);

function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

class Bench {
  constructor(
    readonly t: Topology,
    readonly gen: Gen,
    readonly sink: Sink,
  ) {}

  /**
   * The sink's counters once frames stopped arriving (no new frame for 20 ms, at most 2 s): a
   * DUT with deep rings (a pool of thousands of buffers) still delivers what it queued at max
   * load well after the generator stopped, and that belongs to this point, not the next.
   */
  async drained(): Promise<SinkSnapshot> {
    let last = this.sink.snapshot();
    for (const t0 = performance.now(); performance.now() - t0 < 2000; ) {
      await sleep(20);
      const now = this.sink.snapshot();
      if (now.packets === last.packets) return now;
      last = now;
    }
    return last;
  }

  /** A DUT thread's name for the tables: its veths' NAPI threads as napi:ingress / napi:egress. */
  threadName(comm: string): string {
    const m = /^napi\/(.+)-\d+$/.exec(comm);
    if (m?.[1] === this.t.ifIn) return 'napi:ingress';
    if (m?.[1] === this.t.ifOut) return 'napi:egress';
    return comm;
  }

  sinkThreads(): number[] {
    return kthreads(`napi/${this.t.ifR}-`);
  }

  async point(dut: Dut, frame: number, round: number, kind: Kind, rate: number, seconds: number): Promise<Point> {
    dut.pinThreads();
    const pids = dut.pids();
    const sinkPids = this.sinkThreads();
    const s0 = this.sink.snapshot();
    const c0 = cpuOf(pids);
    const t0 = byThreadName(pids);
    const g0 = cpuOf([this.gen.pid]);
    const k0 = cpuOf(sinkPids);
    const m0 = machineBusy();
    const d0 = cpuBusy(DUT_CPU);
    const l0 = cpuBusy(LOAD_CPU);
    const w0 = performance.now();
    const r = await this.gen.run(rate, seconds);
    const s1 = await this.drained();
    const [c1, g1, k1, m1, d1, l1] = [cpuOf(pids), cpuOf([this.gen.pid]), cpuOf(sinkPids), machineBusy(), cpuBusy(DUT_CPU), cpuBusy(LOAD_CPU)];
    // Rates over the generator's own window. CPU was read over a slightly longer one (the
    // command's round trip, the drain): taken as a rate over that and charged for the
    // generator's window (exact for a steady consumer, a poller included).
    const secs = r.seconds;
    const scale = secs / ((performance.now() - w0) / 1000);
    const dut_s = (c1 - c0) * scale;
    const gen_s = (g1 - g0) * scale;
    const sink_s = (k1 - k0) * scale;
    const busy_s = (m1 - m0) * scale;
    const dutCpuBusy_s = (d1 - d0) * scale;
    const loadCpuBusy_s = (l1 - l0) * scale;
    const rx = s1.packets - s0.packets;
    const threads = [...byThreadName(pids)]
      .map(([name, v]) => ({ name: this.threadName(name), cpu_pct: ((v - (t0.get(name) ?? 0)) * scale * 100) / secs }))
      .filter((x) => x.cpu_pct >= 0.5)
      .sort((a, b) => b.cpu_pct - a.cpu_pct)
      .slice(0, 6)
      .map((x) => ({ name: x.name, cpu_pct: Math.round(x.cpu_pct * 10) / 10 }));
    return {
      name: dut.name,
      frame_bytes: frame,
      round,
      kind,
      offered_pps: rate,
      sent_pps: r.sent / secs,
      rx_pps: rx / secs,
      loss: r.sent ? Math.max(0, 1 - rx / r.sent) : Number.NaN,
      p50_us: quantileUs(s0, s1, 0.5),
      p99_us: quantileUs(s0, s1, 0.99),
      dut_cpu_pct: (dut_s / secs) * 100,
      cpu_ns_per_pkt: rx ? (dut_s * 1e9) / rx : Number.NaN,
      gen_cpu_pct: (gen_s / secs) * 100,
      sink_cpu_pct: (sink_s / secs) * 100,
      unattributed_ns_per_pkt: rx ? (Math.max(0, busy_s - dut_s - gen_s - sink_s) * 1e9) / rx : Number.NaN,
      dut_cpu_busy_pct: PINNED ? (dutCpuBusy_s / secs) * 100 : Number.NaN,
      others_on_dut_cpu_pct: PINNED ? Math.max(0, ((dutCpuBusy_s - dut_s) / secs) * 100) : Number.NaN,
      load_cpu_busy_pct: PINNED ? (loadCpuBusy_s / secs) * 100 : Number.NaN,
      attempts: 1,
      threads,
      not_natted: dut.nat ? rx - (s1.natted - s0.natted) : 0,
    };
  }
}

function describe(p: Point): string {
  const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  return `${p.name} ${p.frame_bytes} B ${p.kind}: sent ${f(p.sent_pps)} rx ${f(p.rx_pps)} pps, p50 ${f(p.p50_us, 1)} p99 ${f(p.p99_us, 1)} us, DUT ${f(p.dut_cpu_pct)}% = ${f(p.cpu_ns_per_pkt)} ns/pkt, gen ${f(p.gen_cpu_pct)}%, sink ${f(p.sink_cpu_pct)}%${p.not_natted ? `, ${p.not_natted} NOT NATTED` : ''}`;
}

function rows(points: Point[], idle: PacketBenchResult['idle'], skipped: Map<VariantName, string>, names: readonly VariantName[]): VariantRow[] {
  const out: VariantRow[] = [];
  for (const name of names) {
    for (const frame of FRAME_SIZES) {
      const why = skipped.get(name);
      const ps = points.filter((p) => p.name === name && p.frame_bytes === frame);
      if (why && !ps.length) {
        out.push({ name, frame_bytes: frame, max_pps: null, p50_us: null, p99_us: null, cpu_ns_per_pkt_full: null, cpu_ns_per_pkt_10pct: null, idle_cpu_pct: null, skipped: why });
        continue;
      }
      if (!ps.length) continue;
      const m = (k: Kind, f: (p: Point) => number) => median(ps.filter((p) => p.kind === k).map(f));
      const nn = (v: number) => (Number.isFinite(v) ? v : null);
      out.push({
        name,
        frame_bytes: frame,
        max_pps: nn(m('max', (p) => p.rx_pps)),
        p50_us: nn(m('moderate', (p) => p.p50_us)),
        p99_us: nn(m('moderate', (p) => p.p99_us)),
        cpu_ns_per_pkt_full: nn(m('max', (p) => p.cpu_ns_per_pkt)),
        cpu_ns_per_pkt_10pct: nn(m('10pct', (p) => p.cpu_ns_per_pkt)),
        idle_cpu_pct: nn(idle.find((i) => i.name === name)?.cpu_pct ?? Number.NaN),
        sent_pps_at_max: m('max', (p) => p.sent_pps),
        moderate_pps: m('moderate', (p) => p.offered_pps),
        p50_us_10pct: m('10pct', (p) => p.p50_us),
        p99_us_10pct: m('10pct', (p) => p.p99_us),
        dut_cpu_pct_full: m('max', (p) => p.dut_cpu_pct),
        gen_cpu_pct_full: m('max', (p) => p.gen_cpu_pct),
        unattributed_ns_per_pkt_full: m('max', (p) => p.unattributed_ns_per_pkt),
        dut_cpu_busy_pct_full: m('max', (p) => p.dut_cpu_busy_pct),
        pps_per_dut_core: m('max', (p) => 1e9 / p.cpu_ns_per_pkt),
        others_on_dut_cpu_pct_full: m('max', (p) => p.others_on_dut_cpu_pct),
        load_cpu_busy_pct_full: m('max', (p) => p.load_cpu_busy_pct),
        threads_full: ps.filter((p) => p.kind === 'max').sort((a, b) => b.rx_pps - a.rx_pps)[0]?.threads,
        rounds: new Set(ps.map((p) => p.round)).size,
      });
    }
  }
  return out;
}

/** Median over rounds of a/b for variant `a` against `b` at one frame size and kind. */
function paired(points: Point[], a: VariantName, b: VariantName, frame: number, kind: Kind, f: (p: Point) => number): number {
  const rs = [...new Set(points.map((p) => p.round))];
  return median(
    rs.map((r) => {
      const x = points.find((p) => p.name === a && p.frame_bytes === frame && p.kind === kind && p.round === r);
      const y = points.find((p) => p.name === b && p.frame_bytes === frame && p.kind === kind && p.round === r);
      return x && y ? f(x) / f(y) : Number.NaN;
    }),
  );
}

function ratiosAndTargets(points: Point[], variants: VariantRow[], skipped: Map<VariantName, string>): { ratios: Record<string, number>; targets: Target[] } {
  const ratios: Record<string, number> = {};
  const targets: Target[] = [];
  const key = (n: string) => n.replace(/-/g, '_');
  for (const name of ['bpfctl', 'bpfctl-coalesce', 'bpfctl-poll', 'bpfctl-ts'] as const) {
    for (const frame of FRAME_SIZES) {
      const k = `${key(name)}_${frame}`;
      ratios[`${k}_pps_vs_kernel_nft`] = paired(points, name, REFERENCE_KERNEL, frame, 'max', (p) => p.rx_pps);
      ratios[`${k}_cpu_full_vs_kernel_nft`] = paired(points, name, REFERENCE_KERNEL, frame, 'max', (p) => p.cpu_ns_per_pkt);
      ratios[`${k}_pps_vs_testpmd`] = paired(points, name, REFERENCE_POLL, frame, 'max', (p) => p.rx_pps);
      ratios[`${k}_cpu_10pct_vs_testpmd`] = paired(points, name, REFERENCE_POLL, frame, '10pct', (p) => p.cpu_ns_per_pkt);
      ratios[`${k}_p99_vs_testpmd`] = paired(points, name, REFERENCE_POLL, frame, 'moderate', (p) => p.p99_us);
    }
  }
  // What the TypeScript counter costs against the same chain with the C one (same round).
  for (const frame of FRAME_SIZES) {
    ratios[`bpfctl_ts_${frame}_pps_vs_bpfctl`] = paired(points, 'bpfctl-ts', 'bpfctl', frame, 'max', (p) => p.rx_pps);
    ratios[`bpfctl_ts_${frame}_cpu_full_vs_bpfctl`] = paired(points, 'bpfctl-ts', 'bpfctl', frame, 'max', (p) => p.cpu_ns_per_pkt);
    ratios[`bpfctl_ts_${frame}_cpu_10pct_vs_bpfctl`] = paired(points, 'bpfctl-ts', 'bpfctl', frame, '10pct', (p) => p.cpu_ns_per_pkt);
  }
  for (const frame of FRAME_SIZES) {
    ratios[`xdp_redirect_${frame}_pps_vs_kernel_nft`] = paired(points, 'xdp-redirect', REFERENCE_KERNEL, frame, 'max', (p) => p.rx_pps);
    ratios[`testpmd_${frame}_pps_vs_kernel_nft`] = paired(points, 'testpmd', REFERENCE_KERNEL, frame, 'max', (p) => p.rx_pps);
  }
  // The issue's targets are for the event-driven bpfctl; the same four for it with coalescing on.
  let why: string | undefined;
  const add = (what: string, frame: number, value: number, target: string, met: (v: number) => boolean) => {
    const ok = Number.isFinite(value);
    targets.push({ what, frame_bytes: frame, value: ok ? value : null, target, met: ok ? met(value) : null, note: ok ? undefined : (why ?? 'no paired rounds') });
  };
  for (const name of ['bpfctl', 'bpfctl-coalesce'] as const) {
    why = skipped.get(name);
    for (const frame of FRAME_SIZES) {
      const k = `${key(name)}_${frame}`;
      add(`${name} max pps / kernel-nft`, frame, ratios[`${k}_pps_vs_kernel_nft`]!, '>= 1.0', (v) => v >= 1.0);
      add(`${name} CPU per packet at full load / kernel-nft`, frame, ratios[`${k}_cpu_full_vs_kernel_nft`]!, '<= 1.0', (v) => v <= 1.0);
      add(`${name} max pps / testpmd`, frame, ratios[`${k}_pps_vs_testpmd`]!, '>= 0.7', (v) => v >= 0.7);
      add(`${name} CPU per packet at 10% load / testpmd`, frame, ratios[`${k}_cpu_10pct_vs_testpmd`]!, '<= 0.2', (v) => v <= 0.2);
    }
  }
  why = skipped.get('bpfctl');
  const idle = variants.find((v) => v.name === 'bpfctl')?.idle_cpu_pct ?? Number.NaN;
  add('bpfctl idle CPU (% of a core)', 0, idle, '< 0.5', (v) => v < 0.5);
  for (const [k, v] of Object.entries(ratios)) if (!Number.isFinite(v)) delete ratios[k];
  return { ratios, targets };
}

function machine(s: Settings, loads: number[][], seconds: number): Record<string, unknown> {
  // "dpdk\t<version>"
  const dpdk = spawnSync('dpkg-query', ['-W', 'dpdk'], { encoding: 'utf8' }).stdout.trim().split('\t')[1] ?? 'unknown';
  return {
    when: new Date().toISOString(),
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    dpdk,
    quick: s.quick,
    rounds: s.rounds,
    max_seconds: s.maxSeconds,
    paced_seconds: s.pacedSeconds,
    idle_seconds: s.idleSeconds,
    flows: FLOWS,
    pinned: PINNED ? { dut_cpu: DUT_CPU, generator_sink_bench_cpu: LOAD_CPU } : false,
    moderate_pps: MODERATE_PPS,
    coalesce_us: COALESCE_US,
    loadavg_start: loads[0],
    loadavg_end: loads[loads.length - 1],
    loadavg_1m_samples: loads.map((l) => l[0]),
    bench_seconds: Math.round(seconds),
  };
}

const METHOD: Record<string, string> = {
  topology: 'sender ns -veth-> DUT ns -veth-> receiver ns; every veth with threaded NAPI',
  cpus: 'pinned: the DUT (processes, testpmd lcores, its veths\' NAPI threads) on CPU 0; generator, sink NAPI thread (SCHED_FIFO) and the bench on CPU 1',
  generator:
    'flat out: BPF_PROG_RUN live frames, XDP_TX on the sender veth (the DUT receives xdp_frames); paced: AF_PACKET send per frame into an inner veth whose XDP redirects to the sender veth (same xdp_frames); 16 UDP flows, no UDP checksum, send time stamped by XDP',
  sink: 'XDP on the receiver veth: counts, checks the source is the NAT address, one-way latency histogram (100 ns buckets to 100 us, 10 us to 10 ms) from the stamp in the payload, drops',
  cpu: "schedstat time of the DUT's processes and of its two veths' NAPI threads, per frame received at the sink; checked against CPU 0's /proc/stat busy time; unattributed = whole-machine busy minus DUT, generator and sink",
  frame_bytes: 'Ethernet header to the end of the payload, no FCS (64: 14 + 20 + 8 + 22 B of payload)',
  max_pps: 'frames/s at the sink with the generator flat out; pps_per_dut_core = 1e9 / CPU ns per frame there',
  latency: 'p50/p99 one-way at the moderate load (the same rate for every variant, at most half its max)',
  coalesce: `bpfctl-coalesce: the bpfctl policy with coalesce: { us: ${COALESCE_US} } on its chain (frames wait up to that long in pktio to share a batch)`,
  rounds: 'variants up one at a time, order rotating per round; medians of rounds, ratios medians of per-round ratios',
};

const fmt = (n: number | null | undefined, d = 0) => (n !== null && n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');

function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return `${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}\n`;
}

export function print(r: PacketBenchResult): void {
  const out: string[] = [];
  out.push(`Packet chains vs kernel forwarding, testpmd, XDP (medians of ${fmt(r.machine.rounds as number)} round(s); latency at ${fmt(MODERATE_PPS)} frames/s)`);
  out.push(
    table(
      ['variant', 'frame B', 'max pps', 'sent pps', 'p50 us', 'p99 us', 'CPU ns/pkt full', 'CPU ns/pkt 10%', 'idle % core'],
      r.variants.map((v) =>
        v.skipped
          ? [v.name, String(v.frame_bytes), `skipped: ${v.skipped}`, '', '', '', '', '', '']
          : [v.name, String(v.frame_bytes), fmt(v.max_pps), fmt(v.sent_pps_at_max), fmt(v.p50_us, 1), fmt(v.p99_us, 1), fmt(v.cpu_ns_per_pkt_full), fmt(v.cpu_ns_per_pkt_10pct), fmt(v.idle_cpu_pct, 2)],
      ),
    ),
  );
  out.push("Where the CPU went at max load (% of one core): the DUT's threads, the DUT's and the load CPU as /proc/stat saw them (pinned runs; load CPU near 100: generator + sink were the limit), machine time no thread was charged for");
  out.push(
    table(
      ['variant', 'frame B', 'DUT threads %', 'DUT CPU busy %', 'load CPU busy %', 'generator %', 'unattributed ns/pkt', 'pps per DUT core', 'busiest DUT threads (%)'],
      r.variants
        .filter((v) => !v.skipped)
        .map((v) => [
          v.name,
          String(v.frame_bytes),
          fmt(v.dut_cpu_pct_full),
          fmt(v.dut_cpu_busy_pct_full),
          fmt(v.load_cpu_busy_pct_full),
          fmt(v.gen_cpu_pct_full),
          fmt(v.unattributed_ns_per_pkt_full),
          fmt(v.pps_per_dut_core),
          (v.threads_full ?? []).slice(0, 4).map((x) => `${x.name} ${fmt(x.cpu_pct)}`).join(', '),
        ]),
    ),
  );
  out.push('Targets (bpfctl event-driven, and with coalescing; ratios are medians of per-round ratios)');
  out.push(table(['', 'frame B', 'value', 'target', 'met'], r.targets.map((t) => [t.what, t.frame_bytes ? String(t.frame_bytes) : '', t.value === null ? '-' : fmt(t.value, 2), t.target, t.met === null ? `skipped: ${t.note}` : t.met ? 'yes' : 'NO'])));
  const others = Object.entries(r.ratios).filter(([k]) => !k.startsWith('bpfctl_'));
  if (others.length) out.push(`Baselines: ${others.map(([k, v]) => `${k} ${fmt(v, 2)}x`).join(', ')}\n`);
  const loads = (r.machine.loadavg_1m_samples as number[] | undefined) ?? [];
  if (loads.length) out.push(`1-minute load average during the run: ${fmt(Math.min(...loads), 2)}-${fmt(Math.max(...loads), 2)} (2 cores)\n`);
  for (const f of r.failures) out.push(`FAILED ${f.name}: ${f.error}\n`);
  process.stdout.write(out.join('\n'));
}

export async function run(opts: { quick?: boolean } = {}): Promise<PacketBenchResult> {
  const s = settings(opts.quick ?? process.argv.includes('--quick'));
  const asked = process.env.PACKET_VARIANTS?.split(',').filter((n): n is VariantName => (VARIANTS as readonly string[]).includes(n));
  const names = asked?.length ? VARIANTS.filter((n) => asked.includes(n)) : VARIANTS;
  const t0 = Date.now();
  const loads: number[][] = [os.loadavg()];
  const points: Point[] = [];
  const idle: PacketBenchResult['idle'] = [];
  const failures: { name: string; error: string }[] = [];
  const skipped = new Map<VariantName, string>();
  const fail = (name: string, err: unknown) => {
    // One line for the table; the cause's own last lines (a child's stderr) are in the message.
    const msg = (err instanceof Error ? err.message : String(err)).split('\n').filter((l) => l.trim()).slice(0, 6).join(' / ');
    failures.push({ name, error: msg });
    log(`${name} failed: ${msg}`);
  };

  const stale = removeStale();
  if (stale.length) log(`removed namespaces left by an earlier run: ${stale.join(', ')}`);
  const genBin = buildGen();
  let t: Topology | undefined;
  let sink: Sink | undefined;
  let gen: Gen | undefined;
  let dut: Dut | undefined;
  let interrupted = false;
  const teardownSync = () => {
    killAllSync();
    try {
      sink?.close();
    } catch {}
    t?.destroy();
    removeDpdkRun();
    for (const d of readdirSync(tmpdir())) if (d.startsWith(`bpfctl-bench-packet-${process.pid}-`)) rmSync(join(tmpdir(), d), { recursive: true, force: true });
    pin([process.pid], '0-1');
  };
  // Ctrl-C / kill: stop the processes (testpmd and bpfctl remove their XDP programs), then drop
  // the namespaces, which takes every veth and whatever is still attached with them.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      teardownSync();
      process.exit(130);
    }
    interrupted = true;
    log(`${sig}: stopping and removing everything`);
    void (async () => {
      try {
        await dut?.stop();
      } catch {}
      await stopAll(10_000);
    })().finally(() => {
      teardownSync();
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', teardownSync);
  try {
    // The bench, and with it the generator it starts, on the load CPU; the sink's NAPI thread too.
    pin([process.pid], LOAD_CPU);
    t = createTopology();
    sink = attachSink(t);
    setThreaded(t, t.nsR, t.ifR);
    const sinkThreads = kthreads(`napi/${t.ifR}-`);
    pin(sinkThreads, LOAD_CPU);
    // The sink is the measuring instrument: real-time priority, so that it runs the moment frames
    // reach it and never drops them behind the flat-out generator sharing its CPU (that thread
    // gives the CPU up only at a scheduler tick; the sink's 256-frame ring would overflow first).
    for (const p of sinkThreads) spawnSync('chrt', ['-f', '-p', '10', String(p)]);
    gen = await startGen(genBin, t);
    const b = new Bench(t, gen, sink);
    for (let round = 0; round < s.rounds && !interrupted; round++) {
      for (const name of rotate(names, round)) {
        // A variant that was skipped or failed to start once is not retried in later rounds.
        if (interrupted || skipped.has(name) || failures.some((f) => f.name === `${name} start`)) continue;
        try {
          log(`round ${round + 1}: ${name} up`);
          dut = await startDut(name, t);
        } catch (err) {
          dut = undefined;
          if (err instanceof Skipped) {
            skipped.set(name, err.message);
            log(`${name} skipped: ${err.message}`);
          } else if (!interrupted) fail(`${name} start`, err);
          continue;
        }
        try {
          for (const frame of rotate(FRAME_SIZES, round)) {
            if (interrupted) break;
            await gen.frame(frame);
            await gen.run(0, s.warmSeconds);
            await b.drained();
            // A point during which other work took the DUT's CPU (pinned runs: /proc/stat says
            // the CPU was busier than the DUT's threads) is taken again, up to s.retries times;
            // the least disturbed try counts.
            const measure = async (kind: Kind, rate: number, secs: number) => {
              let best: Point | undefined;
              let tries = 0;
              while (tries <= s.retries) {
                const p = await b.point(dut!, frame, round, kind, rate, secs);
                tries++;
                if (!best || p.others_on_dut_cpu_pct < best.others_on_dut_cpu_pct) best = p;
                if (!(p.others_on_dut_cpu_pct > OTHERS_MAX_PCT)) break;
                log(`${describe(p)}: ${p.others_on_dut_cpu_pct.toFixed(0)}% of the DUT's CPU went to other work${tries <= s.retries ? ', again' : ''}`);
              }
              best!.attempts = tries;
              return best!;
            };
            const max = await measure('max', 0, s.maxSeconds);
            points.push(max);
            log(describe(max));
            if (!(max.rx_pps > 0)) throw new Error(`no frame reached the sink at ${frame} B`);
            const ten = await measure('10pct', Math.round(max.rx_pps / 10), s.pacedSeconds);
            points.push(ten);
            log(describe(ten));
            const mod = await measure('moderate', Math.min(MODERATE_PPS, Math.round(max.rx_pps / 2)), s.pacedSeconds);
            points.push(mod);
            log(describe(mod));
          }
          if (round === 0 && !interrupted) {
            await sleep(s.settleMs);
            const pids = dut.pids();
            const c0 = cpuOf(pids);
            const w0 = performance.now();
            await sleep(s.idleSeconds * 1000);
            const secs = (performance.now() - w0) / 1000;
            const pct = ((cpuOf(pids) - c0) / secs) * 100;
            idle.push({ name, cpu_pct: pct, seconds: secs });
            log(`${name} idle: ${pct.toFixed(3)}% of a core`);
          }
        } catch (err) {
          if (!interrupted) fail(name, err);
        } finally {
          if (!interrupted) {
            try {
              await dut.stop();
            } catch (err) {
              fail(`${name} stop`, err);
            }
            dut = undefined;
          }
        }
      }
      loads.push(os.loadavg());
    }
  } finally {
    if (!interrupted) {
      await gen?.stop();
      sink?.close();
      sink = undefined;
      t?.destroy();
      t = undefined;
      pin([process.pid], '0-1');
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('exit', teardownSync);
    }
  }
  loads.push(os.loadavg());
  const variants = rows(points, idle, skipped, names);
  const { ratios, targets } = ratiosAndTargets(points, variants, skipped);
  const result: PacketBenchResult = { variants, points, idle, ratios, targets, failures, machine: machine(s, loads, (Date.now() - t0) / 1000), method: METHOD };
  if (interrupted) return result;
  // A quick run is a smoke test: it never replaces the recorded results.
  const file = s.quick ? join(here, '../.cache/bench/packet-quick.json') : join(here, 'results/packet.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${file}`);
  print(result);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await run();
  process.exitCode = r.failures.length ? 1 : 0;
}
