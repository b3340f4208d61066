/** Every bpfctl command, in the order `--help` lists them. Each file owns one command group. */
import { applyCommand } from './apply.ts';
import { buildCommand } from './build.ts';
import { diffCommand } from './diff.ts';
import { genCommand } from './gen.ts';
import { graphCommand } from './graph.ts';
import { linkCommand } from './link.ts';
import { loadCommand, unloadCommand } from './load.ts';
import { mapCommand } from './map.ts';
import { poolCommand } from './pool.ts';
import { progCommand } from './prog.ts';
import { routeCommand } from './route.ts';
import { runCommand, scaleCommand } from './run.ts';
import { statusCommand } from './status.ts';
import { topCommand } from './top.ts';
import { setCommand } from './set.ts';
import type { Command } from './types.ts';
import { xdpCommand } from './xdp.ts';

export const commands: Command[] = [buildCommand, loadCommand, unloadCommand, statusCommand, topCommand, routeCommand, diffCommand, applyCommand, graphCommand, poolCommand, progCommand, linkCommand, mapCommand, genCommand, xdpCommand, setCommand, runCommand, scaleCommand];
