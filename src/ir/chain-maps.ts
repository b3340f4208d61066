/**
 * What the chain maps hold, as bytes: one definition that the supervisor (`bpfctl load`, route
 * changes, scaling), the runtime and the tests all use. The value layouts are the schemas in
 * src/schema/chain-maps.ts (which also emit the C structs), so TS and C cannot disagree.
 * Pure functions: nothing here touches the kernel.
 */
import { createHash } from 'node:crypto';
import { cStruct } from '../schema/c-decl.ts';
import {
  type ConfigValue,
  type CountersValue,
  configValue,
  countersValue,
  instancesValue,
  MAX_ROUTE_SLOTS,
  ROUTE_METHODS,
  ROUTE_NAME_MAX,
  type RouteMethod,
  routeValue,
  sockKey,
} from '../schema/chain-maps.ts';
import { decode, encode } from '../schema/encode.ts';
import { descriptor } from '../schema/descriptor.ts';
import {
  DEAD_LETTER_KEY,
  DESC_DROP_REASON_MASK,
  DESC_DROP_REASON_SHIFT,
  DESC_FLAG_DROPPED,
  DROP_REASON_KEYS,
  type DropReason,
  MAX_FUNCTIONS,
  MAX_HOPS,
  MAX_INSTANCES,
  MAX_ROUTES,
  MAX_SOCKS,
} from './chain-limits.ts';
import type { PolicyIR } from './policy.ts';

export { type ConfigValue, type CountersValue, configValue, countersValue, instancesValue, MAX_ROUTE_SLOTS, ROUTE_METHODS, type RouteMethod, routeValue, sockKey };

/** The chain maps' names (docs/internals.md); the loader and `bpfctl status` open them by these. */
export const CHAIN_MAP_NAMES = ['routes', 'instances', 'socks', 'config', 'fn_stats', 'route_stats', 'drop_reasons', 'gw_stats'] as const;
export type ChainMapName = (typeof CHAIN_MAP_NAMES)[number];

export interface MapEntry {
  key: Uint8Array;
  value: Uint8Array;
}

/** A u32 map key (every chain map is keyed by a little-endian u32). */
export function u32Key(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`map key must be a u32, got ${n}`);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, true);
  return out;
}

export function readU32Key(key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(0, true);
}

/** The `socks` key of an instance, as map key bytes. */
export function sockKeyBytes(fn: number, inst: number): Uint8Array {
  return u32Key(sockKey(fn, inst));
}

export const DEAD_LETTER_KEY_BYTES = u32Key(DEAD_LETTER_KEY);

