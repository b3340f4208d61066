/**
 * The object-file side of `bpfctl load` / `bpfctl unload`: load FILE.bpf.o and pin every
 * program and map under DIR (`DIR/progs/<name>`, `DIR/maps/<name>`, names as bpftool makes them:
 * `prog.bss` -> `prog_bss`), and remove exactly that again.
 *
 * Each load writes a manifest (`DIR/bpfctl_loads/<object>`, a pinned map holding JSON: what it
 * pinned, what libbpf pinned for LIBBPF_PIN_BY_NAME maps, which directories it created, the links
 * `bpfctl prog attach` made for its programs). `unload DIR` removes what the manifests list and
 * nothing else. Load is all or nothing: pin paths are checked before anything reaches the kernel,
 * and a failure part-way unpins what was pinned and removes the directories it made.
 */
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BpfObject, BpfProgram, isBpffs, listLinks, mkdirp, pinName, readJsonPin, unpin, writeJsonPin } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
import { codecFromBtf, encode, parseLiteral, SchemaError } from '../../schema/index.ts';
import type { Output } from '../output.ts';

/** A pin directory that cannot be used or does not hold what `load` pins. */
export class PinDirError extends BpfctlError {}

const SUBDIRS = ['progs', 'maps'] as const;
/** Per-load manifests live here, one pinned record per loaded object. */
export const MANIFEST_DIR = 'bpfctl_loads';
const LAYOUT = ['progs', 'maps', 'links', MANIFEST_DIR] as const;

export interface PinnedEntry {
  kind: 'prog' | 'map' | 'link';
  name: string;
  type: string;
  id: number;
  pin: string;
  /** Programs: the ELF section (it names the attach point of tracing programs). */
  section?: string;
  attachType?: string;
  /** Maps: 'libbpf' when libbpf pinned it itself (LIBBPF_PIN_BY_NAME). */
  by?: 'bpfctl' | 'libbpf';
  /** A LIBBPF_PIN_BY_NAME map that was already pinned: shared, not this load's to remove. */
  reused?: boolean;
  /** Links: the program they attach and where. */
  program?: string;
  target?: string;
}

export interface LoadManifest {
  version: 1;
  /** The load's name: the object's name, unique within DIR. */
  name: string;
  object: string;
  dir: string;
  createdAt: string;
  /** Directories this load created (deepest first): unload removes them once empty. */
  createdDirs: string[];
  pins: PinnedEntry[];
}

export interface LoadedObject {
  object: string;
  dir: string;
  name: string;
  manifest: string;
  pins: PinnedEntry[];
}

/** `dir` and its ancestors that do not exist yet, deepest first: what a failed load removes. */
function missingDirs(dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; !existsSync(d) && dirname(d) !== d; d = dirname(d)) out.push(d);
  return out;
}

function removeEmptyDirs(dirs: readonly string[]): void {
  for (const d of dirs) {
    try {
      if (existsSync(d) && readdirSync(d).length === 0) rmdirSync(d);
    } catch {
      // Best effort: a directory someone else filled meanwhile stays.
    }
  }
}

/** `name=value` pairs of `--set`; the value is parsed with the global's BTF type. */
function parseSets(sets: readonly string[]): [string, string][] {
  return sets.map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new SchemaError(`--set ${s}: expected NAME=VALUE (e.g. --set max_pkts=100)`);
    return [s.slice(0, eq), s.slice(eq + 1)];
  });
}

/** Sets `const volatile` (and other) globals before load, each parsed by its type. */
export function applyGlobals(obj: BpfObject, sets: readonly string[]): Record<string, unknown> {
  const applied: Record<string, unknown> = {};
  for (const [name, text] of parseSets(sets)) {
    const g = obj.globals.find((x) => x.name === name);
    if (!g) {
      const names = obj.globals.map((x) => x.name).join(', ') || 'none';
      throw new PinDirError('E_NOENT', `--set ${name}: ${obj.name} has no global variable '${name}' (globals: ${names})`);
    }
    const codec = codecFromBtf(g.type);
    let value: unknown;
    try {
      value = parseLiteral(codec, text);
    } catch (err) {
      throw err instanceof SchemaError ? err.within(`--set ${name}`) : err;
    }
    obj.setGlobal(name, encode(codec, value));
    applied[name] = value;
  }
  return applied;
}

