/** The nodes bench's tables (stdout), from its result. */
import type { NodesBenchResult } from '../nodes.ts';
import type { Row, Spread } from './stats.ts';

const fmt = (n: number | undefined, d = 0) => (n !== undefined && Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');
const x = (s: Spread) => `${fmt(s.median, 2)}x (${fmt(s.min, 2)}-${fmt(s.max, 2)})`;

function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return `${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}\n`;
}

const rowCells = (v: Row) => [v.name, String(v.concurrency), fmt(v.rps), fmt(v.p50_us), fmt(v.p99_us), fmt(v.cpu_us_per_req, 1), String(v.errors), String(v.points)];
const HEAD = ['variant', 'conc', 'req/s', 'p50 us', 'p99 us', 'CPU us/req', 'errors', 'points'];

export function print(r: NodesBenchResult): void {
  const out: string[] = [];
  const secs = r.machine.point_seconds as number;
  out.push(`The chain on one node and over three (wrk -t1 from node a, POST of the payload, ${fmt(secs)} s points; median of each variant's points)`);
  out.push(table(HEAD, r.variants.map(rowCells)));
  out.push('Where the CPU went: the busiest process and wrk (median % of a core; 2 cores in all)');
  out.push(table(['variant', 'conc', 'busiest process', 'its CPU %', 'wrk CPU %'], r.variants.map((v) => [v.name, String(v.concurrency), v.busiest, fmt(v.busiest_cpu_pct), fmt(v.wrk_cpu_pct)])));
  out.push('Paired by round (median of the per-round ratios, range in brackets)');
  out.push(
    table(
      ['', 'conc', 'req/s', 'p50', 'CPU/req'],
      r.paired.map((p) => [`${p.a} / ${p.b}`, String(p.concurrency), x(p.rps), x(p.p50), x(p.cpu_per_req)]),
    ),
  );
  out.push('Hop routes (all through a\'s gateway): /local a-a-a, /detour a-b-a, /detour-tcp a-a(tcp to b)-a, /spread a-b-c, /a-b-b');
  out.push(table(HEAD, r.hop_routes.map(rowCells)));
  out.push('Cost of one crossing (per round: half the difference to /local; median over rounds)');
  out.push(
    table(
      ['', 'bpfctl cross-node hop', 'plain TCP hop', 'ratio', 'per-round ratios'],
      r.hops.map((h) => [h.what, fmt(h.cross_node, 1), fmt(h.plain_tcp, 1), `${fmt(h.ratio, 2)}x`, `${fmt(h.ratio_rounds.min, 2)}-${fmt(h.ratio_rounds.max, 2)}`]),
    ),
  );
  const one = r.ratios.one_hop_p50_us_spread_minus_a_b_b;
  if (one !== undefined) out.push(`Check, one hop made cross-node (/spread - /a-b-b, p50 at c=1): ${fmt(one, 1)} us (against ${fmt(r.hops[0]?.cross_node, 1)} us per crossing above, minus a local hop)\n`);
  const spreadRow = r.variants.find((v) => v.name === 'bpfctl-3node' && v.concurrency === 64);
  if (spreadRow) {
    out.push('bpfctl-3node at c=64: CPU per request by process (us, median of the points)');
    out.push(table(['process', 'CPU us/req'], Object.entries(spreadRow.procs).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, fmt(v, 1)])));
  }
  out.push('Targets');
  out.push(table(['', 'value', 'target', 'met'], r.targets.map((t) => [t.what, fmt(t.value, 2), t.target, t.met ? 'yes' : 'NO'])));
  const loads = (r.machine.loadavg_1m_samples as number[] | undefined) ?? [];
  const others = r.points.map((p) => p.others_cores);
  const steal = r.points.map((p) => p.steal_cores);
  if (loads.length) out.push(`1-minute load average during the run: ${fmt(Math.min(...loads), 2)}-${fmt(Math.max(...loads), 2)} (2 cores)`);
  if (others.length) out.push(`Other work during the points: ${fmt(Math.min(...others), 2)}-${fmt(Math.max(...others), 2)} cores; steal ${fmt(Math.min(...steal), 2)}-${fmt(Math.max(...steal), 2)} cores\n`);
  for (const f of r.failures) out.push(`FAILED ${f.name}: ${f.error}\n`);
  process.stdout.write(`${out.join('\n')}`);
}
