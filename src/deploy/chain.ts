/**
 * Puts a policy's function-chain dataplane into the kernel: compile the fixed chain program
 * (bpf/chain), load it (the verifier runs here), then pin maps and programs, fill the route and config maps, and
 * attach sk_msg to the sockhash. Sockets enter the sockhash only through the supervisor, which
 * holds each instance's socket (src/runtime/supervisor/registry.ts); the policy's cgroup holds its
 * processes.
 *
 * Split in two so a replacement is safe: `prepareChain` does everything that can fail on bad code
 * (compile, verify) without touching what is loaded; `installChain` pins and attaches.
 */
import { join } from 'node:path';
import { CHAIN_PROGRAMS, CHAIN_SOURCE } from '../codegen/chain/index.ts';
import { compileBpf } from '../compile/index.ts';
import { type ChainMapName, INITIAL_ROUTES_GEN, routeTable } from '../ir/chain-maps.ts';
import type { PolicyIR } from '../ir/policy.ts';
import { poolLayout } from '../schema/index.ts';
import { TypedMap } from '../maps/typed-map.ts';
import { type ConfigValue, configValue, u32 } from '../schema/index.ts';
import { BpfObject } from '../../loader/index.ts';
import { ensureCgroup } from './cgroup.ts';
import { policyCgroup } from './paths.ts';

export interface PreparedChain {
  object: BpfObject;
  objectPath: string;
  cached: boolean;
}

export function hasChain(ir: PolicyIR): boolean {
  return ir.functions.length > 0 && ir.routes.length > 0;
}

/**
 * Compile (once per bpfctl version: the program is the same for every policy, so the cache has it
 * after the first) and load (verify) the chain object. Nothing is pinned or attached yet.
 */
export function prepareChain(ir: PolicyIR, progress: (s: string) => void = () => {}): PreparedChain {
  progress('compiling bpf/chain/chain.bpf.c');
  const { objectPath, cached } = compileBpf(CHAIN_SOURCE);
  progress(`loading ${objectPath}${cached ? ' (cached build)' : ''}`);
  const object = BpfObject.open(objectPath, { name: ir.name });
  try {
    object.load();
  } catch (err) {
    object.close();
    throw err;
  }
  return { object, objectPath, cached };
}

/** The config map's value for a policy: pool geometry as the runtime lays the pool out. */
export function chainConfig(ir: PolicyIR, hubPort = 0): ConfigValue {
  const g = poolLayout.geometry(ir.pool.bufferSize, ir.pool.bufferCount);
  return { pool_size: g.totalSize, data_off: g.dataOff, buf_size: g.bufSize, buf_count: g.bufCount, hub_port: hubPort, routes_gen: INITIAL_ROUTES_GEN };
}

/**
 * Pins the prepared chain under `dir`, fills routes and config, attaches. Returns the pinned
 * paths (relative to dir). Closes the object: from here on the pins keep everything alive.
 * (No links: a sockmap attachment lives as long as the map.)
 */
export function installChain(ir: PolicyIR, dir: string, prepared: PreparedChain): { progs: string[]; maps: string[]; links: string[]; cgroup: string } {
  const { object } = prepared;
  const pins = { progs: [] as string[], maps: [] as string[], links: [] as string[] };
  try {
    for (const spec of object.maps) {
      if (spec.name.startsWith('.')) continue; // .rodata/.bss are internal to the object
      object.map(spec.name).pin(join(dir, 'maps', spec.name));
      pins.maps.push(`maps/${spec.name}`);
    }
    for (const spec of object.programs) {
      object.program(spec.name).pin(join(dir, 'progs', spec.name));
      pins.progs.push(`progs/${spec.name}`);
    }
    const routes = routeTable(ir);
    object.map('routes' satisfies ChainMapName).updateBatch(
      routes.map((e) => e.key),
      routes.map((e) => e.value),
    );
    new TypedMap(object.map('config' satisfies ChainMapName), u32, configValue).set(0, chainConfig(ir));
    // sk_msg first, sockets later (gotcha 2): nothing is registered before this attach.
    object.program(CHAIN_PROGRAMS.msg).attachSockMap(object.map('socks' satisfies ChainMapName), 'msg_verdict');
    const cgroup = policyCgroup(ir.name);
    ensureCgroup(cgroup);
    return { ...pins, cgroup };
  } finally {
    object.close();
  }
}
