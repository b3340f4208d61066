/**
 * What `bpfctl xdp status` shows: for each interface a policy classifies, the attachment (program,
 * link, mode), every rule with its live counters, the parser's own counters and the sets' sizes.
 * Rules are named from the IR kept in the policy's manifest; without one they are shown by index.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ifaceSlug } from '../codegen/xdp/index.ts';
import { type ClassifierSectionIR, describeAction, type XdpSectionIR } from '../ir/xdp.ts';
import { BpfLink, BpfMap, BpfProgram } from '../../loader/index.ts';
import { listSetNames, kindOfMap, setMapPath } from './xdp-sets.ts';
import { readSectionCounters } from './xdp-stats.ts';
import { currentMode, listXdpDeployments, xdpRoot } from './xdp.ts';

export interface XdpRuleStatus {
  index: number;
  name: string;
  match: string;
  action: string;
  counted: boolean;
  packets: bigint;
  bytes: bigint;
}

export interface XdpSectionStatus {
  interface: string;
  dir: string;
  mode: string;
  ifindex: number;
  progId: number;
  progName: string;
  progTag: string;
  linkId: number;
  rules: XdpRuleStatus[];
  malformed: { packets: bigint; bytes: bigint };
  fragments: { packets: bigint; bytes: bigint };
  sets: { name: string; kind: string; size: number; maxEntries: number }[];
}

function countKeys(map: BpfMap): number {
  let n = 0;
  for (let k = map.nextKey(null); k; k = map.nextKey(k)) n++;
  return n;
}

/** What a classification section's directory says, whatever its hook (XDP, tc). */
export type SectionDirStatus = Omit<XdpSectionStatus, 'interface' | 'mode'> & { target: string };

/**
 * Reads one deployed section's directory (`link`, `prog`, `maps/`): attachment, rules with their
 * counters (named from `ir` when given, by index otherwise), parser counters and set sizes.
 * Shared with tc sections, whose directories have the same layout.
 * @throws LoaderError when a pin is unreadable
 */
export function sectionDirStatus(dir: string, ir: ClassifierSectionIR | undefined): SectionDirStatus {
  let progId = 0;
  let linkId = 0;
  let ifindex = 0;
  let target = '';
  if (existsSync(join(dir, 'link'))) {
    const link = BpfLink.openPinned(join(dir, 'link'));
    try {
      const info = link.info();
      linkId = link.id;
      progId = info.progId;
      target = info.target;
      ifindex = Number(/^ifindex:(\d+)/.exec(info.target)?.[1] ?? 0);
    } finally {
      link.close();
    }
  }
  let progName = '-';
  let progTag = '-';
  if (existsSync(join(dir, 'prog'))) {
    const p = BpfProgram.openPinned(join(dir, 'prog'));
    try {
      progName = p.name;
      progTag = p.tag;
      progId ||= p.id;
    } finally {
      p.close();
    }
  }
  const counters = readSectionCounters(dir);
  const rules: XdpRuleStatus[] = counters.rules.map((c, i) => {
    const r = ir?.rules[i];
    return {
      index: i,
      name: r?.name ?? `rule${i}`,
      match: r ? r.summary.replace(/ -> .*$/, '') : '?',
      action: r ? describeAction(r.action) : '?',
      counted: r?.count ?? true,
      ...c,
    };
  });
  rules.push({ index: counters.rules.length, name: '(default)', match: 'any', action: ir ? describeAction(ir.default) : '?', counted: true, ...counters.default });
  const sets = listSetNames(dir).map((name) => {
    const m = BpfMap.openPinned(setMapPath(dir, name));
    try {
      return { name, kind: kindOfMap(m) ?? m.type, size: countKeys(m), maxEntries: m.maxEntries };
    } finally {
      m.close();
    }
  });
  return { dir, target, ifindex, progId, progName, progTag, linkId, rules, malformed: counters.stats.malformed, fragments: counters.stats.fragment, sets };
}

/**
 * Status of every XDP section deployed under a policy directory. `sections` (the IR, e.g. from the
 * manifest) names the rules; `modes` are the modes recorded at deploy time.
 * @throws LoaderError when a pin is unreadable
 */
export function xdpStatus(pinDir: string, sections: readonly XdpSectionIR[] = [], modes: Readonly<Record<string, string>> = {}): XdpSectionStatus[] {
  return listXdpDeployments(pinDir).map((slug) => {
    const ir = sections.find((s) => s.interface === slug || ifaceSlug(s.interface) === slug);
    const { target, dir, ...st } = sectionDirStatus(join(xdpRoot(pinDir), slug), ir);
    return { interface: ir?.interface ?? slug, dir, mode: modes[ir?.interface ?? slug] ?? currentMode(target) ?? 'unknown', ...st };
  });
}
