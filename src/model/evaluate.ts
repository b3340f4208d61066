/**
 * The reference model of a classification section: for a frame's bytes, what the generated
 * program does with it. The parse (malformed, a later fragment, or the fields the rules read),
 * the rule that decides (first match in policy order, else the default), the verdict the hook
 * returns and the counters that move, exactly as the C does them:
 *
 * - malformed: xdp_stats[0] counts it, no rule sees it, the verdict is the section's `malformed`;
 * - a later fragment: xdp_stats[1] counts it, then the rules run (no L4 fields to match);
 * - the rule that hits counts in rule_stats[index] unless `count: false`; the default action
 *   always counts, in rule_stats[rules.length]. Bytes are the frame's length.
 *
 * Pure: no kernel, no files. Set contents and the fd maps' state come in as arguments.
 */
import { XDP_MAPS, XDP_STATS } from '../codegen/xdp/maps.ts';
import { BpfctlError } from '../errors.ts';
import { describeAction, type XdpActionIR, type XdpRuleIR, type ClassifierSectionIR } from '../ir/xdp.ts';
import { type Layer, type ParseResult, parseFrame, type Pkt } from './frame.ts';
import { type Decision, HOOK_MODELS, type Hook, type ModelEnv, malformedVerdict } from './hooks.ts';
import { type Check, compileRule, type ModelRule, ruleMatches } from './match.ts';
import { compileSets, type SetContents } from './sets.ts';

/** One counter slot moving: `map` is rule_stats or xdp_stats. */
export interface CounterMove {
  readonly map: string;
  readonly slot: number;
  /** rule_stats: the rule's name or `default`; xdp_stats: `malformed` or `fragment`. */
  readonly name: string;
  readonly packets: 1;
  readonly bytes: number;
}

export interface CheckResult {
  readonly field: Check['field'];
  readonly want: string;
  readonly got: string;
  readonly ok: boolean;
}

/** A rule the frame was tried against before the decision: the checks up to the first that failed. */
export interface RuleTry {
  readonly index: number;
  readonly name: string;
  readonly matched: boolean;
  readonly checks: readonly CheckResult[];
}

export type Hit =
  | { readonly kind: 'malformed' }
  | { readonly kind: 'rule'; readonly rule: XdpRuleIR }
  | { readonly kind: 'default' };

export interface Outcome {
  readonly hook: Hook;
  readonly bytes: number;
  readonly parse: ParseResult;
  readonly hit: Hit;
  /** The action carried out; null for a malformed frame (its verdict is the section's `malformed`). */
  readonly action: XdpActionIR | null;
  readonly verdict: { readonly name: string; readonly value: number; readonly note?: string };
  readonly counters: readonly CounterMove[];
  /** With `explain`: the headers read, and every rule tried (the last one decided, when a rule did). */
  readonly layers?: readonly Layer[];
  readonly tried?: readonly RuleTry[];
}

/** An action the hook cannot carry out (the codegen refuses such a section, e.g. AF_XDP at tc). */
export class ModelHookError extends BpfctlError {
  constructor(hook: Hook, action: XdpActionIR) {
    super('E_MODEL_HOOK', `the ${hook} hook cannot ${describeAction(action)} (AF_XDP sockets take frames at XDP only)`);
  }
}

export interface ModelOptions extends ModelEnv {
  /** Default 'xdp'. */
  readonly hook?: Hook;
  /** Set contents by name; sets not named hold the IR's elements. */
  readonly sets?: SetContents;
}

export interface SectionModel {
  readonly section: ClassifierSectionIR;
  readonly hook: Hook;
  /** What the program does with `frame`. `explain` adds the headers and the rules tried. */
  run(frame: Uint8Array, explain?: boolean): Outcome;
}

/**
 * Compiles the model of one section for a hook (sets and rules prepared once: the differential
 * test runs a million frames through one).
 * @throws ModelHookError when the hook cannot carry out an action of the section
 * @throws ModelSetError for set contents that do not fit their sets
 */
export function compileModel(section: ClassifierSectionIR, opts: ModelOptions = {}): SectionModel {
  const hook = opts.hook ?? 'xdp';
  const hm = HOOK_MODELS[hook];
  for (const a of [section.default, ...section.rules.map((r) => r.action)]) if (!hm.actions[a.kind]) throw new ModelHookError(hook, a);
  const sets = compileSets(section, opts.sets);
  const rules: ModelRule[] = section.rules.map((r) => compileRule(r, sets));
  const decide = (a: XdpActionIR): Decision => (hm.actions[a.kind] as (a: XdpActionIR, env: ModelEnv) => Decision)(a, opts);
  const verdictOf = (d: Decision) => ({ name: d.verdict, value: hm.verdicts[d.verdict]!, ...(d.note ? { note: d.note } : {}) });
  const malformed = malformedVerdict(hook, section.malformed);
  const defaultSlot = section.rules.length;

  return {
    section,
    hook,
    run(frame, explain = false) {
      const bytes = frame.length;
      const layers: Layer[] | undefined = explain ? [] : undefined;
      const parse = parseFrame(frame, layers);
      const extra = explain ? { layers } : {};
      if (parse.status === 'malformed') {
        return {
          hook,
          bytes,
          parse,
          hit: { kind: 'malformed' },
          action: null,
          verdict: { name: malformed, value: hm.verdicts[malformed]! },
          counters: [{ map: XDP_MAPS.xdpStats, slot: 0, name: XDP_STATS[0], packets: 1, bytes }],
          ...extra,
          ...(explain ? { tried: [] } : {}),
        };
      }
      const p = parse.pkt;
      hm.afterParse?.(p, opts);
      const counters: CounterMove[] = parse.status === 'fragment' ? [{ map: XDP_MAPS.xdpStats, slot: 1, name: XDP_STATS[1], packets: 1, bytes }] : [];
      const tried: RuleTry[] | undefined = explain ? [] : undefined;
      for (const r of rules) {
        const hit = tried ? tryRule(r, p, tried) : ruleMatches(r, p);
        if (!hit) continue;
        if (r.rule.count) counters.push({ map: XDP_MAPS.ruleStats, slot: r.rule.index, name: r.rule.name, packets: 1, bytes });
        return { hook, bytes, parse, hit: { kind: 'rule', rule: r.rule }, action: r.rule.action, verdict: verdictOf(decide(r.rule.action)), counters, ...extra, ...(tried ? { tried } : {}) };
      }
      counters.push({ map: XDP_MAPS.ruleStats, slot: defaultSlot, name: 'default', packets: 1, bytes });
      return { hook, bytes, parse, hit: { kind: 'default' }, action: section.default, verdict: verdictOf(decide(section.default)), counters, ...extra, ...(tried ? { tried } : {}) };
    },
  };
}

/** Runs a rule's checks up to the first that fails, recording each. */
function tryRule(r: ModelRule, p: Pkt, out: RuleTry[]): boolean {
  const checks: CheckResult[] = [];
  let matched = true;
  for (const c of r.checks) {
    const ok = c.test(p);
    checks.push({ field: c.field, want: c.want, got: c.got(p), ok });
    if (!ok) {
      matched = false;
      break;
    }
  }
  out.push({ index: r.rule.index, name: r.rule.name, matched, checks });
  return matched;
}

/** One-shot: compile and run (for a few frames; compile once for many). */
export function evaluate(section: ClassifierSectionIR, frame: Uint8Array, opts: ModelOptions = {}, explain = false): Outcome {
  return compileModel(section, opts).run(frame, explain);
}
