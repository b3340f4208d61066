/**
 * Live route changes. The pinned `routes` map is the one source of truth: gateways and functions
 * follow it through a read-only mapping (src/runtime/route-table.ts), the kernel routes by it.
 *
 * A route is never rewritten in place. A change writes the new version into a free slot, retires
 * the slot it replaces, and then bumps `config.routes_gen`, all as one generation: readers that
 * see the new generation see every slot of it complete (they ignore slots newer than the
 * generation they read). Requests already under way carry their slot id in the descriptor and
 * finish on the version they started on; a retired slot keeps routing until it has drained
 * (`drainMs`) and is freed by a later change. Counters are per slot and zeroed when a slot is
 * taken, so a new route never shows an old one's numbers.
 */
import { lowerMethods, lowerRoutes } from '../ir/chain.ts';
import {
  decodeConfig,
  decodeRouteSlot,
  encodeConfig,
  encodeRouteSlot,
  FREE_SLOT,
  isCurrent,
  MAX_ROUTE_SLOTS,
  type RouteMethod,
  type RouteSlot,
  u32Key,
} from '../ir/chain-maps.ts';
import { IssueList } from '../ir/issues.ts';
import type { RouteIR } from '../ir/policy.ts';
import { BpfctlError } from '../errors.ts';
import { MAX_ROUTES } from '../schema/index.ts';
import { routeValue } from '../schema/chain-maps.ts';
import { type ChainMaps, openChainMaps } from './chain-maps.ts';
import { type Manifest, writeManifest } from './manifest.ts';
import { pinRoot, policyDir } from './paths.ts';
import { loadedManifest } from './policy.ts';

/** How long a retired route version keeps routing before its slot may be reused: twice the gateway's default reply deadline. */
export const DEFAULT_DRAIN_MS = 10_000;

export type RouteChange =
  | { op: 'set'; route: string; functions: string[]; methods?: RouteMethod[] }
  | { op: 'del'; route: string };

export interface RouteChangeResult {
  route: string;
  op: 'added' | 'updated' | 'removed' | 'unchanged';
  /** Slot of the new version (null when removed). */
  slot: number | null;
  /** Slot of the version it replaced, now draining (null when added). */
  previous: number | null;
  functions: string[];
  methods: RouteMethod[];
}

export interface LiveRoute {
  slot: number;
  name: string;
  hops: number[];
  methods: RouteMethod[];
  version: number;
}

export interface LiveRoutes {
  gen: number;
  current: LiveRoute[];
  /** Retired versions still routing requests that started on them. */
  draining: (LiveRoute & { retiredAtMs: number })[];
}

export class RouteTableFullError extends BpfctlError {
  constructor(policy: string, drainMs: number) {
    super('E_ROUTES_FULL', `policy ${policy}: all ${MAX_ROUTE_SLOTS} route slots hold routes or versions still draining; retry in ${Math.ceil(drainMs / 1000)} s`);
  }
}

const FREE_DECODED: RouteSlot = Object.freeze(decodeRouteSlot(FREE_SLOT)) as RouteSlot;
const LEN_OFF = routeValue.fields.find((f) => f.name === 'len')!.offset;
const VERSION_OFF = routeValue.fields.find((f) => f.name === 'version')!.offset;

/** A slot's value, decoded only when it is in use (most of the 1024 are free). */
function slotOf(v: Uint8Array): RouteSlot {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (dv.getUint32(LEN_OFF, true) === 0 && dv.getUint32(VERSION_OFF, true) === 0) return FREE_DECODED;
  return decodeRouteSlot(v);
}

function readSlots(cm: ChainMaps): RouteSlot[] {
  const out: RouteSlot[] = new Array(MAX_ROUTE_SLOTS);
  const batch = cm.routes.map.lookupBatch();
  if (batch) {
    for (let i = 0; i < batch.keys.length; i++) {
      const k = new DataView(batch.keys[i]!.buffer, batch.keys[i]!.byteOffset, 4).getUint32(0, true);
      out[k] = slotOf(batch.values[i]!);
    }
  }
  for (let i = 0; i < MAX_ROUTE_SLOTS; i++) {
    if (!out[i]) out[i] = slotOf(cm.routes.map.lookup(u32Key(i)) ?? FREE_SLOT);
  }
  return out;
}

