/**
 * The gateways' statistics block (`maps/gw_stats`, bpf/include/bpfctl/gateway_stats.h) as plain
 * numbers: one reading per slot some gateway process has set up. Mapped read-only for the
 * reading and unmapped after, so a reader never holds a map that a reload has replaced.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, mmapArray } from '../../loader/index.ts';
import type { ChainMapName } from '../ir/chain-maps.ts';
import { engineName, LATENCY_BUCKETS, MAGIC, OFF, ROUTE_SLOTS, SLOT_SIZE, STATUS_CODES, VERSION } from '../schema/gateway-stats.ts';

export interface GatewayReading {
  instance: number;
  engine: string;
  pid: number;
  /** Responses by status code (0 = outside 100..599); only codes seen. */
  statuses: Map<number, number>;
  /** Latency buckets, not cumulative (the last is +Inf). */
  latency: number[];
  latencySum: number;
  /** route slot -> [version counted, replies], for slots with replies. */
  routeReplies: Map<number, [number, number]>;
}

const MAP = 'gw_stats' satisfies ChainMapName;

/** Every set-up slot of `<pinDir>/maps/gw_stats` ([] when the policy has no chain). @throws LoaderError */
export function readGateways(pinDir: string): GatewayReading[] {
  const path = join(pinDir, 'maps', MAP);
  if (!existsSync(path)) return [];
  const map = BpfMap.openPinned(path);
  let mapped: ReturnType<typeof mmapArray>;
  try {
    // A map of another layout (pinned by another bpfctl) is not misread: no gateway numbers then.
    if (map.valueSize !== SLOT_SIZE) return [];
    mapped = mmapArray(map);
  } finally {
    map.close();
  }
  try {
    const out: GatewayReading[] = [];
    for (let i = 0; i < mapped.entries; i++) {
      const base = i * SLOT_SIZE;
      const v = mapped.view;
      if (v.getUint32(base + OFF.magic, true) !== MAGIC || v.getUint32(base + OFF.version, true) !== VERSION) continue;
      const f = (off: number) => v.getFloat64(base + off, true);
      const statuses = new Map<number, number>();
      for (let c = 0; c < STATUS_CODES; c++) {
        const n = f(OFF.status + 8 * c);
        if (n > 0) statuses.set(c, n);
      }
      const routeReplies = new Map<number, [number, number]>();
      for (let s = 0; s < ROUTE_SLOTS; s++) {
        const n = f(OFF.routeReplies + 8 * s);
        if (n > 0) routeReplies.set(s, [v.getUint32(base + OFF.routeVersion + 4 * s, true), n]);
      }
      out.push({
        instance: i,
        engine: engineName(v.getUint32(base + OFF.engine, true)),
        pid: v.getUint32(base + OFF.pid, true),
        statuses,
        latency: Array.from({ length: LATENCY_BUCKETS }, (_, b) => f(OFF.latency + 8 * b)),
        latencySum: f(OFF.latencySum),
        routeReplies,
      });
    }
    return out;
  } finally {
    mapped.unmap();
  }
}
