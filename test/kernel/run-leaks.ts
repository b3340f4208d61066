/**
 * Leak checks for the `bpfctl run` tests. leaksSince() compares the whole machine, and while
 * other suites load policies at the same time their programs and maps show up as "leaks" of ours.
 * So the kernel objects pinned under this test's own pin root are recorded while the chain runs,
 * and afterwards: those must be gone, and leaksSince() may report kernel objects only if they
 * are none of ours. Network namespaces are left out as well: `bpfctl run` never makes one, and
 * the ones other suites make meanwhile would fail these tests for nothing. File descriptors and
 * pins still count in full.
 */
import { leaksSince, type Snapshot } from '../helpers/leaks.ts';
import { sh } from '../helpers/sh.ts';

type Kind = 'prog' | 'map' | 'link';
const KINDS: Kind[] = ['prog', 'map', 'link'];

/** Ids of the programs, maps and links pinned under `root`. */
export function ownObjects(root: string): Set<string> {
  const out = new Set<string>();
  for (const k of KINDS) {
    const list = JSON.parse(sh('bpftool', ['-j', '-f', k, 'show'], { allowFail: true }) || '[]') as { id: number; pinned?: string[] }[];
    for (const o of list) if (o.pinned?.some((p) => p.startsWith(`${root}/`))) out.add(`${k}:${o.id}`);
  }
  return out;
}

/**
 * What a running chain pins, by kind: the sk_msg program, the seven chain maps (CHAIN_MAP_NAMES)
 * and the manifest (a map too). No link: sk_msg is attached to the sockhash, and registration has
 * no program of its own (the supervisor inserts sockets), so there is no sockops program or link.
 */
export const CHAIN_PINNED = { prog: 1, map: 8, link: 0 } as const;

/** `own` counted by kind, to compare with CHAIN_PINNED. */
export function ownByKind(own: Set<string>): Record<Kind, number> {
  const out: Record<Kind, number> = { prog: 0, map: 0, link: 0 };
  for (const o of own) out[o.split(':')[0] as Kind]++;
  return out;
}

function alive(kind: Kind, id: number): boolean {
  return sh('bpftool', ['-j', kind, 'show', 'id', String(id)], { allowFail: true }).trim() !== '';
}

/** Problems left after stop(): our objects still loaded, plus leaksSince() minus other suites' objects. */
export function runLeaks(before: Snapshot, own: Set<string>, pinDirs: string[]): string[] {
  const problems: string[] = [];
  const deadline = Date.now() + 2000;
  for (const o of own) {
    const [kind, id] = o.split(':') as [Kind, string];
    while (alive(kind, Number(id)) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    if (alive(kind, Number(id))) problems.push(`${kind} ${id} (ours) still loaded`);
  }
  const ownIds = new Set([...own].map((o) => o.split(':')[1]));
  for (const p of leaksSince(before, { pinDirs })) {
    const m = /^(progs|maps|links) still loaded: ids ([\d, ]+)/.exec(p);
    if (p.startsWith('network namespaces left')) continue;
    if (!m) problems.push(p);
    else if (m[2]!.trim().replace(/,$/, '').split(', ').some((id) => ownIds.has(id))) problems.push(p);
  }
  return problems;
}
