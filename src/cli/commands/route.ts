/**
 * `bpfctl route ls|set|del`: a policy's routes as the kernel has them, changed live. On a chain
 * that `bpfctl run` supervises, changes go through its supervisor (one change at a time with its
 * scaling and applies); otherwise they are written to the pinned maps directly. Either way a
 * change is one new route generation: requests under way finish on the version they started on.
 */
import { pathExists } from '../../deploy/access.ts';
import { openChainMaps } from '../../deploy/chain-maps.ts';
import { loadedManifest } from '../../deploy/policy.ts';
import { applyRouteChanges, liveRoutes, type RouteChange, type RouteChangeResult } from '../../deploy/routes.ts';
import type { RouteMethod } from '../../ir/chain-maps.ts';
import { askSupervisor, controlPath } from '../../runtime/supervisor/index.ts';
import { requirePrivileges } from '../privileges.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

/** Sends the changes to the running supervisor, or writes them when none runs the policy. */
export async function changeRoutes(policy: string, changes: RouteChange[]): Promise<RouteChangeResult[]> {
  loadedManifest(policy);
  if (pathExists(controlPath(policy))) {
    try {
      return (await askSupervisor(policy, { op: 'routes', changes })) as RouteChangeResult[];
    } catch (err) {
      // A socket file left by a supervisor that was killed: nobody runs the chain any more.
      if ((err as { code?: string }).code !== 'E_NOT_RUNNING') throw err;
    }
  }
  return applyRouteChanges(policy, changes);
}

const ls = defineCommand({
  command: 'ls <policy>',
  describe: 'List routes as the kernel has them, with counters (and versions still draining)',
  builder: (y) => y.positional('policy', { type: 'string', demandOption: true }),
  handler: (argv: Args<{ policy: string }>) => {
    const m = loadedManifest(argv.policy);
    const names = new Map([[0, 'gateway'], ...m.ir.functions.map((f) => [f.id, f.name] as [number, string])]);
    const cm = openChainMaps(argv.policy, undefined, m);
    try {
      const live = liveRoutes(cm);
      const row = (r: { slot: number; name: string; hops: number[]; methods: string[] }, state: string) => {
        const c = cm.routeStats.getSum(r.slot);
        return { route: r.name, slot: r.slot, state, functions: r.hops.map((h) => names.get(h) ?? `#${h}`), methods: r.methods, msgs: Number(c?.msgs ?? 0), drops: Number(c?.drops ?? 0) };
      };
      const rows = [...live.current.map((r) => row(r, 'current')), ...live.draining.map((r) => row(r, 'draining'))];
      argv.out.table(
        rows.map((r) => (argv.out.json ? r : { ...r, functions: r.functions.join(' -> '), methods: r.methods.join(',') })),
        ['route', 'slot', 'state', 'functions', 'methods', 'msgs', 'drops'],
      );
    } finally {
      cm.close();
    }
  },
});

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

const set = defineCommand({
  command: 'set <policy> <route> <functions..>',
  describe: 'Point a route at functions in order (creates the route if new); live, no reload',
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true })
      .positional('route', { type: 'string', demandOption: true, describe: "route name, e.g. '/hello'" })
      .positional('functions', { type: 'string', array: true, demandOption: true, describe: 'function names in visiting order' })
      .option('methods', { type: 'string', describe: `HTTP methods it accepts, comma-separated (${METHODS.join(',')}; default: as before, POST for a new route)` }),
  handler: async (argv: Args<{ policy: string; route: string; functions: string[]; methods?: string }>) => {
    requirePrivileges(`route set ${argv.policy}`, "it writes the policy's pinned routes map, or asks its supervisor");
    const fns = argv.functions.flatMap((f) => f.split(',')).filter(Boolean);
    const methods = argv.methods ? (argv.methods.split(',').map((m) => m.trim().toUpperCase()).filter(Boolean) as RouteMethod[]) : undefined;
    const [res] = await changeRoutes(argv.policy, [{ op: 'set', route: argv.route, functions: fns, methods }]);
    if (argv.out.json) argv.out.printJson({ policy: argv.policy, ...res });
    else argv.out.line(`${res!.op} route ${argv.route} (slot ${res!.slot}): ${fns.join(' -> ')}${res!.previous !== null ? ` (slot ${res!.previous} drains)` : ''}`);
  },
});

const del = defineCommand({
  command: 'del <policy> <route>',
  describe: 'Remove a route: new requests get 404, requests under way finish',
  builder: (y) => y.positional('policy', { type: 'string', demandOption: true }).positional('route', { type: 'string', demandOption: true }),
  handler: async (argv: Args<{ policy: string; route: string }>) => {
    requirePrivileges(`route del ${argv.policy}`, "it writes the policy's pinned routes map, or asks its supervisor");
    const [res] = await changeRoutes(argv.policy, [{ op: 'del', route: argv.route }]);
    if (argv.out.json) argv.out.printJson({ policy: argv.policy, ...res });
    else argv.out.line(`removed route ${argv.route} (slot ${res!.previous} drains)`);
  },
});

export const routeCommand = defineCommand({
  ...usage('route'),
  builder: (y) => y.command(ls).command(set).command(del).demandCommand(1),
  handler: () => {},
});
