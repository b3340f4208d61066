/**
 * The counters of a policy's XDP sections: every counted rule and the default action
 * (`rule_stats`), and what the parser set aside (`xdp_stats`). Sets are not walked: a block list
 * may hold a million entries, and a scrape must stay cheap.
 */
import { existsSync } from 'node:fs';
import { readSectionCounters } from '../deploy/xdp-stats.ts';
import { xdpDir } from '../deploy/xdp.ts';
import type { XdpSectionIR } from '../ir/xdp.ts';

export interface XdpReading {
  interface: string;
  rules: { name: string; packets: number; bytes: number }[];
  parser: { reason: string; packets: number }[];
}

/** Name of the default action's counter in `rule`. */
export const DEFAULT_RULE = '(default)';

/** @throws LoaderError when a section's pins are unreadable */
export function readXdp(pinDir: string, sections: readonly XdpSectionIR[]): XdpReading[] {
  const out: XdpReading[] = [];
  for (const s of sections) {
    const dir = xdpDir(pinDir, s.interface);
    if (!existsSync(dir)) continue;
    const c = readSectionCounters(dir);
    const rules = s.rules.filter((r) => r.count).map((r) => ({ name: r.name, packets: Number(c.rules[r.index]?.packets ?? 0n), bytes: Number(c.rules[r.index]?.bytes ?? 0n) }));
    rules.push({ name: DEFAULT_RULE, packets: Number(c.default.packets), bytes: Number(c.default.bytes) });
    const parser = Object.entries(c.stats).map(([reason, v]) => ({ reason, packets: Number(v.packets) }));
    out.push({ interface: s.interface, rules, parser });
  }
  return out;
}