function readGen(cm: ChainMaps): number {
  const v = cm.config.map.lookup(u32Key(0));
  return v ? decodeConfig(v).routesGen : 0;
}

/** The routes the kernel has now: current versions by name, and versions still draining. */
export function liveRoutes(cm: ChainMaps): LiveRoutes {
  const gen = readGen(cm);
  const slots = readSlots(cm);
  const current: LiveRoute[] = [];
  const draining: LiveRoutes['draining'] = [];
  slots.forEach((s, slot) => {
    if (s.version === 0 || s.hops.length === 0) return;
    const r = { slot, name: s.name, hops: s.hops, methods: s.methods, version: s.version };
    if (isCurrent(s, gen)) current.push(r);
    else if (s.retired !== 0) draining.push({ ...r, retiredAtMs: s.retiredAtMs });
  });
  current.sort((a, b) => a.name.localeCompare(b.name));
  return { gen, current, draining };
}

export interface ApplyRouteOptions {
  root?: string;
  /** The policy's chain maps when the caller holds them open (the supervisor): saves opening and checking seven pins per change. */
  maps?: ChainMaps;
  drainMs?: number;
  /** Wall clock in ms (tests). */
  now?: number;
}

/**
 * Applies route changes as one generation: every change takes effect for new requests at the same
 * moment, or none does (validation errors throw before anything is written).
 * @throws PolicyError naming the route and hop (unknown function, empty or too long route, unknown route to delete)
 * @throws RouteTableFullError when no slot is free (too many changes within the drain time)
 */
export function applyRouteChanges(policy: string, changes: readonly RouteChange[], opts: ApplyRouteOptions = {}): RouteChangeResult[] {
  const root = opts.root ?? pinRoot();
  const manifest = loadedManifest(policy, root);
  if (opts.maps) return applyWithMaps(manifest, opts.maps, changes, { ...opts, root });
  const cm = openChainMaps(policy, root, manifest);
  try {
    return applyWithMaps(manifest, cm, changes, { ...opts, root });
  } finally {
    cm.close();
  }
}

