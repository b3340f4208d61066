/**
 * From the nodes bench's points to its rows, paired ratios, hop costs and targets. A row is the
 * median of a target's points at one concurrency; a ratio is the median over rounds of the two
 * points of the same round (they ran next to each other, in an order that rotates); a hop cost is
 * the median over rounds of the difference of two routes' points of the same round.
 */
import type { Point } from './point.ts';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface Row {
  name: string;
  concurrency: number;
  rps: number;
  p50_us: number;
  p99_us: number;
  cpu_us_per_req: number;
  requests: number;
  errors: number;
  points: number;
  /** The process most often the busiest, and its median CPU (% of a core). */
  busiest: string;
  busiest_cpu_pct: number;
  wrk_cpu_pct: number;
  /** Median CPU per request of each process (us). */
  procs: Record<string, number>;
  others_cores: number;
  steal_cores: number;
}

export interface HopCost {
  /** What is measured: the per-crossing cost, half the difference of two routes that differ by two crossings. */
  what: string;
  /** Per crossing (us of latency, or us of CPU per request), median over rounds. */
  cross_node: number;
  plain_tcp: number;
  /** cross_node / plain_tcp (medians), and the range of the per-round ratios. */
  ratio: number;
  ratio_rounds: Spread;
  /** The per-round differences (us), bpfctl and tcp. */
  rounds: { round: number; cross_node: number; plain_tcp: number }[];
}

export interface TargetRow {
  what: string;
  value: number;
  target: string;
  met: boolean;
}

export function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export function spread(xs: number[]): Spread {
  const v = xs.filter(Number.isFinite);
  return { median: median(v), min: v.length ? Math.min(...v) : Number.NaN, max: v.length ? Math.max(...v) : Number.NaN };
}

function mostOften(xs: string[]): string {
  const n = new Map<string, number>();
  for (const x of xs) n.set(x, (n.get(x) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '?';
}

export function rows(points: Point[], names: readonly string[], concurrencies: readonly number[]): Row[] {
  const out: Row[] = [];
  for (const name of names) {
    for (const c of concurrencies) {
      const ps = points.filter((p) => p.name === name && p.concurrency === c);
      if (!ps.length) continue;
      const m = (f: (p: Point) => number) => median(ps.map(f));
      const labels = [...new Set(ps.flatMap((p) => Object.keys(p.procs)))];
      const procs: Record<string, number> = {};
      for (const l of labels.sort()) {
        const v = Math.round(m((p) => p.procs[l] ?? 0) * 10) / 10;
        // Idle processes show in a point now and then (a timer, a GC): not in the row.
        if (v > 0) procs[l] = v;
      }
      out.push({
        name,
        concurrency: c,
        rps: m((p) => p.rps),
        p50_us: m((p) => p.p50_us),
        p99_us: m((p) => p.p99_us),
        cpu_us_per_req: m((p) => p.cpu_us_per_req),
        requests: ps.reduce((a, p) => a + p.requests, 0),
        errors: ps.reduce((a, p) => a + p.errors, 0),
        points: ps.length,
        busiest: mostOften(ps.map((p) => p.busiest)),
        busiest_cpu_pct: m((p) => p.busiest_cpu_pct),
        wrk_cpu_pct: m((p) => p.wrk_cpu_pct),
        procs,
        others_cores: m((p) => p.others_cores),
        steal_cores: m((p) => p.steal_cores),
      });
    }
  }
  return out;
}

/** f(a's point, b's point) for each round where both ran at concurrency c. */
function perRound(points: Point[], a: string, b: string, c: number, f: (pa: Point, pb: Point) => number): { round: number; v: number }[] {
  const out: { round: number; v: number }[] = [];
  for (const pa of points) {
    if (pa.name !== a || pa.concurrency !== c) continue;
    const pb = points.find((p) => p.name === b && p.concurrency === c && p.round === pa.round);
    if (pb) out.push({ round: pa.round, v: f(pa, pb) });
  }
  return out;
}

export function paired(points: Point[], a: string, b: string, c: number, f: (p: Point) => number): Spread {
  return spread(perRound(points, a, b, c, (pa, pb) => f(pa) / f(pb)).map((r) => r.v));
}

/**
 * The cost of a crossing: (cross route - base route) / 2 for bpfctl (/detour against /local) and
 * for the plain TCP hop (/detour-tcp against /local), per round, medians.
 */
export function hopCost(points: Point[], what: string, c: number, f: (p: Point) => number, names: { base: string; cross: string; tcp: string }): HopCost {
  const x = perRound(points, names.cross, names.base, c, (a, b) => (f(a) - f(b)) / 2);
  const t = perRound(points, names.tcp, names.base, c, (a, b) => (f(a) - f(b)) / 2);
  const rounds = x.flatMap((r) => {
    const tr = t.find((q) => q.round === r.round);
    return tr ? [{ round: r.round, cross_node: r.v, plain_tcp: tr.v }] : [];
  });
  const cross = median(rounds.map((r) => r.cross_node));
  const tcp = median(rounds.map((r) => r.plain_tcp));
  return { what, cross_node: cross, plain_tcp: tcp, ratio: cross / tcp, ratio_rounds: spread(rounds.map((r) => r.cross_node / r.plain_tcp)), rounds };
}

/** The one-hop check: /spread against /a-b-b (the b->c hop cross-node against local), median over rounds. */
export function oneHop(points: Point[], c: number, f: (p: Point) => number, cross: string, local: string): number {
  return median(perRound(points, cross, local, c, (a, b) => f(a) - f(b)).map((r) => r.v));
}
