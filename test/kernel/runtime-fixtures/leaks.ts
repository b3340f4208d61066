/**
 * leaksSince() narrowed to what this process can have leaked. BPF ids are system-wide, and other
 * suites load and unload chains on the same machine at the same time: an id that appeared in the
 * window is only ours if this process still holds it (its fdinfo names it). Pins, file
 * descriptors and namespaces are reported as leaksSince() finds them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { leaksSince, type Snapshot } from '../../helpers/leaks.ts';

function heldIds(): Record<'progs' | 'maps' | 'links', Set<number>> {
  const held = { progs: new Set<number>(), maps: new Set<number>(), links: new Set<number>() };
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    for (const [kind, key] of [
      ['progs', 'prog_id'],
      ['maps', 'map_id'],
      ['links', 'link_id'],
    ] as const) {
      const m = new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(info);
      if (m) held[kind].add(Number(m[1]));
    }
  }
  return held;
}

export function ownLeaks(before: Snapshot, opts: { pinDirs?: string[]; fdSlack?: number } = {}): string[] {
  const problems = leaksSince(before, opts);
  if (!problems.length) return problems;
  const held = heldIds();
  return problems.flatMap((p) => {
    const m = /^(progs|maps|links) still loaded: ids ([\d, ]+)/.exec(p);
    if (!m) return [p];
    const kind = m[1] as keyof typeof held;
    const ours = m[2]!.trim().replace(/,$/, '').split(', ').map(Number).filter((id) => held[kind].has(id));
    return ours.length ? [`${kind} still held by this process: ids ${ours.join(', ')}`] : [];
  });
}
