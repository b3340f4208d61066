/**
 * Leak checks: what a test suite must leave behind is nothing. A snapshot taken before and after
 * compares the kernel's BPF programs, maps and links (by id, via bpftool), the process's open file
 * descriptors, bpffs pins under a directory, and network namespaces.
 */
import { existsSync, readdirSync } from 'node:fs';
import { sh } from './sh.ts';

export interface Snapshot {
  progs: Set<number>;
  maps: Set<number>;
  links: Set<number>;
  fds: number;
  netns: Set<string>;
}

function ids(kind: 'prog' | 'map' | 'link'): Set<number> {
  const out = sh('bpftool', ['-j', kind, 'show'], { allowFail: true }) || '[]';
  return new Set((JSON.parse(out) as { id: number }[]).map((o) => o.id));
}

/** Names and holders of leftover objects, so a leak report says whose it is. */
function describe(kind: 'progs' | 'maps' | 'links', ids: number[]): string {
  const k = kind === 'progs' ? 'prog' : kind === 'maps' ? 'map' : 'link';
  const parts = ids.slice(0, 5).map((id) => {
    const o = JSON.parse(sh('bpftool', ['-j', k, 'show', 'id', String(id)], { allowFail: true }) || '{}') as { name?: string; type?: string; pids?: { pid: number; comm: string }[] };
    const who = o.pids?.map((p) => `${p.comm}:${p.pid}${p.pid === process.pid ? ' (this process)' : ''}`).join(' ') || 'no process';
    return `${id}=${o.type ?? '?'}/${o.name ?? '?'} held by ${who}`;
  });
  return ` (${parts.join('; ')})`;
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

export function snapshot(): Snapshot {
  return {
    progs: ids('prog'),
    maps: ids('map'),
    links: ids('link'),
    fds: openFds(),
    netns: new Set(sh('ip', ['netns', 'list'], { allowFail: true }).split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean)),
  };
}

/** Everything created since `before` and still present, as readable strings (empty = clean). */
export function leaksSince(before: Snapshot, opts: { pinDirs?: string[]; fdSlack?: number } = {}): string[] {
  // Map/program teardown in the kernel is deferred (RCU); give it a moment before judging.
  const deadline = Date.now() + 2000;
  let problems: string[] = [];
  do {
    const now = snapshot();
    problems = [];
    for (const k of ['progs', 'maps', 'links'] as const) {
      const extra = [...now[k]].filter((id) => !before[k].has(id));
      if (extra.length) problems.push(`${k} still loaded: ids ${extra.join(', ')}${describe(k, extra)}`);
    }
    const extraNs = [...now.netns].filter((n) => !before.netns.has(n));
    if (extraNs.length) problems.push(`network namespaces left: ${extraNs.join(', ')}`);
    if (now.fds > before.fds + (opts.fdSlack ?? 0)) problems.push(`file descriptors: ${before.fds} before, ${now.fds} after`);
    for (const d of opts.pinDirs ?? []) {
      if (existsSync(d) && readdirSync(d).length) problems.push(`pins left under ${d}: ${readdirSync(d).join(', ')}`);
    }
    if (!problems.length) return problems;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  } while (Date.now() < deadline);
  return problems;
}
