/**
 * Every bpfctl command, loaded on demand: importing one command module pulls in only what it uses.
 */
import type { CommandName } from './catalog.ts';
import type { Command } from './types.ts';

export { CATALOG, type CommandName } from './catalog.ts';

/** The module of each command, imported when that command runs (or its --help is asked for). */
export const LOADERS: Record<CommandName, () => Promise<Command>> = {
  build: async () => (await import('./build.ts')).buildCommand,
  load: async () => (await import('./load.ts')).loadCommand,
  unload: async () => (await import('./load.ts')).unloadCommand,
  status: async () => (await import('./status.ts')).statusCommand,
  top: async () => (await import('./top.ts')).topCommand,
  route: async () => (await import('./route.ts')).routeCommand,
  diff: async () => (await import('./diff.ts')).diffCommand,
  apply: async () => (await import('./apply.ts')).applyCommand,
  graph: async () => (await import('./graph.ts')).graphCommand,
  pool: async () => (await import('./pool.ts')).poolCommand,
  prog: async () => (await import('./prog.ts')).progCommand,
  link: async () => (await import('./link.ts')).linkCommand,
  map: async () => (await import('./map.ts')).mapCommand,
  gen: async () => (await import('./gen.ts')).genCommand,
  xdp: async () => (await import('./xdp.ts')).xdpCommand,
  set: async () => (await import('./set.ts')).setCommand,
  run: async () => (await import('./run.ts')).runCommand,
  scale: async () => (await import('./run.ts')).scaleCommand,
  metrics: async () => (await import('./metrics.ts')).metricsCommand,
  agent: async () => (await import('./agent.ts')).agentCommand,
  k8s: async () => (await import('./k8s.ts')).k8sCommand,
};