function applyWithMaps(manifest: Manifest, cm: ChainMaps, changes: readonly RouteChange[], opts: ApplyRouteOptions & { root: string }): RouteChangeResult[] {
  const ir = manifest.ir;
  const policy = ir.name;
  const now = opts.now ?? Date.now();
  const drainMs = opts.drainMs ?? DEFAULT_DRAIN_MS;
  const gen = readGen(cm);
  const slots = readSlots(cm);
  const currentByName = new Map<string, number>();
  slots.forEach((s, i) => {
    if (isCurrent(s, gen) && s.hops.length) currentByName.set(s.name, i);
  });

  // Validate everything first: a bad change leaves the table as it was.
  const planned: { change: RouteChange; lowered: RouteIR | null }[] = [];
  const issues = new IssueList();
  const names = new Set(currentByName.keys());
  for (const change of changes) {
    if (change.op === 'del') {
      if (!names.has(change.route)) {
        issues.add(['routes', change.route], `no route '${change.route}' in policy ${policy} (routes: ${[...names].join(', ') || 'none'})`);
      }
      names.delete(change.route);
      planned.push({ change, lowered: null });
      continue;
    }
    const old = currentByName.get(change.route);
    const methods = change.methods ?? (old !== undefined ? slots[old]!.methods : undefined);
    const [lowered] = lowerRoutes({ [change.route]: change.functions }, ir.functions, issues);
    const m = lowerMethods(methods, ['routes', change.route, 'methods'], issues);
    names.add(change.route);
    planned.push({ change, lowered: lowered ? { ...lowered, methods: m } : null });
  }
  if (names.size > MAX_ROUTES) issues.add(['routes'], `policy ${policy} would have ${names.size} routes (at most ${MAX_ROUTES})`);
  issues.throwIfAny({ policy });

  // Free the slots whose versions have drained: they may be reused below.
  const freeing: number[] = [];
  slots.forEach((s, i) => {
    if (s.retired !== 0 && s.retired <= gen && now - s.retiredAtMs >= drainMs) freeing.push(i);
  });
  for (const i of freeing) {
    const s = slots[i]!;
    // Two writes: the kernel may be reading len/fn while a value is copied in. The first changes
    // only len (and version, which readers already ignore for a retired slot), so no reader ever
    // sees the new len with the old functions half overwritten.
    cm.routes.map.update(u32Key(i), encodeRouteSlot({ ...s, hops: [], version: 0xffffffff }));
    cm.routes.map.update(u32Key(i), FREE_SLOT);
    slots[i] = FREE_DECODED;
  }

  const next = gen + 1;
  const taken = new Set<number>();
  const takeSlot = (): number => {
    for (let i = 0; i < MAX_ROUTE_SLOTS; i++) {
      const s = slots[i]!;
      if (!taken.has(i) && s.version === 0 && s.hops.length === 0) {
        taken.add(i);
        return i;
      }
    }
    throw new RouteTableFullError(policy, drainMs);
  };
  const byId = new Map(ir.functions.map((f) => [f.id, f.name]));
  const results: RouteChangeResult[] = [];
  const writes: (() => void)[] = [];
  const routes = new Map<string, RouteIR>(ir.routes.map((r) => [r.name, r]));
  for (const { change, lowered } of planned) {
    const old = currentByName.get(change.route);
    const oldSlot = old !== undefined ? slots[old]! : null;
    if (change.op === 'del') {
      writes.push(() => cm.routes.map.update(u32Key(old!), encodeRouteSlot({ ...oldSlot!, retired: next, retiredAtMs: now })));
      currentByName.delete(change.route);
      routes.delete(change.route);
      results.push({ route: change.route, op: 'removed', slot: null, previous: old!, functions: oldSlot!.hops.map((h) => byId.get(h) ?? `#${h}`), methods: oldSlot!.methods });
      continue;
    }
    const r = lowered!;
    if (oldSlot && sameRoute(oldSlot, r)) {
      results.push({ route: r.name, op: 'unchanged', slot: old!, previous: null, functions: r.functions, methods: r.methods });
      continue;
    }
    const slot = takeSlot();
    const value = encodeRouteSlot({ hops: r.hops, version: next, retired: 0, retiredAtMs: 0, methods: r.methods, name: r.name });
    writes.unshift(() => {
      cm.routes.map.update(u32Key(slot), value);
      // A slot's counters start at zero, whatever route used it before.
      cm.routeStats.map.update(u32Key(slot), new Uint8Array(cm.routeStats.map.valueBufSize));
    });
    if (old !== undefined) writes.push(() => cm.routes.map.update(u32Key(old), encodeRouteSlot({ ...oldSlot!, retired: next, retiredAtMs: now })));
    currentByName.set(r.name, slot);
    routes.set(r.name, { ...r, id: slot });
    results.push({ route: r.name, op: old === undefined ? 'added' : 'updated', slot, previous: old ?? null, functions: r.functions, methods: r.methods });
  }
  if (writes.length === 0) return results;
  // New versions first, then retirements, then the generation that publishes them all.
  for (const w of writes) w();
  const cfg = decodeConfig(cm.config.map.lookup(u32Key(0))!);
  cm.config.map.update(u32Key(0), encodeConfig({ ...cfg, routesGen: next }));

  // writeManifest rehashes the IR and the manifest's schemaHash from it.
  writeManifest(policyDir(policy, opts.root), { ...manifest, ir: { ...ir, routes: [...routes.values()] } });
  return results;
}

function sameRoute(s: RouteSlot, r: RouteIR): boolean {
  return s.hops.length === r.hops.length && s.hops.every((h, i) => h === r.hops[i]) && s.methods.join() === r.methods.join();
}

/** One change (the `bpfctl route set|del` shortcut). */
export function changeRoute(policy: string, change: RouteChange, opts: ApplyRouteOptions = {}): RouteChangeResult {
  return applyRouteChanges(policy, [change], opts)[0]!;
}
