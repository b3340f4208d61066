/**
 * Runs the C reference (./main.c: the three C functions called in a row in one process, no
 * transport) for the descriptor-level table: its CPU per round trip is the work alone, the floor
 * under bpfctl-c and tcp-c.
 */
import type { LoopResult } from '../driver/loop.ts';
import { spawnChild } from '../proc.ts';
import { buildCInproc } from '../tcp-c/build.ts';
import { expected, PAYLOAD } from '../work.ts';

export async function runCInproc(s: { warmupMs: number; measureMs: number }): Promise<LoopResult> {
  const bin = await buildCInproc();
  const c = spawnChild('c-inproc', bin, ['--payload', PAYLOAD, '--expected', expected(), '--warmup', String(s.warmupMs), '--measure', String(s.measureMs)]);
  try {
    const m = await c.line(/^result (.*)$/, s.warmupMs + s.measureMs + 30_000);
    const r = JSON.parse(m[1]!) as Omit<LoopResult, 'p50_us' | 'p99_us'> & { p50_us: number | null; p99_us: number | null };
    return { ...r, p50_us: r.p50_us ?? Number.NaN, p99_us: r.p99_us ?? Number.NaN };
  } finally {
    await c.stop();
  }
}