export function manifestPath(dir: string, name: string): string {
  return join(dir, MANIFEST_DIR, pinName(name));
}

/** Every load recorded under `dir`, oldest first. */
export function readManifests(dir: string): { path: string; manifest: LoadManifest }[] {
  const md = join(dir, MANIFEST_DIR);
  if (!existsSync(md)) return [];
  const out: { path: string; manifest: LoadManifest }[] = [];
  for (const n of readdirSync(md).sort()) {
    const path = join(md, n);
    out.push({ path, manifest: readJsonPin(path) as LoadManifest });
  }
  return out.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
}

/** The load whose manifest lists the pin `pin` (a program or map pinned by `bpfctl load`), if any. */
export function findLoadOf(pin: string): { path: string; manifest: LoadManifest; entry: PinnedEntry } | undefined {
  const p = resolve(pin);
  // DIR/progs/<name> or DIR/maps/<name>
  const dir = dirname(dirname(p));
  if (!existsSync(join(dir, MANIFEST_DIR))) return undefined;
  for (const r of readManifests(dir)) {
    const entry = r.manifest.pins.find((e) => e.pin === p);
    if (entry) return { ...r, entry };
  }
  return undefined;
}

export function writeManifest(path: string, m: LoadManifest): void {
  writeJsonPin(path, m, 'bpfctl_load');
}

/**
 * Loads `file` and pins its programs and maps under `pinDir`. Throws LoaderError / VerifierError
 * from the loader, PinDirError when `pinDir` is not on bpffs, a pin already exists there or a
 * `--set` names no global, SchemaError for a `--set` value its type cannot hold.
 */
export async function loadObjectCommand(file: string, pinDir: string, out: Output, opts: { set?: readonly string[] } = {}): Promise<LoadedObject> {
  const dir = resolve(pinDir);
  if (!isBpffs(dir)) throw new PinDirError('E_BPFFS', `${dir} is not on a bpf filesystem (pins live under /sys/fs/bpf)`);
  const mapsDir = join(dir, 'maps');
  const obj = BpfObject.open(file, { pinRoot: mapsDir });
  const pinned: string[] = [];
  const created = [...LAYOUT.map((s) => join(dir, s)).filter((d) => !existsSync(d)), ...missingDirs(dir)];
  try {
    applyGlobals(obj, opts.set ?? []);
    const mpath = manifestPath(dir, obj.name);
    if (existsSync(mpath)) throw new PinDirError('E_EXISTS', `${obj.name} (${mpath}) is already pinned (bpfctl unload ${dir} first)`);
    type Plan = { kind: 'prog' | 'map'; name: string; pin: string; by: 'bpfctl' | 'libbpf'; reused?: boolean; section?: string };
    const plan: Plan[] = [
      ...obj.programs.map((p) => ({ kind: 'prog' as const, name: p.name, pin: join(dir, 'progs', pinName(p.name)), by: 'bpfctl' as const, section: p.section })),
      ...obj.maps.map((m) =>
        m.pinPath
          ? { kind: 'map' as const, name: m.name, pin: m.pinPath, by: 'libbpf' as const, reused: existsSync(m.pinPath) }
          : { kind: 'map' as const, name: m.name, pin: join(mapsDir, pinName(m.name)), by: 'bpfctl' as const },
      ),
    ];
    const seen = new Set<string>();
    for (const p of plan) {
      if (seen.has(p.pin)) throw new PinDirError('E_EXISTS', `two ${p.kind}s of ${file} would both be pinned at ${p.pin}`);
      seen.add(p.pin);
      // A LIBBPF_PIN_BY_NAME map already pinned is shared (libbpf checks it is compatible).
      if (existsSync(p.pin) && !p.reused) throw new PinDirError('E_EXISTS', `${p.pin} is already pinned (bpfctl unload ${dir} first)`);
    }
    // libbpf pins LIBBPF_PIN_BY_NAME maps itself during load, into a directory that must exist.
    if (obj.maps.some((m) => m.pinPath)) mkdirp(mapsDir);
    out.progress(`loading ${file}`);
    obj.load();
    const specs = new Map(obj.programs.map((p) => [p.name, p]));
    const pins: PinnedEntry[] = [];
    for (const p of plan) {
      if (p.by === 'libbpf') {
        if (!p.reused) pinned.push(p.pin);
        const m = obj.map(p.name);
        pins.push({ kind: 'map', name: p.name, type: m.type, id: m.id, pin: p.pin, by: 'libbpf', ...(p.reused ? { reused: true } : {}) });
        continue;
      }
      const live = p.kind === 'prog' ? obj.program(p.name) : obj.map(p.name);
      live.pin(p.pin);
      pinned.push(p.pin);
      const spec = specs.get(p.name);
      pins.push({
        kind: p.kind,
        name: p.name,
        type: live.type,
        id: live.id,
        pin: p.pin,
        by: 'bpfctl',
        ...(p.kind === 'prog' && spec ? { section: spec.section, attachType: spec.attachType } : {}),
      });
    }
    const manifest: LoadManifest = {
      version: 1,
      name: obj.name,
      object: resolve(file),
      dir,
      createdAt: new Date().toISOString(),
      createdDirs: created.filter((d) => !LAYOUT.some((s) => join(dir, s) === d)),
      pins,
    };
    writeManifest(mpath, manifest);
    pinned.push(mpath);
    const result = { object: resolve(file), dir, name: obj.name, manifest: mpath, pins };
    if (out.json) out.printJson(result);
    else out.table(pins, ['kind', 'name', 'type', 'id', 'pin'], `Loaded ${file}: ${pins.length} pins under ${dir}`);
    return result;
  } catch (err) {
    for (const p of pinned.reverse()) {
      try {
        unpin(p);
      } catch {
        // Keep unwinding: the original error is the one to report.
      }
    }
    removeEmptyDirs(created);
    throw err;
  } finally {
    obj.close();
  }
}

