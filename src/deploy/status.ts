/**
 * What `bpfctl status` and `bpfctl top` show about a loaded policy, read live from its pins:
 * programs (kernel ids), routes and functions with their counters, live instances, drop reasons.
 * Plain data, so the CLI prints it as tables or JSON and `top` diffs two readings.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ChainMapName } from '../ir/chain-maps.ts';
import { DROP_REASONS } from '../schema/index.ts';
import { BpfMap, BpfProgram } from '../../loader/index.ts';
import { openChainMaps } from './chain-maps.ts';
import type { Manifest } from './manifest.ts';
import { pinRoot, policyDir } from './paths.ts';
import { loadedManifest } from './policy.ts';

export interface Counters {
  msgs: number;
  bytes: number;
  drops: number;
}

export interface PolicyStatus {
  policy: string;
  dir: string;
  createdAt: string;
  policyFile: string | null;
  cgroup: string | null;
  schemaHash: string;
  programs: { pin: string; id: number; type: string; name: string }[];
  maps: { pin: string; id: number; type: string; entries: number }[];
  routes: ({ id: number; name: string; functions: string[] } & Counters)[];
  functions: ({ id: number; name: string; instances: number; live: number[] } & Counters)[];
  drops: { reason: string; count: number }[];
  xdp: Manifest['xdp'];
  tc: NonNullable<Manifest['tc']>;
}

const num = (v: bigint | number | undefined) => Number(v ?? 0);
const counters = (c: { msgs: bigint; bytes: bigint; drops: bigint } | undefined): Counters => ({ msgs: num(c?.msgs), bytes: num(c?.bytes), drops: num(c?.drops) });

/**
 * Reads a loaded policy's state. `objects: false` skips opening every pinned program and map for
 * its kernel id (what `top` does once a second needs only the counters).
 */
export function policyStatus(name: string, root = pinRoot(), opts: { objects?: boolean } = {}): PolicyStatus {
  const manifest = loadedManifest(name, root);
  const dir = policyDir(name, root);
  const { ir } = manifest;
  const objects = opts.objects ?? true;
  const programs = (objects ? manifest.pins.progs : []).map((pin) => {
    const p = BpfProgram.openPinned(join(dir, pin));
    try {
      return { pin, id: p.id, type: p.type, name: p.name };
    } finally {
      p.close();
    }
  });
  const maps = (objects ? manifest.pins.maps : []).map((pin) => {
    const m = BpfMap.openPinned(join(dir, pin));
    try {
      return { pin, id: m.id, type: m.type, entries: m.maxEntries };
    } finally {
      m.close();
    }
  });
  const status: PolicyStatus = {
    policy: manifest.policy,
    dir,
    createdAt: manifest.createdAt,
    policyFile: manifest.policyFile,
    cgroup: manifest.cgroup,
    schemaHash: manifest.schemaHash,
    programs,
    maps,
    routes: [],
    functions: [],
    drops: [],
    xdp: manifest.xdp,
    tc: manifest.tc ?? [],
  };
  if (!existsSync(join(dir, 'maps', 'routes' satisfies ChainMapName))) return status;
  const cm = openChainMaps(name, root, manifest);
  try {
    const byId = new Map([[0, 'gateway'], ...ir.functions.map((f) => [f.id, f.name] as [number, string])]);
    status.routes = ir.routes.map((r) => {
      const live = cm.routes.get(r.id);
      const fns = live && live.len > 0 ? live.fn.slice(0, live.len).map((id) => byId.get(id) ?? `#${id}`) : [];
      return { id: r.id, name: r.name, functions: fns, ...counters(cm.routeStats.getSum(r.id)) };
    });
    const fnRows = [{ id: 0, name: 'gateway', instances: ir.gateway.instances }, ...ir.functions];
    status.functions = fnRows.map((f) => {
      const inst = cm.instances.get(f.id);
      return { id: f.id, name: f.name, instances: f.instances, live: inst ? inst.inst.slice(0, inst.count) : [], ...counters(cm.fnStats.getSum(f.id)) };
    });
    status.drops = DROP_REASONS.map((reason, i) => ({ reason, count: num(cm.dropReasons.getSum(i)) }));
  } finally {
    cm.close();
  }
  return status;
}
