/**
 * The routes as the kernel has them, for the processes of a running chain. Gateways resolve a
 * request's path here and functions check each descriptor's hop against it: no process keeps the
 * copy of the routes it was started with (that is how a live `route set` once broke running
 * chains: the kernel map changed and the processes did not).
 *
 * The live table reads the pinned `routes` and `config` maps through read-only mappings
 * (BPF_F_MMAPABLE): a request costs one memory load of `config.routes_gen`, and the path table is
 * rebuilt only when that generation moves. Slots are never rewritten while in use
 * (src/deploy/routes.ts), so an entry read for a slot stays valid for as long as its version does.
 */
import { join } from 'node:path';
import { BpfMap, type MappedArray, mmapArray } from '../../loader/index.ts';
import { type ChainMapName, decodeRouteSlot, isCurrent, methodBits } from '../ir/chain-maps.ts';
import type { PolicyIR } from '../ir/policy.ts';
import { configValue, instancesValue, routeValue } from '../schema/chain-maps.ts';

/** One version of a route (immutable while its slot holds it). */
export class RouteEntry {
  constructor(
    readonly slot: number,
    readonly name: string,
    readonly len: number,
    readonly hops: readonly number[],
    /** Bits of ROUTE_METHODS. */
    readonly methods: number,
    readonly version: number,
  ) {}
}

export interface RouteView {
  /** The current version of the route serving `path` ('/a' and '/a/' are one route). */
  byPath(path: string): RouteEntry | undefined;
  /** Whatever version a slot holds (current or still draining), for descriptors naming it. */
  bySlot(slot: number): RouteEntry | undefined;
  /** Current routes by name (status, tests). */
  current(): RouteEntry[];
}

/** Request path of a route name: names that are not paths are served at '/name'. */
export function routePath(name: string): string {
  return name.startsWith('/') ? name : `/${name}`;
}

function addPaths(paths: Map<string, RouteEntry>, e: RouteEntry): void {
  const p = routePath(e.name);
  paths.set(p, e);
  if (p.length > 1) paths.set(p.endsWith('/') ? p.slice(0, -1) : `${p}/`, e);
}

/** A fixed table from an IR: for processes (and tests) that run without pinned maps. */
export function staticRouteTable(ir: Pick<PolicyIR, 'routes'>): RouteView {
  const bySlot: (RouteEntry | undefined)[] = [];
  const paths = new Map<string, RouteEntry>();
  for (const r of ir.routes) {
    const e = new RouteEntry(r.id, r.name, r.hops.length, r.hops, methodBits(r.methods ?? ['POST']), 1);
    bySlot[r.id] = e;
    addPaths(paths, e);
  }
  return {
    byPath: (p) => paths.get(p),
    bySlot: (s) => bySlot[s],
    current: () => bySlot.filter((e): e is RouteEntry => e !== undefined),
  };
}

const fieldOffset = (codec: typeof routeValue | typeof configValue | typeof instancesValue, name: string): number => {
  const f = codec.fields.find((x) => x.name === name);
  if (!f) throw new Error(`schema ${codec.name} has no field ${name}`);
  return f.offset;
};
const VERSION_OFF = fieldOffset(routeValue, 'version');
const GEN_OFF = fieldOffset(configValue, 'routes_gen');
const COUNT_OFF = fieldOffset(instancesValue, 'count');

/** Rescans that saw the generation move underneath them before giving up for this request. */
const MAX_RESCANS = 8;

export class LiveRouteTable implements RouteView {
  private gen = -1;
  private paths = new Map<string, RouteEntry>();
  private list: RouteEntry[] = [];
  private readonly slots: (RouteEntry | undefined)[] = [];

  constructor(
    private readonly routes: MappedArray,
    private readonly config: MappedArray,
  ) {}

  /** Maps `<pinDir>/maps/routes` and `config` read-only (the fds are closed again: mappings keep the maps). */
  static open(pinDir: string): LiveRouteTable {
    return new LiveRouteTable(mapPinned(join(pinDir, 'maps', 'routes' satisfies ChainMapName)), mapPinned(join(pinDir, 'maps', 'config' satisfies ChainMapName)));
  }

  get generation(): number {
    return this.config.view.getUint32(GEN_OFF, true);
  }

  byPath(path: string): RouteEntry | undefined {
    if (this.generation !== this.gen) this.rescan();
    return this.paths.get(path);
  }

  bySlot(slot: number): RouteEntry | undefined {
    if (slot >= this.routes.entries) return undefined;
    const version = this.routes.view.getUint32(slot * this.routes.stride + VERSION_OFF, true);
    const e = this.slots[slot];
    if (e !== undefined && e.version === version) return e;
    if (version === 0 || version === 0xffffffff) return undefined;
    const s = decodeRouteSlot(this.routes.value(slot).subarray(0, routeValue.size));
    if (s.hops.length === 0) return undefined;
    const fresh = new RouteEntry(slot, s.name, s.hops.length, s.hops, methodBits(s.methods), s.version);
    this.slots[slot] = fresh;
    return fresh;
  }

  current(): RouteEntry[] {
    if (this.generation !== this.gen) this.rescan();
    return this.list;
  }

  close(): void {
    this.routes.unmap();
    this.config.unmap();
  }

  private rescan(): void {
    for (let attempt = 0; attempt < MAX_RESCANS; attempt++) {
      const gen = this.generation;
      const paths = new Map<string, RouteEntry>();
      const list: RouteEntry[] = [];
      for (let i = 0; i < this.routes.entries; i++) {
        const version = this.routes.view.getUint32(i * this.routes.stride + VERSION_OFF, true);
        // 0: free; newer than gen: being written (published by a later generation).
        if (version === 0 || version > gen) continue;
        const s = decodeRouteSlot(this.routes.value(i).subarray(0, routeValue.size));
        if (!isCurrent(s, gen) || s.hops.length === 0) continue;
        const e = new RouteEntry(i, s.name, s.hops.length, s.hops, methodBits(s.methods), s.version);
        this.slots[i] = e;
        list.push(e);
        addPaths(paths, e);
      }
      // A change published while we scanned could have been read half-done: scan again.
      if (this.generation !== gen) continue;
      this.paths = paths;
      this.list = list;
      this.gen = gen;
      return;
    }
  }
}

/** Live instance counts from the mapped `instances` map (function id -> count). */
export class LiveInstanceCounts {
  constructor(private readonly instances: MappedArray) {}

  static open(pinDir: string): LiveInstanceCounts {
    return new LiveInstanceCounts(mapPinned(join(pinDir, 'maps', 'instances' satisfies ChainMapName)));
  }

  count(fnId: number): number {
    if (fnId >= this.instances.entries) return 0;
    return this.instances.view.getUint32(fnId * this.instances.stride + COUNT_OFF, true);
  }

  /** Live instance ids of a function, as the kernel picks from them (`inst[req_id % count]`). */
  ids(fnId: number): number[] {
    const base = fnId * this.instances.stride;
    const n = Math.min(this.count(fnId), 32);
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.instances.view.getUint16(base + 4 + i * 2, true));
    return out;
  }

  close(): void {
    this.instances.unmap();
  }
}

function mapPinned(path: string): MappedArray {
  const m = BpfMap.openPinned(path);
  try {
    return mmapArray(m);
  } finally {
    m.close();
  }
}
