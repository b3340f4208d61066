/**
 * Reading a deployed section's counters: `rule_stats` (one slot per rule, then the default
 * action) and `xdp_stats` (malformed, fragment), each a per-CPU `{ u64 packets; u64 bytes }`.
 */
import { join } from 'node:path';
import { XDP_MAPS, XDP_STATS } from '../codegen/xdp/index.ts';
import { BpfMap } from '../../loader/index.ts';

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

/** Sums slot `slot` of a per-CPU counter map over all CPUs. */
export function readCounter(map: BpfMap, slot: number): Counter {
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, slot, true);
  const v = map.lookup(key);
  const out = { packets: 0n, bytes: 0n };
  if (!v) return out;
  const view = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const stride = map.isPerCpu ? Math.ceil(map.valueSize / 8) * 8 : v.byteLength;
  for (let off = 0; off + 16 <= v.byteLength; off += stride) {
    out.packets += view.getBigUint64(off, true);
    out.bytes += view.getBigUint64(off + 8, true);
  }
  return out;
}

/** All slots of a counter map, in slot order. */
export function readCounters(map: BpfMap): Counter[] {
  return Array.from({ length: map.maxEntries }, (_, i) => readCounter(map, i));
}

export interface SectionCounters {
  /** rules[i] for rule i; the default action's counter is `default`. */
  rules: Counter[];
  default: Counter;
  stats: Record<(typeof XDP_STATS)[number], Counter>;
}

/** Counters of the section pinned in `dir` (`<pinDir>/xdp/<ifname>`). @throws LoaderError */
export function readSectionCounters(dir: string): SectionCounters {
  const rs = BpfMap.openPinned(join(dir, 'maps', XDP_MAPS.ruleStats));
  const xs = BpfMap.openPinned(join(dir, 'maps', XDP_MAPS.xdpStats));
  try {
    const all = readCounters(rs);
    const stats = Object.fromEntries(XDP_STATS.map((name, i) => [name, readCounter(xs, i)])) as SectionCounters['stats'];
    return { rules: all.slice(0, -1), default: all[all.length - 1] ?? { packets: 0n, bytes: 0n }, stats };
  } finally {
    rs.close();
    xs.close();
  }
}
