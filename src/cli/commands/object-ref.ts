/**
 * How `map`, `prog` and `link` commands name a kernel object, bpftool's ways and bpfctl's own:
 *
 *   id N | id:N | N                    the kernel id
 *   pinned PATH | pinned:PATH | /PATH  a pin on bpffs
 *   name NAME | name:NAME              the one loaded object with that kernel name (15 chars)
 *   POLICY/NAME                        a pin of a loaded policy: maps/NAME (progs/, links/), or
 *                                      any of its pins with that file name (XDP sections' too),
 *                                      or a path inside its directory (POLICY/xdp/eth0/prog);
 *                                      obj/OBJECT/NAME for `bpfctl load FILE.bpf.o`
 *   NAME                               the pin of that name when exactly one loaded policy has
 *                                      one, else the one loaded object with that kernel name
 *
 * A name that fits several objects is an error listing every candidate in a form that names it
 * exactly. bpftool's two-word forms (`map dump id 5`) arrive as two positionals: `splitRef` joins
 * them back.
 */
import { basename, join } from 'node:path';
import { BpfLink, BpfMap, BpfProgram, DEFAULT_BPFFS, listLinks, listMaps, listPrograms, pinsByKind } from '../../../loader/index.ts';
import { isDirectory, listDir, pathExists } from '../../deploy/access.ts';
import { pinRoot } from '../../deploy/paths.ts';
import { listPolicies } from '../../deploy/loaded.ts';
import { BpfctlError } from '../../errors.ts';
import { UsageError } from '../errors.ts';

export type ObjectKind = 'map' | 'prog' | 'link';

/** A reference that names no object, or several. */
export class ObjectRefError extends BpfctlError {}

const WORDS = ['id', 'pinned', 'name'];
const NOUN: Record<ObjectKind, string> = { map: 'map', prog: 'program', link: 'link' };

/**
 * The positional words a leaf command was given: its named positionals in order, then the words
 * yargs did not assign (`argv._` past the command words). Commands using this declare
 * `strict(false).strictOptions()` and no positional number parsing, so `map get id 5 0x10`
 * arrives as the words typed.
 */
export function positionalWords(argv: { _: readonly (string | number)[] } & Record<string, unknown>, names: readonly string[], commandWords: number): string[] {
  const words: string[] = [];
  for (const n of names) {
    const v = argv[n];
    if (Array.isArray(v)) words.push(...v.map(String));
    else if (v !== undefined) words.push(String(v));
  }
  return [...words, ...argv._.slice(commandWords).map(String)];
}

/** Splits the object reference (one word, or bpftool's `id N` / `pinned PATH` / `name X`) off the front. */
export function splitRef(words: readonly string[], kind: ObjectKind): { ref: string; rest: string[] } {
  const [first, second] = words;
  if (first === undefined) throw new UsageError(`name a ${NOUN[kind]}: id N, pinned PATH, name NAME or POLICY/NAME`);
  if (WORDS.includes(first)) {
    if (second === undefined) throw new UsageError(`'${first}' needs a value: ${first} ${first === 'id' ? 'N' : first === 'pinned' ? 'PATH' : 'NAME'}`);
    return { ref: `${first} ${second}`, rest: words.slice(2) };
  }
  return { ref: first, rest: words.slice(1) };
}

/** What a reference resolves to: a kernel id or a pin path. */
export type Resolved = { id: number; pin?: undefined } | { pin: string; id?: undefined };

/** Pins of one loaded policy (or object load) of a kind, relative to its directory. */
function pinsOf(dir: string, kind: ObjectKind): string[] {
  const sub = `${kind}s`;
  const out = listDir(join(dir, sub)).map((n) => `${sub}/${n}`);
  for (const iface of listDir(join(dir, 'xdp'))) {
    if (kind === 'map') out.push(...listDir(join(dir, 'xdp', iface, 'maps')).map((n) => `xdp/${iface}/maps/${n}`));
    else if (pathExists(join(dir, 'xdp', iface, kind))) out.push(`xdp/${iface}/${kind}`);
  }
  return out;
}

/** Every loaded policy's and object load's directory, by the name a reference uses for it. */
function owners(): { owner: string; dir: string }[] {
  const root = pinRoot();
  const out = listPolicies(root).map((p) => ({ owner: p, dir: join(root, p) }));
  for (const o of listDir(join(root, 'obj'))) if (isDirectory(join(root, 'obj', o))) out.push({ owner: `obj/${o}`, dir: join(root, 'obj', o) });
  return out;
}

/** Pins under `dir` that `name` picks: the path itself, KIND/name, or any pin with that file name. */
function matchIn(dir: string, kind: ObjectKind, name: string): string[] {
  for (const exact of [name, `${kind}s/${name}`]) {
    const p = join(dir, exact);
    if (!exact.split('/').includes('..') && pathExists(p) && !isDirectory(p)) return [exact];
  }
  return pinsOf(dir, kind).filter((rel) => basename(rel) === name);
}

function ambiguous(kind: ObjectKind, ref: string, candidates: readonly string[]): ObjectRefError {
  return new ObjectRefError('E_AMBIGUOUS', `${candidates.length} ${NOUN[kind]}s match '${ref}': ${candidates.join(', ')} (name one of them exactly)`);
}

