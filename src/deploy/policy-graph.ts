/**
 * The picture of a loaded policy as it runs (`bpfctl graph NAME`), read from its pins rather than
 * from the file it was loaded from: routes as the kernel has them in the pinned routes map
 * (current versions, and versions still draining requests that started on them), live instances
 * from the instances map, and each XDP section with its rules (and their packet counters) and
 * sets (and their live sizes, which `bpfctl set` changes without touching the manifest). The
 * manifest supplies only what pins cannot hold: function names and languages, rule summaries.
 */
import { join } from 'node:path';
import { classifierOfSection, type GraphModel } from '../codegen/graph.ts';
import { pathExists } from './access.ts';
import { openChainMaps } from './chain-maps.ts';
import { pinRoot, policyDir } from './paths.ts';
import { loadedManifest } from './policy.ts';
import { liveRoutes } from './routes.ts';
import { xdpStatus } from './xdp-status.ts';

/** @throws PolicyNotLoadedError, AccessError, ManifestError, LoaderError */
export function policyGraph(name: string, root = pinRoot()): GraphModel {
  const manifest = loadedManifest(name, root);
  const dir = policyDir(name, root);
  const { ir } = manifest;
  const live = new Map<number, number>();
  let routes: GraphModel['routes'] = [];
  if (pathExists(join(dir, 'maps', 'routes'))) {
    const cm = openChainMaps(name, root, manifest);
    try {
      const table = liveRoutes(cm);
      routes = [...table.current.map((r) => ({ id: r.slot, name: r.name, hops: r.hops })), ...table.draining.map((r) => ({ id: r.slot, name: r.name, hops: r.hops, draining: true }))];
      for (const f of [ir.gateway, ...ir.functions]) live.set(f.id, cm.instances.get(f.id)?.count ?? 0);
    } finally {
      cm.close();
    }
  }
  const status = xdpStatus(dir, ir.xdp, Object.fromEntries(manifest.xdp.map((x) => [x.interface, x.mode])));
  return {
    name: ir.name,
    running: true,
    gateway: { instances: ir.gateway.instances, live: live.get(ir.gateway.id) ?? 0 },
    functions: ir.functions.map((f) => ({ id: f.id, name: f.name, language: f.language, instances: f.instances, live: live.get(f.id) ?? 0 })),
    routes,
    classifiers: ir.xdp.map((s) => {
      const st = status.find((x) => x.interface === s.interface);
      // The last status row is the default verdict's counter.
      const rows = st?.rules ?? [];
      return classifierOfSection(s, {
        mode: st?.mode,
        packets: rows.slice(0, -1).map((r) => (r.counted ? Number(r.packets) : undefined)),
        defaultPackets: rows.length ? Number(rows[rows.length - 1]!.packets) : undefined,
        setSizes: Object.fromEntries((st?.sets ?? []).map((x) => [x.name, x.size])),
      });
    }),
  };
}
