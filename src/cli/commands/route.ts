/** `bpfctl route ls|set|del`: a policy's routes, changed live by writing the routes map. */
import { changeRoute } from '../../deploy/routes.ts';
import { policyStatus } from '../../deploy/status.ts';
import { type Args, defineCommand } from './types.ts';

const ls = defineCommand({
  command: 'ls <policy>',
  describe: 'List routes with their functions and counters',
  builder: (y) => y.positional('policy', { type: 'string', demandOption: true }),
  handler: (argv: Args<{ policy: string }>) => {
    const s = policyStatus(argv.policy);
    argv.out.table(
      s.routes.map((r) => (argv.out.json ? r : { ...r, functions: r.functions.join(' -> ') || '(disabled)' })),
      ['id', 'name', 'functions', 'msgs', 'bytes', 'drops'],
    );
  },
});

const set = defineCommand({
  command: 'set <policy> <route> <functions..>',
  describe: 'Point a route at functions in order (creates the route if new); takes effect without a reload',
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true })
      .positional('route', { type: 'string', demandOption: true, describe: "route name, e.g. '/hello'" })
      .positional('functions', { type: 'string', array: true, demandOption: true, describe: 'function names in visiting order' }),
  handler: (argv: Args<{ policy: string; route: string; functions: string[] }>) => {
    const fns = argv.functions.flatMap((f) => f.split(',')).filter(Boolean);
    const res = changeRoute(argv.policy, { op: 'set', route: argv.route, functions: fns });
    if (argv.out.json) argv.out.printJson({ policy: argv.policy, created: res.created, route: res.route });
    else argv.out.line(`${res.created ? 'added' : 'updated'} route ${argv.route} (id ${res.route?.id}): ${fns.join(' -> ')}`);
  },
});

const del = defineCommand({
  command: 'del <policy> <route>',
  describe: 'Remove a route; descriptors still on it are dropped and counted',
  builder: (y) => y.positional('policy', { type: 'string', demandOption: true }).positional('route', { type: 'string', demandOption: true }),
  handler: (argv: Args<{ policy: string; route: string }>) => {
    changeRoute(argv.policy, { op: 'del', route: argv.route });
    if (argv.out.json) argv.out.printJson({ policy: argv.policy, removed: argv.route });
    else argv.out.line(`removed route ${argv.route}`);
  },
});

export const routeCommand = defineCommand({
  command: 'route <command>',
  describe: 'List and change routes of a loaded policy, live',
  builder: (y) => y.command(ls).command(set).command(del).demandCommand(1),
  handler: () => {},
});
