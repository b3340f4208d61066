/**
 * The picture of a loaded policy as it runs (`bpfctl graph NAME`), read from its pins rather than
 * from the file it was loaded from: routes as the kernel has them in the pinned routes map
 * (current versions, and versions still draining requests that started on them), live instances
 * from the instances map, and each XDP and tc section with its rules (and their packet counters)
 * and sets (and their live sizes, which `bpfctl set` changes without touching the manifest). The
 * manifest supplies only what pins cannot hold: function names and languages, rule summaries, and
 * the packet chains (their functions and egress are the IR's; frames reach them through the
 * XDP sections' chain rules drawn from the pins).
 */
import { join } from 'node:path';
import { classifierOfSection, type GraphModel, packetChainsOfIr } from '../codegen/graph.ts';
import type { ClassifierSectionIR } from '../ir/xdp.ts';
import { pathExists } from './access.ts';
import { openChainMaps } from './chain-maps.ts';
import { pinRoot, policyDir } from './paths.ts';
import { loadedManifest } from './policy.ts';
import { liveRoutes } from './routes.ts';
import { tcStatus } from './tc-status.ts';
import { type XdpRuleStatus, xdpStatus } from './xdp-status.ts';

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
  const xdp = xdpStatus(dir, ir.xdp, Object.fromEntries(manifest.xdp.map((x) => [x.interface, x.mode])));
  const tc = tcStatus(dir, ir.tc ?? []);
  const withCounters = (s: ClassifierSectionIR, st: { rules: XdpRuleStatus[]; sets: { name: string; size: number }[]; mode?: string } | undefined) => {
    // The last status row is the default verdict's counter.
    const rows = st?.rules ?? [];
    return classifierOfSection(s, {
      mode: st?.mode,
      packets: rows.slice(0, -1).map((r) => (r.counted ? Number(r.packets) : undefined)),
      defaultPackets: rows.length ? Number(rows[rows.length - 1]!.packets) : undefined,
      setSizes: Object.fromEntries((st?.sets ?? []).map((x) => [x.name, x.size])),
    });
  };
  return {
    name: ir.name,
    running: true,
    gateway: { instances: ir.gateway.instances, live: live.get(ir.gateway.id) ?? 0 },
    functions: ir.functions.map((f) => ({ id: f.id, name: f.name, language: f.language, instances: f.instances, live: live.get(f.id) ?? 0 })),
    routes,
    classifiers: [
      ...ir.xdp.map((s) => withCounters(s, xdp.find((x) => x.interface === s.interface))),
      ...(ir.tc ?? []).map((s) => withCounters(s, tc.find((x) => x.interface === s.interface && x.direction === s.direction))),
    ],
    ...(ir.packet?.chains.length ? { packetChains: packetChainsOfIr(ir) } : {}),
  };
}
