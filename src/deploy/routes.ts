/**
 * Live route changes: a route is one entry in the `routes` map, so changing, adding or removing
 * one is a map write (no reload). The manifest's copy of the IR is rewritten to match, so status,
 * the gateway and later changes see the same routes. Route ids stay stable: descriptors in flight
 * carry them.
 */
import { hashIR, type PolicyIR, PolicyError, type RouteIR } from '../ir/policy.ts';
import { lowerRoutes } from '../ir/chain.ts';
import { MAX_ROUTES } from '../schema/index.ts';
import { encodeRoute, u32Key } from '../ir/chain-maps.ts';
import { openChainMaps } from './chain-maps.ts';
import { writeManifest } from './manifest.ts';
import { pinRoot, policyDir } from './paths.ts';
import { loadedManifest } from './policy.ts';

export type RouteChange = { op: 'set'; route: string; functions: string[] } | { op: 'del'; route: string };

/**
 * Applies one change. `set` creates the route when it does not exist.
 * @throws PolicyError naming the route and hop for unknown functions, empty or too-long routes.
 */
export function changeRoute(policy: string, change: RouteChange, root = pinRoot()): { route: RouteIR | null; created: boolean } {
  const manifest = loadedManifest(policy, root);
  const ir = manifest.ir;
  const existing = ir.routes.find((r) => r.name === change.route);
  if (change.op === 'del' && !existing) {
    throw new PolicyError([{ path: `routes['${change.route}']`, message: `no route '${change.route}' in policy ${policy} (routes: ${ir.routes.map((r) => r.name).join(', ')})` }]);
  }
  let next: RouteIR | null = null;
  let routes: RouteIR[];
  if (change.op === 'set') {
    const found: { path: string; message: string }[] = [];
    const [lowered] = lowerRoutes({ [change.route]: change.functions }, ir.functions, {
      add: (p, message) => found.push({ path: p.map((s) => (typeof s === 'number' ? `[${s}]` : s === 'routes' ? 'routes' : `['${s}']`)).join(''), message }),
    });
    if (found.length || !lowered) throw new PolicyError(found.length ? found : [{ path: `routes['${change.route}']`, message: 'invalid route' }], { policy });
    const id = existing?.id ?? freeRouteId(ir);
    next = { ...lowered, id };
    routes = existing ? ir.routes.map((r) => (r.id === id ? next! : r)) : [...ir.routes, next];
  } else {
    routes = ir.routes.filter((r) => r.name !== change.route);
  }
  const cm = openChainMaps(policy, root, manifest);
  try {
    // An empty hop list is len 0 = no such route: descriptors still in flight on it are dropped and counted.
    cm.routes.map.update(u32Key(next?.id ?? existing!.id), encodeRoute(next?.hops ?? []));
  } finally {
    cm.close();
  }
  const newIr: PolicyIR = { ...ir, routes };
  newIr.hash = hashIR(newIr);
  writeManifest(policyDir(policy, root), { ...manifest, ir: newIr });
  return { route: next, created: change.op === 'set' && !existing };
}

function freeRouteId(ir: PolicyIR): number {
  const used = new Set(ir.routes.map((r) => r.id));
  for (let id = 0; id < MAX_ROUTES; id++) if (!used.has(id)) return id;
  throw new PolicyError([{ path: 'routes', message: `policy ${ir.name} already has ${MAX_ROUTES} routes (the most a policy can have)` }]);
}