/** The kernel id of the one object of `kind` whose name is `name`. @throws ObjectRefError listing the candidates */
export function uniqueByName(kind: ObjectKind, name: string): number {
  if (kind === 'link') throw new UsageError('links have no name: name one by id N, pinned PATH or POLICY/LINK');
  const all: readonly { id: number; name: string }[] = kind === 'map' ? listMaps() : listPrograms();
  // Kernel names are cut at 15 characters (BPF_OBJ_NAME_LEN - 1).
  const hits = all.filter((o) => o.name === name || o.name === name.slice(0, 15));
  if (hits.length === 1) return hits[0]!.id;
  if (!hits.length) throw new ObjectRefError('E_NOENT', `no ${NOUN[kind]} named '${name}' is loaded`);
  // Where each is pinned tells a person which is which; only walked when needed.
  const pins = pinsByKind(kind, DEFAULT_BPFFS);
  const root = pinRoot();
  const where = (id: number) => {
    const p = pins.get(id)?.[0];
    if (!p) return 'not pinned';
    return p.startsWith(`${root}/`) ? shortForm(p.slice(root.length + 1), kind) : `pinned ${p}`;
  };
  const list = hits.map((h) => `id ${h.id} (${where(h.id)})`);
  throw new ObjectRefError('E_AMBIGUOUS', `${hits.length} ${NOUN[kind]}s are named '${name}': ${list.join(', ')}: name one by id N, pinned PATH or POLICY/NAME`);
}

/** `hello-chain/maps/routes` -> `hello-chain/routes`, the short form a reference accepts. */
function shortForm(rel: string, kind: ObjectKind): string {
  const m = new RegExp(`^((?:obj/)?[^/]+)/${kind}s/([^/]+)$`).exec(rel);
  return m ? `${m[1]}/${m[2]}` : rel;
}

/** Resolves a reference to a kernel id or a pin path. @throws ObjectRefError, UsageError, AccessError */
export function resolveRef(kind: ObjectKind, ref: string): Resolved {
  const r = ref.trim();
  const id = /^(?:id[:\s]\s*)?(\d+)$/.exec(r);
  if (id) return { id: Number(id[1]) };
  if (/^id[:\s]/.test(r)) throw new UsageError(`'${r}': an id is a number`);
  const pinned = /^pinned[:\s]\s*(.+)$/.exec(r);
  if (pinned) return { pin: pinned[1]! };
  const name = /^name[:\s]\s*(.+)$/.exec(r);
  if (name) return { id: uniqueByName(kind, name[1]!) };
  if (r.startsWith('/') || r.startsWith('./') || r.startsWith('../')) return { pin: r };
  const slash = r.indexOf('/');
  if (slash > 0) {
    // POLICY/NAME, obj/OBJECT/NAME, or a path inside a policy's directory.
    const root = pinRoot();
    const owner = r.startsWith('obj/') ? r.split('/').slice(0, 2).join('/') : r.slice(0, slash);
    const rest = r.slice(owner.length + 1);
    const dir = join(root, owner);
    if (rest && !owner.split('/').includes('..') && pathExists(dir)) {
      const hits = matchIn(dir, kind, rest);
      if (hits.length === 1) return { pin: join(dir, hits[0]!) };
      if (hits.length > 1) throw ambiguous(kind, r, hits.map((h) => `${owner}/${h}`));
    }
    throw new ObjectRefError('E_NOENT', `no ${NOUN[kind]} '${rest || r}' pinned by ${pathExists(dir) ? '' : 'a loaded '}policy ${owner}${pathExists(dir) ? ` (under ${dir})` : ` (nothing under ${dir}; bpfctl status lists loaded policies)`}`);
  }
  // A bare name: a pin of exactly one loaded policy, else a kernel name.
  const hits = owners().flatMap((o) => matchIn(o.dir, kind, r).map((rel) => ({ owner: o.owner, pin: join(o.dir, rel), rel })));
  if (hits.length === 1) return { pin: hits[0]!.pin };
  if (hits.length > 1) throw ambiguous(kind, r, hits.map((h) => shortForm(`${h.owner}/${h.rel}`, kind)));
  if (kind === 'link') throw new ObjectRefError('E_NOENT', `no loaded policy has a link '${r}' (name one by id N, pinned PATH or POLICY/LINK)`);
  return { id: uniqueByName(kind, r) };
}

export function openMapRef(ref: string): BpfMap {
  const r = resolveRef('map', ref);
  return r.id !== undefined ? BpfMap.fromId(r.id) : BpfMap.openPinned(r.pin);
}

export function openProgRef(ref: string): BpfProgram {
  const r = resolveRef('prog', ref);
  return r.id !== undefined ? BpfProgram.fromId(r.id) : BpfProgram.openPinned(r.pin);
}

/** The kernel id of the link a reference names. */
export function linkIdOf(ref: string): number {
  const r = resolveRef('link', ref);
  if (r.id !== undefined) {
    if (!listLinks().some((l) => l.id === r.id)) throw new ObjectRefError('E_NOENT', `no link with id ${r.id} (bpfctl link ls)`);
    return r.id;
  }
  const l = BpfLink.openPinned(r.pin);
  try {
    return l.id;
  } finally {
    l.close();
  }
}
