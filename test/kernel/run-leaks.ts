/**
 * Leak checks for the `bpfctl run` tests: the kernel objects pinned under the test's own pin root
 * are recorded while the chain runs (ownObjects), so the test can check what a chain pins
 * (CHAIN_PINNED) and, after stop(), that exactly those are gone. Everything else is leaksSince(),
 * unfiltered: it tells this run's objects from other runs' on the same machine itself.
 */
import { leaksSince, type Snapshot } from '../helpers/leaks.ts';
import { sh } from '../helpers/sh.ts';

type Kind = 'prog' | 'map' | 'link';
const KINDS: Kind[] = ['prog', 'map', 'link'];

/** Ids of the programs, maps and links pinned under `root`. */
export function ownObjects(root: string): Set<string> {
  const out = new Set<string>();
  for (const k of KINDS) {
    const list = JSON.parse(sh('bpftool', ['-j', '-f', k, 'show'])) as { id: number; pinned?: string[] }[];
    for (const o of list) if (o.pinned?.some((p) => p.startsWith(`${root}/`))) out.add(`${k}:${o.id}`);
  }
  return out;
}

/**
 * What a running chain pins, by kind: the sk_msg program, the eight chain maps (CHAIN_MAP_NAMES)
 * and the manifest (a map too). No link: sk_msg is attached to the sockhash, and registration has
 * no program of its own (the supervisor inserts sockets), so there is no sockops program or link.
 */
export const CHAIN_PINNED = { prog: 1, map: 9, link: 0 } as const;

/** `own` counted by kind, to compare with CHAIN_PINNED. */
export function ownByKind(own: Set<string>): Record<Kind, number> {
  const out: Record<Kind, number> = { prog: 0, map: 0, link: 0 };
  for (const o of own) out[o.split(':')[0] as Kind]++;
  return out;
}

function alive(kind: Kind, id: number): boolean {
  const list = JSON.parse(sh('bpftool', ['-j', kind, 'show'])) as { id: number }[];
  return list.some((o) => o.id === id);
}

/** Problems left after stop(): our pinned objects still loaded, plus everything leaksSince() finds. */
export async function runLeaks(before: Snapshot, own: Set<string>, ownDirs: string[]): Promise<string[]> {
  const problems: string[] = [];
  const deadline = Date.now() + 2000;
  for (const o of own) {
    const [kind, id] = o.split(':') as [Kind, string];
    while (alive(kind, Number(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (alive(kind, Number(id))) problems.push(`${kind} ${id} (ours) still loaded`);
  }
  return [...problems, ...(await leaksSince(before, { ownDirs }))];
}
