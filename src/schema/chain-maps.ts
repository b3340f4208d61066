/**
 * Value schemas of the chain maps (docs/internals.md, "Chain maps"). The generated C and the
 * runtime both take their layout from here.
 */
import type { Infer } from './codec.ts';
import { array } from './array.ts';
import { u16, u32, u64 } from './ints.ts';
import { struct } from './struct.ts';

export const MAX_ROUTES = 64;
export const MAX_FUNCTIONS = 64;
export const MAX_ROUTE_LEN = 16;
export const MAX_INSTANCES = 32;

/** `routes[route id]`: the functions a request visits in order; len 0 = no such route. */
export const routeValue = struct('bpfctl_route', { len: u32, fn: array(u16, MAX_ROUTE_LEN) });
export type RouteValue = Infer<typeof routeValue>;

/** `instances[function id]`: the live instance ids of a function. */
export const instancesValue = struct('bpfctl_instances', { count: u32, inst: array(u16, MAX_INSTANCES) });
export type InstancesValue = Infer<typeof instancesValue>;

/** `config[0]`: pool geometry and the hub port sockops registration watches. */
export const configValue = struct('bpfctl_config', {
  pool_size: u32,
  data_off: u32,
  buf_size: u32,
  buf_count: u32,
  hub_port: u32,
  pad: u32,
});
export type ConfigValue = Infer<typeof configValue>;

/** `fn_stats` / `route_stats` (per-CPU): summed over CPUs when read. */
export const countersValue = struct('bpfctl_counters', { msgs: u64, bytes: u64, drops: u64 });
export type CountersValue = Infer<typeof countersValue>;

/** `socks` key and `reg_ports` value: function id in the high half, instance in the low. */
export function sockKey(fn: number, inst: number): number {
  return ((fn & 0xffff) << 16 | (inst & 0xffff)) >>> 0;
}

/** Reasons counted in `drop_reasons`, by index. */
export const DROP_REASONS = ['short/malformed', 'unknown route', 'bad hop', 'bad buffer', 'no live instance', 'dead socket'] as const;
