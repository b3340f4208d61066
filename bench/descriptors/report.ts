/**
 * From points to a variant's row (medians of rounds, ratios vs skmsg as medians of per-round
 * ratios) and the printed table (markdown, as it goes into BENCHMARKS.md).
 */
import type { Point, VariantName } from './point.ts';

export const REFERENCE: VariantName = 'skmsg';
/** Steal (cores) under which a max point counts as undisturbed by the hypervisor. */
export const LOW_STEAL = 0.2;

export interface Row {
  name: VariantName;
  rounds: number;
  max_desc_per_s: number;
  /** Lowest and highest round. */
  max_desc_per_s_range: [number, number];
  cpu_ns_per_desc_max: number;
  /** Per process (producer, middle hop, consumer), ns per descriptor at max. */
  cpu_ns_per_desc_max_split: number[];
  cpu_pct_max: number;
  syscalls_per_batch_max: number;
  sleeps_per_batch_max: number;
  /** The paced rate the consumer actually saw. */
  rate_desc_per_s: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  cpu_ns_per_desc_rate: number;
  cpu_ns_per_desc_rate_split: number[];
  cpu_pct_rate: number;
  syscalls_per_batch_rate: number;
  sleeps_per_batch_rate: number;
  idle_cpu_pct: number;
  idle_cpu_pct_split: number[];
  /** Whole-machine softirq + irq time per descriptor at max (others' included; ~0 means none of ours). */
  softirq_ns_per_desc_max: number;
  /** Busy cores of the machine not charged to the three processes during the max points. */
  others_cores_max: number;
  /**
   * The max points during which the hypervisor took less than LOW_STEAL cores (n of them): the
   * sleeping variants' max falls 3-5x when it takes most of a core (every wakeup of a halted vCPU
   * waits for the host).
   */
  max_low_steal: { n: number; desc_per_s: number; cpu_ns_per_desc: number };
  /** The same for the paced points: there a busy host turns every wakeup into a wait of up to ms. */
  rate_low_steal: { n: number; p50_us: number; p99_us: number; cpu_ns_per_desc: number; sleeps_per_batch: number };
  /** Cores the hypervisor stole, max and paced points. */
  steal_cores_max: number;
  steal_cores_rate: number;
  /** vs skmsg, medians of per-round ratios (max: higher is better; the rest: lower is better). */
  vs_skmsg: { max: number; p50: number; p99: number; cpu_max: number; cpu_rate: number } | null;
}

export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const sel = (ps: readonly Point[], name: VariantName, phase: Point['phase']) => ps.filter((p) => p.transport === name && p.phase === phase);
const med = (ps: readonly Point[], f: (p: Point) => number) => median(ps.map(f));
const split = (ps: readonly Point[], f: (p: Point, i: number) => number) => [0, 1, 2].map((i) => med(ps, (p) => f(p, i)));

/** Median over rounds of (f of the variant's point) / (f of skmsg's point in the same round). */
function ratio(points: readonly Point[], name: VariantName, phase: Point['phase'], f: (p: Point) => number): number {
  const rs: number[] = [];
  for (const p of sel(points, name, phase)) {
    const ref = points.find((q) => q.transport === REFERENCE && q.phase === phase && q.round === p.round);
    if (ref) rs.push(f(p) / f(ref));
  }
  return median(rs);
}

export function rows(points: readonly Point[], names: readonly VariantName[]): Row[] {
  return names
    .filter((n) => points.some((p) => p.transport === n))
    .map((name) => {
      const max = sel(points, name, 'max');
      const rate = sel(points, name, 'rate');
      const idle = sel(points, name, 'idle');
      const hasRef = name !== REFERENCE && points.some((p) => p.transport === REFERENCE);
      return {
        name,
        rounds: max.length,
        max_desc_per_s: med(max, (p) => p.desc_per_s),
        max_desc_per_s_range: [Math.min(...max.map((p) => p.desc_per_s)), Math.max(...max.map((p) => p.desc_per_s))],
        cpu_ns_per_desc_max: med(max, (p) => p.cpu_ns_per_desc),
        cpu_ns_per_desc_max_split: split(max, (p, i) => p.cpu_ns[i]! / p.descs),
        cpu_pct_max: med(max, (p) => p.cpu_pct),
        syscalls_per_batch_max: med(max, (p) => p.syscalls_per_batch),
        sleeps_per_batch_max: med(max, (p) => p.sleeps_per_batch),
        rate_desc_per_s: med(rate, (p) => p.desc_per_s),
        p50_us: med(rate, (p) => p.lat.p50_ns / 1000),
        p99_us: med(rate, (p) => p.lat.p99_ns / 1000),
        p999_us: med(rate, (p) => p.lat.p999_ns / 1000),
        cpu_ns_per_desc_rate: med(rate, (p) => p.cpu_ns_per_desc),
        cpu_ns_per_desc_rate_split: split(rate, (p, i) => p.cpu_ns[i]! / p.descs),
        cpu_pct_rate: med(rate, (p) => p.cpu_pct),
        syscalls_per_batch_rate: med(rate, (p) => p.syscalls_per_batch),
        sleeps_per_batch_rate: med(rate, (p) => p.sleeps_per_batch),
        idle_cpu_pct: med(idle, (p) => p.cpu_pct),
        idle_cpu_pct_split: split(idle, (p, i) => (p.cpu_ns[i]! / (p.seconds * 1e9)) * 100),
        softirq_ns_per_desc_max: med(max, (p) => p.softirq_ns_per_desc),
        others_cores_max: med(max, (p) => p.others_cores),
        max_low_steal: (() => {
          const q = max.filter((p) => p.steal_cores < LOW_STEAL);
          return { n: q.length, desc_per_s: med(q, (p) => p.desc_per_s), cpu_ns_per_desc: med(q, (p) => p.cpu_ns_per_desc) };
        })(),
        rate_low_steal: (() => {
          const q = rate.filter((p) => p.steal_cores < LOW_STEAL);
          return {
            n: q.length,
            p50_us: med(q, (p) => p.lat.p50_ns / 1000),
            p99_us: med(q, (p) => p.lat.p99_ns / 1000),
            cpu_ns_per_desc: med(q, (p) => p.cpu_ns_per_desc),
            sleeps_per_batch: med(q, (p) => p.sleeps_per_batch),
          };
        })(),
        steal_cores_max: med(max, (p) => p.steal_cores),
        steal_cores_rate: med(rate, (p) => p.steal_cores),
        vs_skmsg: hasRef
          ? {
              max: ratio(points, name, 'max', (p) => p.desc_per_s),
              p50: ratio(points, name, 'rate', (p) => p.lat.p50_ns),
              p99: ratio(points, name, 'rate', (p) => p.lat.p99_ns),
              cpu_max: ratio(points, name, 'max', (p) => p.cpu_ns_per_desc),
              cpu_rate: ratio(points, name, 'rate', (p) => p.cpu_ns_per_desc),
            }
          : null,
      };
    });
}

