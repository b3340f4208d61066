/**
 * Value schemas of the chain maps (docs/internals.md, "Chain maps"). The generated C and the
 * runtime both take their layout from here.
 */
import type { Infer } from './codec.ts';
import { array } from './array.ts';
import { bytes } from './bytes.ts';
import { u16, u32, u64 } from './ints.ts';
import { struct } from './struct.ts';

/** Routes a policy may have at once. */
export const MAX_ROUTES = 64;
/**
 * Entries of the `routes` map. A route change never rewrites the entry descriptors in flight are
 * using: it writes a new version into a free slot and retires the old one, which keeps routing
 * until it has drained. So there are more slots than routes, for versions still draining.
 */
export const MAX_ROUTE_SLOTS = 1024;
export const MAX_FUNCTIONS = 64;
export const MAX_ROUTE_LEN = 16;
export const MAX_INSTANCES = 32;
/** Bytes of a route's name in its slot (the policy's limit on route names). */
export const ROUTE_NAME_MAX = 64;

/**
 * `routes[slot]`: one version of a route. The kernel reads `len` and `fn` (len 0 = free slot);
 * gateways and functions read the rest from a read-only mapping of the map: a slot is current
 * for its name when `version` is set, `version <= config.routes_gen` and it is not retired at
 * that generation. `methods` is a bit per HTTP method (ROUTE_METHODS).
 */
export const routeValue = struct('bpfctl_route', {
  len: u32,
  fn: array(u16, MAX_ROUTE_LEN),
  version: u32,
  retired: u32,
  retired_at_ms: u64,
  methods: u32,
  name_len: u32,
  name: bytes(ROUTE_NAME_MAX),
});
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
  /** Bumped after every route change is written: readers of the mapped table rescan when it moves. */
  routes_gen: u32,
});
export type ConfigValue = Infer<typeof configValue>;

/** `fn_stats` / `route_stats` (per-CPU): summed over CPUs when read. */
export const countersValue = struct('bpfctl_counters', { msgs: u64, bytes: u64, drops: u64 });
export type CountersValue = Infer<typeof countersValue>;

/** `socks` key: function id in the high half, instance in the low. */
export function sockKey(fn: number, inst: number): number {
  return ((fn & 0xffff) << 16 | (inst & 0xffff)) >>> 0;
}

/** Reasons counted in `drop_reasons`, by index. */
export const DROP_REASONS = ['short/malformed', 'unknown route', 'bad hop', 'bad buffer', 'no live instance', 'dead socket'] as const;

/** HTTP methods a route may accept, as the bits of `bpfctl_route.methods`. */
export const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];
