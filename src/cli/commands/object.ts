/**
 * The object-file side of `bpfctl load` / `bpfctl unload`: load FILE.bpf.o and pin every
 * program and map under DIR (`DIR/progs/<name>`, `DIR/maps/<name>`), and remove such a
 * directory again. Load is all or nothing: pin paths are checked before anything reaches the
 * kernel, and a failure part-way unpins what was pinned and removes the directories it made.
 */
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BpfObject, isBpffs, unpin } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
import type { Output } from '../output.ts';

/** A pin directory that cannot be used or does not hold what `load` pins. */
export class PinDirError extends BpfctlError {}

const SUBDIRS = ['progs', 'maps'] as const;

export interface PinnedEntry {
  kind: 'prog' | 'map';
  name: string;
  type: string;
  id: number;
  pin: string;
}

export interface LoadedObject {
  object: string;
  dir: string;
  pins: PinnedEntry[];
}

/** A bpffs file name for a program or map name (libbpf's internal maps are named `.rodata`...). */
function pinName(name: string): string {
  return name.replace(/\//g, '_').replace(/^\.+/, '') || '_';
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

/**
 * Loads `file` and pins its programs and maps under `pinDir`. Throws LoaderError / VerifierError
 * from the loader, PinDirError when `pinDir` is not on bpffs or a pin already exists there.
 */
export async function loadObjectCommand(file: string, pinDir: string, out: Output): Promise<LoadedObject> {
  const dir = resolve(pinDir);
  if (!isBpffs(dir)) throw new PinDirError('E_BPFFS', `${dir} is not on a bpf filesystem (pins live under /sys/fs/bpf)`);
  const obj = BpfObject.open(file);
  const pinned: string[] = [];
  const created = [...SUBDIRS.map((s) => join(dir, s)).filter((d) => !existsSync(d)), ...missingDirs(dir)];
  try {
    const plan: { kind: 'prog' | 'map'; name: string; pin: string }[] = [
      ...obj.programs.map((p) => ({ kind: 'prog' as const, name: p.name, pin: join(dir, 'progs', pinName(p.name)) })),
      ...obj.maps.map((m) => ({ kind: 'map' as const, name: m.name, pin: join(dir, 'maps', pinName(m.name)) })),
    ];
    const seen = new Set<string>();
    for (const p of plan) {
      if (seen.has(p.pin)) throw new PinDirError('E_EXISTS', `two ${p.kind}s of ${file} would both be pinned at ${p.pin}`);
      seen.add(p.pin);
      if (existsSync(p.pin)) throw new PinDirError('E_EXISTS', `${p.pin} is already pinned (bpfctl unload ${dir} first)`);
    }
    out.progress(`loading ${file}`);
    obj.load();
    const pins: PinnedEntry[] = [];
    for (const p of plan) {
      const live = p.kind === 'prog' ? obj.program(p.name) : obj.map(p.name);
      live.pin(p.pin);
      pinned.push(p.pin);
      pins.push({ kind: p.kind, name: p.name, type: live.type, id: live.id, pin: p.pin });
    }
    const result = { object: resolve(file), dir, pins };
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

/**
 * Removes what `loadObjectCommand` pinned under `dir` (its progs/ and maps/), then `dir` itself
 * when nothing else is left in it. Throws PinDirError when `dir` holds no such pins.
 */
export async function unloadDirCommand(dir: string, out: Output): Promise<{ dir: string; removed: string[] }> {
  const d = resolve(dir);
  if (!existsSync(d)) throw new PinDirError('E_NOENT', `${d} does not exist`);
  if (!isBpffs(d)) throw new PinDirError('E_BPFFS', `${d} is not on a bpf filesystem`);
  const subdirs = SUBDIRS.map((s) => join(d, s)).filter((s) => existsSync(s) && statSync(s).isDirectory());
  if (!subdirs.length) throw new PinDirError('E_NOENT', `${d} holds no progs/ or maps/ (it was not made by bpfctl load --pin)`);
  const removed: string[] = [];
  for (const s of subdirs) {
    for (const name of readdirSync(s).sort()) {
      const p = join(s, name);
      // Only pins: a directory someone made inside is not ours to delete.
      if (statSync(p).isDirectory()) continue;
      if (unpin(p)) removed.push(p);
    }
  }
  removeEmptyDirs([...subdirs, d]);
  const result = { dir: d, removed };
  if (out.json) out.printJson(result);
  else out.line(`unloaded ${d} (${removed.length} pins removed)`);
  return result;
}
