/**
 * The tables of BENCHMARKS.md's packet section, from a result file:
 * `node --import tsx bench/packet/markdown.ts [bench/results/packet.json]` prints them, so the
 * numbers in the document are the file's, not copied by hand.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PacketBenchResult } from '../packet.ts';

const file = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '../results/packet.json');
const r = JSON.parse(readFileSync(file, 'utf8')) as PacketBenchResult;

const n = (v: number | null | undefined, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
const out: string[] = [];

out.push(row(['variant', 'frame', 'max pps', 'p50 us', 'p99 us', 'CPU ns/pkt, full', 'CPU ns/pkt, 10%', 'idle, % of a core']));
out.push(row(['---', '---', '---', '---', '---', '---', '---', '---']));
for (const v of r.variants) {
  if (v.skipped) out.push(row([v.name, `${v.frame_bytes} B`, `skipped: ${v.skipped}`, '', '', '', '', '']));
  else out.push(row([v.name, `${v.frame_bytes} B`, n(v.max_pps), n(v.p50_us, 1), n(v.p99_us, 1), n(v.cpu_ns_per_pkt_full), n(v.cpu_ns_per_pkt_10pct), n(v.idle_cpu_pct, 2)]));
}
out.push('');
out.push(row(['variant', 'frame', 'DUT threads, % of CPU 0', 'CPU 0 busy, %', 'CPU 1 (load) busy, %', 'pps per DUT core', 'busiest DUT threads at max (% of a core)']));
out.push(row(['---', '---', '---', '---', '---', '---', '---']));
for (const v of r.variants) {
  if (v.skipped) continue;
  out.push(row([v.name, `${v.frame_bytes} B`, n(v.dut_cpu_pct_full), n(v.dut_cpu_busy_pct_full), n(v.load_cpu_busy_pct_full), n(v.pps_per_dut_core), (v.threads_full ?? []).map((t) => `${t.name} ${n(t.cpu_pct)}`).join(', ')]));
}
out.push('');
out.push(row(['target (bpfctl event-driven, and with coalescing)', 'frame', 'value', 'target', 'met']));
out.push(row(['---', '---', '---', '---', '---']));
for (const t of r.targets) out.push(row([t.what, t.frame_bytes ? `${t.frame_bytes} B` : '', t.value === null ? '-' : `${n(t.value, 2)}${t.what.includes('idle') ? '' : 'x'}`, t.target, t.met === null ? `skipped: ${t.note}` : t.met ? 'yes' : '**no**']));
process.stdout.write(`${out.join('\n')}\n`);