export const fmt = (n: number | null | undefined, d = 0) =>
  n !== null && n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-';

const x = (r: number | undefined) => (r !== undefined && Number.isFinite(r) ? ` (${r.toFixed(2)}x)` : '');

function markdown(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');
}

/** The main table: value (ratio vs skmsg) per cell. */
export function table(rs: readonly Row[], rate: number): string {
  return markdown(
    ['variant', 'max desc/s', `p50 us @${fmt(rate)}/s`, 'p99 us', 'CPU ns/desc @max', 'CPU ns/desc @rate', 'idle CPU % core', 'syscalls/batch max, rate', 'sleeps/batch max, rate'],
    rs.map((r) => [
      r.name,
      `${fmt(r.max_desc_per_s / 1e6, 2)}M${x(r.vs_skmsg?.max)}`,
      `${fmt(r.p50_us, 1)}${x(r.vs_skmsg?.p50)}`,
      `${fmt(r.p99_us, 1)}${x(r.vs_skmsg?.p99)}`,
      `${fmt(r.cpu_ns_per_desc_max)}${x(r.vs_skmsg?.cpu_max)}`,
      `${fmt(r.cpu_ns_per_desc_rate)}${x(r.vs_skmsg?.cpu_rate)}`,
      fmt(r.idle_cpu_pct, 2),
      `${fmt(r.syscalls_per_batch_max, 2)}, ${fmt(r.syscalls_per_batch_rate, 2)}`,
      `${fmt(r.sleeps_per_batch_max, 2)}, ${fmt(r.sleeps_per_batch_rate, 2)}`,
    ]),
  );
}

/** The points the hypervisor left alone (steal < LOW_STEAL cores), without ratios: their rounds differ. */
export function lowStealTable(rs: readonly Row[], rate: number): string {
  return markdown(
    ['variant', 'max desc/s', 'CPU ns/desc @max', `p50 us @${fmt(rate)}/s`, 'p99 us', 'CPU ns/desc @rate', 'sleeps/batch @rate', 'points max, rate'],
    rs.map((r) => [
      r.name,
      r.max_low_steal.n ? `${fmt(r.max_low_steal.desc_per_s / 1e6, 2)}M` : '-',
      fmt(r.max_low_steal.cpu_ns_per_desc),
      fmt(r.rate_low_steal.p50_us, 1),
      fmt(r.rate_low_steal.p99_us, 1),
      fmt(r.rate_low_steal.cpu_ns_per_desc),
      fmt(r.rate_low_steal.sleeps_per_batch, 2),
      `${r.max_low_steal.n}, ${r.rate_low_steal.n}`,
    ]),
  );
}

/** Where the CPU went: per process, ns per descriptor (and idle % of a core). */
export function splitTable(rs: readonly Row[]): string {
  const three = (v: number[], d = 0) => v.map((n) => fmt(n, d)).join(' / ');
  return markdown(
    [
      'variant',
      'CPU ns/desc @max: producer / middle / consumer',
      '@rate',
      'idle % core',
      "max desc/s: rounds' range",
      'max: CPU % core, others, steal (cores)',
      'rate: desc/s seen, steal',
    ],
    rs.map((r) => [
      r.name,
      three(r.cpu_ns_per_desc_max_split),
      three(r.cpu_ns_per_desc_rate_split),
      three(r.idle_cpu_pct_split, 2),
      `${fmt(r.max_desc_per_s_range[0] / 1e6, 2)}-${fmt(r.max_desc_per_s_range[1] / 1e6, 2)}M`,
      `${fmt(r.cpu_pct_max)}, ${fmt(r.others_cores_max, 2)}, ${fmt(r.steal_cores_max, 2)}`,
      `${fmt(r.rate_desc_per_s)}, ${fmt(r.steal_cores_rate, 2)}`,
    ]),
  );
}