export interface UnloadResult {
  dir: string;
  /** The loads removed (object names). */
  loads: string[];
  removed: string[];
  /** Pins left in place: shared LIBBPF_PIN_BY_NAME maps, and pins no load recorded. */
  kept: string[];
  warnings: string[];
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function progAlive(id: number): boolean {
  try {
    BpfProgram.fromId(id).close();
    return true;
  } catch {
    return false;
  }
}

/** Programs of a removed load that something still holds: the links that hold them, by id. */
function stillAttached(progs: readonly PinnedEntry[]): string[] {
  const warnings: string[] = [];
  const links = listLinks();
  let unlinked: PinnedEntry[] = [];
  for (const p of progs) {
    const mine = links.filter((l) => l.progId === p.id);
    if (!mine.length) {
      unlinked.push(p);
      continue;
    }
    const what = mine.map((l) => `link ${l.id} (${l.type}${l.target !== l.type ? ` ${l.target}` : ''})`).join(', ');
    warnings.push(`program '${p.name}' (id ${p.id}) stays attached through ${what}: bpfctl link detach ${mine[0]!.id}`);
  }
  // Without a link the holder may be an attachment (sockmap, legacy tc/XDP) or a process. The
  // kernel frees a program a moment after its last reference goes: give it that moment.
  for (let i = 0; i < 20 && unlinked.length; i++) {
    unlinked = unlinked.filter((p) => progAlive(p.id));
    if (unlinked.length) sleep(50);
  }
  for (const p of unlinked)
    warnings.push(`program '${p.name}' (id ${p.id}) is still loaded: attached without a link, or held by a process (bpftool prog show id ${p.id})`);
  return warnings;
}

/**
 * Removes the pins `chosen` loads own. A pin another remaining load also lists (a shared
 * LIBBPF_PIN_BY_NAME map) stays, and that load inherits it; a pin every listing load only reused
 * was made by someone else and stays too.
 */
function removeLoads(chosen: readonly { path: string; manifest: LoadManifest }[], remaining: readonly { path: string; manifest: LoadManifest }[]): { removed: string[]; kept: string[] } {
  const removed: string[] = [];
  const kept: string[] = [];
  const stays = new Map<string, { path: string; manifest: LoadManifest }>();
  for (const r of remaining) for (const p of r.manifest.pins) stays.set(p.pin, r);
  const owned = new Set(chosen.flatMap((r) => r.manifest.pins.filter((p) => !p.reused).map((p) => p.pin)));
  const heirs = new Set<{ path: string; manifest: LoadManifest }>();
  for (const r of chosen) {
    // Links first: removing a link's pin detaches it (when no process holds it).
    const order = [...r.manifest.pins.filter((p) => p.kind === 'link'), ...r.manifest.pins.filter((p) => p.kind !== 'link')];
    for (const p of order) {
      const heir = stays.get(p.pin);
      if (heir || !owned.has(p.pin)) {
        if (existsSync(p.pin) && !kept.includes(p.pin)) kept.push(p.pin);
        if (heir && owned.has(p.pin)) {
          for (const e of heir.manifest.pins) if (e.pin === p.pin) delete e.reused;
          heirs.add(heir);
        }
        continue;
      }
      if (unpin(p.pin)) removed.push(p.pin);
    }
    unpin(r.path);
  }
  for (const h of heirs) writeManifest(h.path, h.manifest);
  return { removed, kept };
}

/**
 * Removes what `bpfctl load --pin DIR` loads recorded under `dir` (every load there, or only
 * `opts.object`), the layout directories once empty, and the parents those loads created. Pins
 * no load recorded stay (and are reported as kept). Warns about programs still attached.
 * Throws PinDirError when `dir` holds no load.
 */
export async function unloadDirCommand(dir: string, out: Output, opts: { object?: string } = {}): Promise<UnloadResult> {
  const d = resolve(dir);
  if (!existsSync(d)) throw new PinDirError('E_NOENT', `${d} does not exist`);
  if (!isBpffs(d)) throw new PinDirError('E_BPFFS', `${d} is not on a bpf filesystem`);
  const all = readManifests(d);
  if (!all.length) {
    const legacy = SUBDIRS.some((s) => existsSync(join(d, s)) && statSync(join(d, s)).isDirectory());
    throw new PinDirError(
      'E_NOENT',
      legacy
        ? `${d} has progs/ or maps/ but no load manifest in ${MANIFEST_DIR}/ (not made by this bpfctl): remove its pins with rm`
        : `${d} holds no progs/ or maps/ of a bpfctl load (no manifest in ${MANIFEST_DIR}/)`,
    );
  }
  const chosen = opts.object ? all.filter((r) => r.manifest.name === opts.object) : all;
  if (!chosen.length) throw new PinDirError('E_NOENT', `${d} holds no load of '${opts.object}' (loads: ${all.map((r) => r.manifest.name).join(', ')})`);
  const remaining = all.filter((r) => !chosen.includes(r));
  const res: UnloadResult = { dir: d, loads: [], removed: [], kept: [], warnings: [] };
  const progs: PinnedEntry[] = [];
  const createdDirs: string[] = [];
  const { removed, kept } = removeLoads(chosen, remaining);
  res.removed.push(...removed);
  res.kept.push(...kept);
  for (const r of chosen) {
    res.loads.push(r.manifest.name);
    progs.push(...r.manifest.pins.filter((p) => p.kind === 'prog'));
    createdDirs.push(...r.manifest.createdDirs);
  }
  // Pins left in the layout directories that no manifest knows: not ours, reported.
  if (!remaining.length) {
    for (const s of LAYOUT) {
      const sd = join(d, s);
      if (!existsSync(sd)) continue;
      for (const n of readdirSync(sd)) if (!statSync(join(sd, n)).isDirectory() && !res.kept.includes(join(sd, n))) res.kept.push(join(sd, n));
    }
  }
  removeEmptyDirs(LAYOUT.map((s) => join(d, s)));
  if (remaining.length) {
    // The directories stay while another load lives in them: hand it the duty to remove them.
    const heir = remaining[remaining.length - 1]!;
    heir.manifest.createdDirs = [...new Set([...heir.manifest.createdDirs, ...createdDirs])].sort((a, b) => b.length - a.length);
    writeManifest(heir.path, heir.manifest);
  } else removeEmptyDirs([...new Set([d, ...createdDirs])].sort((a, b) => b.length - a.length));
  res.warnings = stillAttached(progs);
  for (const w of res.warnings) out.stderr.write(`bpfctl: warning: ${w}\n`);
  if (out.json) out.printJson(res);
  else {
    out.line(`unloaded ${res.loads.join(', ')} from ${d} (${res.removed.length} pins removed${res.kept.length ? `, ${res.kept.length} kept` : ''})`);
    for (const k of res.kept) out.line(`  kept ${k}`);
  }
  return res;
}

/** The load's name for an object file path, as BpfObject.open derives it. */
export function objectName(file: string): string {
  return basename(file).replace(/\.(bpf\.)?o$/, '').replace(/-[0-9a-f]{16}$/, '');
}
