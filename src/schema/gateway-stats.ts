/**
 * The gateway statistics block: one slot per gateway instance in the policy's pinned map
 * `gw_stats`, written by that gateway process and summed by metrics readers. The layout is
 * defined by `bpf/include/bpfctl/gateway_stats.h` (what a native gateway includes, and what the
 * chain object declares the map with); these are its numbers for TypeScript, and
 * `test/unit/gateway-stats-layout.test.ts` compiles the header and checks every one of them.
 * Change both together (and bump VERSION). docs/metrics.md says what each field counts.
 *
 * Every counter is a float64 (see the header: one 8-byte store without a BigInt from JS).
 */
import { MAX_INSTANCES, MAX_ROUTE_SLOTS } from './chain-maps.ts';

/** "BGWS" in memory (little-endian u32). */
export const MAGIC = 0x53574742;
export const VERSION = 1;
/** One slot per gateway instance (gw_inst). */
export const SLOTS = MAX_INSTANCES;
export const ENGINE = { node: 1, native: 2 } as const;
export type GatewayEngine = keyof typeof ENGINE;
/** status[code] for 100..599; status[0] counts anything else. */
export const STATUS_CODES = 600;
/** Upper bounds (seconds) of the latency buckets; the bucket after the last is +Inf. */
export const LATENCY_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
export const LATENCY_BUCKETS = LATENCY_BOUNDS.length + 1;
/** route_replies[slot] for every slot of the routes map. */
export const ROUTE_SLOTS = MAX_ROUTE_SLOTS;

/** Byte offsets inside one slot. */
export const OFF = {
  magic: 0, // u32, written last when a writer sets the slot up
  version: 4, // u32
  engine: 8, // u32 ENGINE
  pid: 12, // u32
  started: 16, // f64 unix seconds
  latencySum: 24, // f64 seconds
  latency: 64, // f64[LATENCY_BUCKETS], not cumulative
  status: 256, // f64[STATUS_CODES]
  routeReplies: 5056, // f64[ROUTE_SLOTS]
  routeVersion: 13248, // u32[ROUTE_SLOTS]: the version routeReplies[slot] counts
} as const;
/** Bytes of one slot (a multiple of 64: no two gateways write one cache line). */
export const SLOT_SIZE = 17344;

/** The index of `status` a response with this HTTP status is counted at. */
export function statusIndex(status: number): number {
  return status >= 100 && status < STATUS_CODES ? status : 0;
}

/** The latency bucket an observation of `seconds` falls in (LATENCY_BOUNDS.length = +Inf). */
export function latencyBucket(seconds: number): number {
  let b = 0;
  while (b < LATENCY_BOUNDS.length && seconds > LATENCY_BOUNDS[b]!) b++;
  return b;
}

export function engineName(code: number): GatewayEngine | 'unknown' {
  for (const [k, v] of Object.entries(ENGINE)) if (v === code) return k as GatewayEngine;
  return 'unknown';
}
