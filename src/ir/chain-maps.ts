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

export { type ConfigValue, type CountersValue, configValue, countersValue, instancesValue, routeValue, sockKey };

/** The chain maps' names (docs/internals.md); the loader and `bpfctl status` open them by these. */
export const CHAIN_MAP_NAMES = ['routes', 'instances', 'socks', 'reg_ports', 'config', 'fn_stats', 'route_stats', 'drop_reasons'] as const;
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

/** A `routes` value: function ids in visiting order (an empty list removes the route). */
export function encodeRoute(hops: readonly number[]): Uint8Array {
  if (hops.length > MAX_HOPS) throw new RangeError(`a route has at most ${MAX_HOPS} hops, got ${hops.length}`);
  for (const h of hops) {
    if (!Number.isInteger(h) || h < 1 || h >= MAX_FUNCTIONS) throw new RangeError(`route hop must be a function id 1..${MAX_FUNCTIONS - 1}, got ${h}`);
  }
  const fn = Array.from({ length: MAX_HOPS }, (_, i) => hops[i] ?? 0);
  return encode(routeValue, { len: hops.length, fn });
}

/** Function ids of a `routes` value ([] for "no route"). */
export function decodeRoute(value: Uint8Array): number[] {
  const r = decode(routeValue, value);
  return r.fn.slice(0, Math.min(r.len, MAX_HOPS));
}

/**
 * The whole `routes` table for a policy: every id 0..MAX_ROUTES-1, unused ones with len 0, so
 * writing it replaces whatever an earlier version of the policy left there.
 */
export function routeTable(ir: Pick<PolicyIR, 'routes'>): MapEntry[] {
  const byId = new Map(ir.routes.map((r) => [r.id, r.hops]));
  return Array.from({ length: MAX_ROUTES }, (_, id) => ({ key: u32Key(id), value: encodeRoute(byId.get(id) ?? []) }));
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
  /** TCP port of the hub that function sockets connect to (sockops registration); 0 disables it. */
  hubPort: number;
}

export function encodeConfig(c: ChainConfig): Uint8Array {
  return encode(configValue, { pool_size: c.poolSize, data_off: c.dataOff, buf_size: c.bufSize, buf_count: c.bufCount, hub_port: c.hubPort, pad: 0 });
}

export function decodeConfig(value: Uint8Array): ChainConfig {
  const v = decode(configValue, value);
  return { poolSize: v.pool_size, dataOff: v.data_off, bufSize: v.buf_size, bufCount: v.buf_count, hubPort: v.hub_port };
}

/** A `reg_ports` entry: the supervisor reserves `port` for instance `inst` of function `fn`. */
export function regPortEntry(port: number, fn: number, inst: number): MapEntry {
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`TCP port must be 1..65535, got ${port}`);
  return { key: u32Key(port), value: u32Key(sockKey(fn, inst)) };
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
      JSON.stringify({ MAX_ROUTES, MAX_FUNCTIONS, MAX_HOPS, MAX_INSTANCES, MAX_SOCKS, DEAD_LETTER_KEY, drops: DROP_REASON_KEYS, maps: CHAIN_MAP_NAMES }),
    ].join('\n'),
  )
  .digest('hex');
