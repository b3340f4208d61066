/**
 * The chain's kernel-side numbers of a loaded policy, read from its pins at one moment: every
 * route version in the table (current and draining) with its `route_stats`, every function with
 * its `fn_stats` and live instances, and `drop_reasons`.
 */
import { DROP_REASON_KEYS, GATEWAY_NAME } from '../ir/chain-limits.ts';
import type { ChainMaps } from '../deploy/chain-maps.ts';
import { liveRoutes } from '../deploy/routes.ts';
import type { PolicyIR } from '../ir/policy.ts';

export interface RouteReading {
  slot: number;
  name: string;
  version: number;
  msgs: number;
  bytes: number;
  drops: number;
}

export interface FunctionReading {
  id: number;
  name: string;
  declared: number;
  live: number[];
  msgs: number;
  bytes: number;
  drops: number;
}

export interface ChainReading {
  routes: RouteReading[];
  functions: FunctionReading[];
  drops: { reason: string; count: number }[];
}

const num = (v: bigint | undefined) => Number(v ?? 0n);

export function readChain(cm: ChainMaps, ir: Pick<PolicyIR, 'gateway' | 'functions'>): ChainReading {
  const table = liveRoutes(cm);
  const versions = [...table.current, ...table.draining].sort((a, b) => a.slot - b.slot);
  const stats = cm.routeStats.getMany(versions.map((r) => r.slot));
  const routes = versions.map((r, i) => ({ slot: r.slot, name: r.name, version: r.version, msgs: num(stats[i]?.msgs), bytes: num(stats[i]?.bytes), drops: num(stats[i]?.drops) }));
  const fns = [{ id: ir.gateway.id, name: GATEWAY_NAME, instances: ir.gateway.instances }, ...ir.functions];
  const fnStats = cm.fnStats.getMany(fns.map((f) => f.id));
  const functions = fns.map((f, i) => {
    const inst = cm.instances.get(f.id);
    const s = fnStats[i];
    return { id: f.id, name: f.name, declared: f.instances, live: inst ? inst.inst.slice(0, inst.count) : [], msgs: num(s?.msgs), bytes: num(s?.bytes), drops: num(s?.drops) };
  });
  const counts = cm.dropReasons.getMany(DROP_REASON_KEYS.map((_, i) => i));
  const drops = DROP_REASON_KEYS.map((reason, i) => ({ reason, count: num(counts[i]) }));
  return { routes, functions, drops };
}