/** One version of a route as its `routes` slot holds it. */
export interface RouteSlot {
  /** Function ids in visiting order ([] = a free slot). */
  hops: number[];
  /** The route generation that published this version (0 = free). */
  version: number;
  /** The generation that superseded or deleted it (0 = current). */
  retired: number;
  /** Wall-clock ms when it was retired: it is freed once drained (DRAIN_MS later). */
  retiredAtMs: number;
  methods: RouteMethod[];
  name: string;
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

export function methodBits(methods: readonly string[]): number {
  let bits = 0;
  for (const m of methods) {
    const i = ROUTE_METHODS.indexOf(m as RouteMethod);
    if (i < 0) throw new RangeError(`unknown HTTP method ${m} (${ROUTE_METHODS.join(', ')})`);
    bits |= 1 << i;
  }
  return bits;
}

export function methodsOf(bits: number): RouteMethod[] {
  return ROUTE_METHODS.filter((_, i) => bits & (1 << i));
}

/** A `routes` slot value. */
export function encodeRouteSlot(r: RouteSlot): Uint8Array {
  if (r.hops.length > MAX_HOPS) throw new RangeError(`a route has at most ${MAX_HOPS} hops, got ${r.hops.length}`);
  for (const h of r.hops) {
    if (!Number.isInteger(h) || h < 1 || h >= MAX_FUNCTIONS) throw new RangeError(`route hop must be a function id 1..${MAX_FUNCTIONS - 1}, got ${h}`);
  }
  const name = utf8.encode(r.name);
  if (name.length > ROUTE_NAME_MAX) throw new RangeError(`route name '${r.name}' is longer than ${ROUTE_NAME_MAX} bytes`);
  const nameBytes = new Uint8Array(ROUTE_NAME_MAX);
  nameBytes.set(name);
  return encode(routeValue, {
    len: r.hops.length,
    fn: Array.from({ length: MAX_HOPS }, (_, i) => r.hops[i] ?? 0),
    version: r.version,
    retired: r.retired,
    retired_at_ms: BigInt(r.retiredAtMs),
    methods: methodBits(r.methods),
    name_len: name.length,
    name: nameBytes,
  });
}

export function decodeRouteSlot(value: Uint8Array): RouteSlot {
  const v = decode(routeValue, value);
  const len = Math.min(v.name_len, ROUTE_NAME_MAX);
  return {
    hops: v.fn.slice(0, Math.min(v.len, MAX_HOPS)),
    version: v.version,
    retired: v.retired,
    retiredAtMs: Number(v.retired_at_ms),
    methods: methodsOf(v.methods),
    name: utf8d.decode(v.name.subarray(0, len)),
  };
}

export const FREE_SLOT = encodeRouteSlot({ hops: [], version: 0, retired: 0, retiredAtMs: 0, methods: [], name: '' });

/** Whether a slot is the current version of its route at generation `gen`. */
export function isCurrent(s: Pick<RouteSlot, 'version' | 'retired'>, gen: number): boolean {
  return s.version !== 0 && s.version <= gen && (s.retired === 0 || s.retired > gen);
}

/**
 * A `routes` value for a route that is live from generation 1 (what a policy is loaded with), e.g.
 * for tests that write routes directly. An empty hop list is a free slot.
 */
export function encodeRoute(hops: readonly number[], name = '', methods: RouteMethod[] = ['POST']): Uint8Array {
  if (hops.length === 0) return FREE_SLOT;
  return encodeRouteSlot({ hops: [...hops], version: 1, retired: 0, retiredAtMs: 0, methods, name });
}

/** Function ids of a `routes` value ([] for a free slot). */
export function decodeRoute(value: Uint8Array): number[] {
  return decodeRouteSlot(value).hops;
}

/** The generation a freshly loaded policy's routes are published at. */
export const INITIAL_ROUTES_GEN = 1;

/**
 * The whole `routes` table for a freshly loaded policy: route i in slot i at generation 1, every
 * other slot free, so writing it replaces whatever an earlier version of the policy left there.
 */
export function routeTable(ir: Pick<PolicyIR, 'routes'>): MapEntry[] {
  const byId = new Map(ir.routes.map((r) => [r.id, r]));
  return Array.from({ length: MAX_ROUTE_SLOTS }, (_, id) => {
    const r = byId.get(id);
    return { key: u32Key(id), value: r ? encodeRoute(r.hops, r.name, r.methods) : FREE_SLOT };
  });
}

/** An `instances` value: the live instance ids of a function (empty: none live). */
export function encodeInstances(ids: readonly number[]): Uint8Array {
  if (ids.length > MAX_INSTANCES) throw new RangeError(`a function has at most ${MAX_INSTANCES} live instances, got ${ids.length}`);
  for (const i of ids) {
    if (!Number.isInteger(i) || i < 0 || i > 0xffff) throw new RangeError(`instance id must be 0..65535, got ${i}`);
  }
  const inst = Array.from({ length: MAX_INSTANCES }, (_, i) => ids[i] ?? 0);
  return encode(instancesValue, { count: ids.length, inst });
}

export function decodeInstances(value: Uint8Array): number[] {
  const v = decode(instancesValue, value);
  return v.inst.slice(0, Math.min(v.count, MAX_INSTANCES));
}

/**
 * The `instances` table when every instance the policy declares is live (ids 0..n-1), the
 * gateway included. The supervisor writes a function's entry as its instances come and go.
 */
export function instancesTable(ir: Pick<PolicyIR, 'gateway' | 'functions'>): MapEntry[] {
  return [ir.gateway, ...ir.functions].map((f) => ({
    key: u32Key(f.id),
    value: encodeInstances(Array.from({ length: f.instances }, (_, i) => i)),
  }));
}

export interface ChainConfig {
  /** Bytes of the whole pool mapping. */
  poolSize: number;
  /** Offset of buffer 0 from the start of the mapping (after the pool header). */
  dataOff: number;
  bufSize: number;
  bufCount: number;
  /** TCP port of the hub that function sockets connect to. */
  hubPort: number;
  /** Route generation (see routeValue). */
  routesGen: number;
}

export function encodeConfig(c: ChainConfig): Uint8Array {
  return encode(configValue, { pool_size: c.poolSize, data_off: c.dataOff, buf_size: c.bufSize, buf_count: c.bufCount, hub_port: c.hubPort, routes_gen: c.routesGen });
}

export function decodeConfig(value: Uint8Array): ChainConfig {
  const v = decode(configValue, value);
  return { poolSize: v.pool_size, dataOff: v.data_off, bufSize: v.buf_size, bufCount: v.buf_count, hubPort: v.hub_port, routesGen: v.routes_gen };
}

/** Per-CPU value buffers hold one slot per possible CPU, each rounded up to 8 bytes. */
function perCpuSlots(buf: Uint8Array, valueSize: number, cpus: number): Uint8Array[] {
  const stride = Math.ceil(valueSize / 8) * 8;
  if (buf.length < stride * cpus) throw new RangeError(`per-CPU value of ${buf.length} bytes is too short for ${cpus} CPUs x ${stride}`);
  return Array.from({ length: cpus }, (_, i) => buf.subarray(i * stride, i * stride + valueSize));
}

/** `fn_stats` / `route_stats`: sums a per-CPU lookup result over CPUs. */
export function sumCounters(perCpu: Uint8Array, cpus: number): CountersValue {
  const total: CountersValue = { msgs: 0n, bytes: 0n, drops: 0n };
  for (const slot of perCpuSlots(perCpu, countersValue.size, cpus)) {
    const c = decode(countersValue, slot);
    total.msgs += c.msgs;
    total.bytes += c.bytes;
    total.drops += c.drops;
  }
  return total;
}

/** A `drop_reasons` per-CPU value, summed. */
export function sumCount(perCpu: Uint8Array, cpus: number): bigint {
  let n = 0n;
  for (const slot of perCpuSlots(perCpu, 8, cpus)) n += new DataView(slot.buffer, slot.byteOffset, 8).getBigUint64(0, true);
  return n;
}

/** Reads a descriptor's `flags`: whether the sk_msg program refused it and why. */
export function dropOf(flags: number): { dropped: false } | { dropped: true; reason: DropReason | 'unknown' } {
  if (!(flags & DESC_FLAG_DROPPED)) return { dropped: false };
  const reason = DROP_REASON_KEYS[(flags & DESC_DROP_REASON_MASK) >> DESC_DROP_REASON_SHIFT];
  return { dropped: true, reason: reason ?? 'unknown' };
}

/**
 * A hash of everything the chain maps' layout depends on (value structs, descriptor, sizes). Two
 * builds with the same layout hash can share pinned maps even when their policies differ (a
 * route change is a map update); the IR's `hash` changes with every policy edit.
 */
export const CHAIN_LAYOUT_HASH: string = createHash('sha256')
  .update(
    [
      cStruct(descriptor),
      cStruct(routeValue),
      cStruct(instancesValue),
      cStruct(configValue),
      cStruct(countersValue),
      JSON.stringify({ MAX_ROUTES, MAX_ROUTE_SLOTS, MAX_FUNCTIONS, MAX_HOPS, MAX_INSTANCES, MAX_SOCKS, DEAD_LETTER_KEY, drops: DROP_REASON_KEYS, maps: CHAIN_MAP_NAMES }),
    ].join('\n'),
  )
  .digest('hex');
