/**
 * What `bpfctl apply` would change: a pure comparison of two policies (the loaded one and the one
 * in a policy file), shared by `bpfctl diff` (which prints it) and `bpfctl apply` (which carries it
 * out). No I/O: callers read the manifest and hash the handlers, then hand both sides in as views.
 *
 * Contract for consumers (the shape is stable; new kinds may be added, existing ones keep their
 * fields):
 * - `changes` is sorted by kind in `CHANGE_KINDS` order, then by `name` (code-unit order, so the
 *   result does not depend on the locale). That order is also a safe order to carry them out in:
 *   functions exist before a route names them, and a route stops naming a function before the
 *   function goes.
 * - Every change has `kind`, `name` and `action`; `action: 'restart'` changes also carry `reason`.
 * - `live` is true when no change needs a restart (so an empty diff is live).
 * - XDP sections are matched by interface, tc sections by interface and direction (`name` is
 *   `veth0 egress`), rules by index, sets by name.
 * - XDP sets are compared as the policies state them, not as they are now: `bpfctl set` changes a
 *   live set without touching the manifest, and a reload refills sets unless `--keep-sets`.
 */
import { BpfctlError } from '../errors.ts';
import type { GatewayEngine } from '../ir/chain.ts';
import { canonicalJson, type PolicyIR } from '../ir/policy.ts';
import { type ClassifierSectionIR, describeAction, type TcSectionIR, type XdpRuleIR, type XdpSectionIR, type XdpSetIR } from '../ir/xdp.ts';

/** What a policy is, for comparison: only what `apply` can act on (ids and hashes left out). */
export interface PolicyView {
  name: string;
  gateway: { instances: number; engine: GatewayEngine };
  functions: FunctionView[];
  routes: RouteView[];
  pool: { bufferSize: number; bufferCount: number };
  xdp: XdpSectionIR[];
  /** Absent: none. */
  tc?: TcSectionIR[];
  /** Packet functions and chains (docs/packet-chains.md); absent: none. */
  packet?: PacketPartView;
}

export interface PacketPartView {
  functions: { name: string; instances: number; language: 'c' | 'ts' | 'command'; handler: string | null; command: string[] | null; env: Record<string, string>; codeHash: string | null }[];
  chains: { name: string; functions: string[]; egress: string; poll: boolean; coalesceUs?: number }[];
}

export interface FunctionView {
  name: string;
  instances: number;
  language: 'ts' | 'c';
  handler: string;
  maxInFlight: number | null;
  /** sha256 hex of the handler file; null when unknown (an old manifest, or not hashed). */
  codeHash: string | null;
  /** Where it runs when the policy spans nodes (docs/multi-node.md), as canonical JSON; null: anywhere. */
  placement: string | null;
}

export interface RouteView {
  name: string;
  functions: string[];
  /** HTTP methods, upper case, sorted. */
  methods: string[];
}

export interface FromTo<T> {
  from: T;
  to: T;
}

/** A route as it is (added, removed) or was/will be (changed). */
export interface RouteShape {
  functions: string[];
  methods: string[];
}

export type RouteAdded = { kind: 'route-added'; action: 'live'; name: string } & RouteShape;
export type RouteRemoved = { kind: 'route-removed'; action: 'live'; name: string } & RouteShape;
export interface RouteChanged {
  kind: 'route-changed';
  action: 'live';
  name: string;
  from: RouteShape;
  to: RouteShape;
}

/** A new function: its instances are started before any route sends to it. */
export interface FunctionAdded {
  kind: 'function-added';
  action: 'live';
  name: string;
  instances: number;
  language: 'ts' | 'c';
  handler: string;
  maxInFlight: number | null;
}

/** A function the new policy drops: stopped once no route uses it. */
export interface FunctionRemoved {
  kind: 'function-removed';
  action: 'live';
  name: string;
  instances: number;
}

export interface FunctionScaled {
  kind: 'function-scaled';
  action: 'live';
  name: string;
  from: number;
  to: number;
}

/**
 * The function's code or how it runs changed: a rolling replacement of its instances. Only the
 * fields that changed are present; `codeHash` only when both sides are known.
 */
export interface FunctionCodeChanged {
  kind: 'function-code-changed';
  action: 'live';
  name: string;
  codeHash?: FromTo<string>;
  language?: FromTo<'ts' | 'c'>;
  handler?: FromTo<string>;
  maxInFlight?: FromTo<number | null>;
}

/**
 * Where the function may run changed (nodes, labels, spill). On each node that only changes how
 * many instances run there (a `function-scaled` of its own) and whether its requests may spill to
 * other nodes: nothing is restarted.
 */
export interface FunctionPlacementChanged {
  kind: 'function-placement-changed';
  action: 'live';
  name: string;
  from: string | null;
  to: string | null;
}

export interface GatewayScaled {
  kind: 'gateway-scaled';
  action: 'restart';
  name: 'gateway';
  from: number;
  to: number;
  reason: string;
}

/** The gateway's engine (node, native) changes: its processes are replaced, so the chain restarts. */
export interface GatewayEngineChanged {
  kind: 'gateway-engine-changed';
  action: 'restart';
  name: 'gateway';
  from: GatewayEngine;
  to: GatewayEngine;
  reason: string;
}

/** Only the fields that changed are present. */
export interface PoolChanged {
  kind: 'pool-changed';
  action: 'restart';
  name: 'pool';
  bufferSize?: FromTo<number>;
  bufferCount?: FromTo<number>;
  reason: string;
}

/** An XDP rule as people read it. */
export interface XdpRuleRef {
  index: number;
  name: string;
  summary: string;
  count: boolean;
}

export interface XdpSetChange {
  name: string;
  change: 'added' | 'removed' | 'changed';
  /** Elements in the next policy's set and not in the live one (all of them for an added set). */
  elementsAdded: string[];
  elementsRemoved: string[];
  kind?: FromTo<string>;
  maxEntries?: FromTo<number>;
}

/** `name` is the interface. */
export interface XdpAdded {
  kind: 'xdp-added';
  action: 'live';
  name: string;
  mode: XdpSectionIR['mode'];
  default: string;
  rules: number;
  sets: number;
}

/** `name` is the interface: its program is detached. */
export interface XdpRemoved {
  kind: 'xdp-removed';
  action: 'live';
  name: string;
  rules: number;
}

/**
 * `name` is the interface. Only the fields that changed are present; the lists are empty when
 * nothing of theirs changed. A mode change re-attaches the program (a brief gap without a
 * classifier); everything else is one atomic link update.
 */
export interface XdpChanged {
  kind: 'xdp-changed';
  action: 'live';
  name: string;
  mode?: FromTo<XdpSectionIR['mode']>;
  /** Described actions, e.g. `drop`, `redirect eth1`. */
  default?: FromTo<string>;
  malformed?: FromTo<'drop' | 'pass'>;
  rulesAdded: XdpRuleRef[];
  rulesRemoved: XdpRuleRef[];
  rulesChanged: { index: number; from: XdpRuleRef; to: XdpRuleRef }[];
  sets: XdpSetChange[];
}

/** `name` is `<interface> <direction>`. */
export interface TcAdded {
  kind: 'tc-added';
  action: 'live';
  name: string;
  interface: string;
  direction: TcSectionIR['direction'];
  default: string;
  rules: number;
  sets: number;
}

/** `name` is `<interface> <direction>`: its tcx link is removed. */
export interface TcRemoved {
  kind: 'tc-removed';
  action: 'live';
  name: string;
  interface: string;
  direction: TcSectionIR['direction'];
  rules: number;
}

/** As XdpChanged (no mode: a tc program is always replaced through its link, with no gap). */
export interface TcChanged extends Omit<XdpChanged, 'kind' | 'mode'> {
  kind: 'tc-changed';
  interface: string;
  direction: TcSectionIR['direction'];
}

/** A packet function runs another number of instances: live (the plane's live list and rings). */
export interface PacketFunctionScaled {
  kind: 'packet-function-scaled';
  action: 'live';
  name: string;
  from: number;
  to: number;
}

/** Packet functions or chains added, removed or changed: the plane's tables are fixed while frames are in its rings. */
export interface PacketChanged {
  kind: 'packet-changed';
  action: 'restart';
  name: string;
  what: string;
  reason: string;
}

export type Change =
  | PacketFunctionScaled
  | PacketChanged
  | RouteAdded
  | RouteChanged
  | RouteRemoved
  | FunctionAdded
  | FunctionRemoved
  | FunctionScaled
  | FunctionCodeChanged
  | FunctionPlacementChanged
  | GatewayScaled
  | GatewayEngineChanged
  | PoolChanged
  | XdpAdded
  | XdpRemoved
  | XdpChanged
  | TcAdded
  | TcRemoved
  | TcChanged;

export type ChangeKind = Change['kind'];

export interface PolicyDiff {
  policy: string;
  changes: Change[];
  /** Every change can be applied without a restart. */
  live: boolean;
  /** Why a restart is needed, one per distinct reason, in change order. */
  restartReasons: string[];
}

/**
 * The order changes are listed in: what needs a restart first (it decides whether `apply` can go
 * ahead at all), then an order in which live changes can be carried out one after another.
 */
export const CHANGE_KINDS: readonly ChangeKind[] = [
  'packet-changed',
  'gateway-engine-changed',
  'gateway-scaled',
  'pool-changed',
  'function-added',
  'function-code-changed',
  'function-scaled',
  'function-placement-changed',
  'route-added',
  'route-changed',
  'route-removed',
  'function-removed',
  'xdp-added',
  'xdp-changed',
  'xdp-removed',
  'tc-added',
  'tc-changed',
  'tc-removed',
  'packet-function-scaled',
];

export const GATEWAY_RESTART_REASON = 'gateway instances are fixed while the chain runs';
export const GATEWAY_ENGINE_RESTART_REASON = 'the gateway engine is fixed while the chain runs';
export const POOL_RESTART_REASON = 'pool geometry is fixed while buffers are shared';
export const PACKET_RESTART_REASON = 'packet functions and chains are fixed while frames sit in their rings';

/** The two sides of a diff are not the same policy. */
export class DiffError extends BpfctlError {
  constructor(message: string) {
    super('E_DIFF', message);
  }
}

/** Until RouteIR has `methods`, a route answers POST only. */
const DEFAULT_METHODS = ['POST'];

function normMethods(methods: readonly string[] | undefined): string[] {
  return [...new Set((methods ?? DEFAULT_METHODS).map((m) => m.toUpperCase()))].sort();
}

/**
 * The view of an IR. `codeHashes` maps function names to handler hashes (`hashHandlers`, or the
 * manifest's copy); a function without one gets `codeHash: null` (unknown).
 */
export function viewOfIr(ir: PolicyIR, codeHashes?: Record<string, string>): PolicyView {
  return {
    name: ir.name,
    // A manifest written before engines existed ran the Node gateway.
    gateway: { instances: ir.gateway.instances, engine: ir.gateway.engine ?? 'node' },
    functions: ir.functions.map((f) => ({
      name: f.name,
      instances: f.instances,
      language: f.language,
      handler: f.handler,
      maxInFlight: f.maxInFlight,
      codeHash: codeHashes && Object.hasOwn(codeHashes, f.name) ? codeHashes[f.name]! : null,
      placement: f.placement ? canonicalJson(f.placement) : null,
    })),
    routes: ir.routes.map((r) => ({
      name: r.name,
      functions: [...r.functions],
      methods: normMethods((r as { methods?: string[] }).methods),
    })),
    pool: { bufferSize: ir.pool.bufferSize, bufferCount: ir.pool.bufferCount },
    xdp: ir.xdp,
    ...(ir.tc?.length ? { tc: ir.tc } : {}),
    ...(ir.packet ? { packet: packetView(ir, codeHashes) } : {}),
  };
}

function packetView(ir: PolicyIR, codeHashes?: Record<string, string>): PacketPartView {
  const p = ir.packet!;
  const port = (id: number) => p.ports[id]?.interface ?? `#${id}`;
  return {
    functions: p.functions.map((f) => ({
      name: f.name,
      instances: f.instances,
      language: f.language,
      handler: f.handler ?? null,
      command: f.command ?? null,
      env: f.env,
      codeHash: codeHashes && Object.hasOwn(codeHashes, `packet:${f.name}`) ? codeHashes[`packet:${f.name}`]! : null,
    })),
    chains: p.chains.map((c) => ({ name: c.name, functions: c.functions.map((id) => p.functions[id]!.name), egress: c.egress.kind === 'tx' ? `tx ${port(c.egress.port)}` : 'drop', poll: c.poll, ...(c.coalesce ? { coalesceUs: c.coalesce.us } : {}) })),
  };
}

function diffPacket(live: PolicyView, next: PolicyView): Change[] {
  const a = live.packet ?? { functions: [], chains: [] };
  const b = next.packet ?? { functions: [], chains: [] };
  const out: Change[] = [];
  const restart = (name: string, what: string) => out.push({ kind: 'packet-changed', action: 'restart', name, what, reason: PACKET_RESTART_REASON });
  const old = new Map(a.functions.map((f) => [f.name, f]));
  for (const f of b.functions) {
    const o = old.get(f.name);
    if (!o) restart(f.name, 'packet function added');
    else {
      const { instances: oi, codeHash: oh, ...orest } = o;
      const { instances: ni, codeHash: nh, ...nrest } = f;
      if (canonicalJson(orest) !== canonicalJson(nrest) || (oh !== null && nh !== null && oh !== nh)) restart(f.name, 'packet function changed (handler, command or env)');
      else if (oi !== ni) out.push({ kind: 'packet-function-scaled', action: 'live', name: f.name, from: oi, to: ni });
    }
  }
  for (const o of a.functions) if (!b.functions.some((f) => f.name === o.name)) restart(o.name, 'packet function removed');
  // Chain ids are positions in the plane: a chain added, removed, moved or changed rewrites it.
  const oldChains = new Map(a.chains.map((c) => [c.name, c]));
  for (const c of b.chains) {
    const o = oldChains.get(c.name);
    if (!o) restart(c.name, 'packet chain added');
    else if (canonicalJson(o) !== canonicalJson(c)) restart(c.name, 'packet chain changed (functions, egress or mode)');
  }
  for (const o of a.chains) if (!b.chains.some((c) => c.name === o.name)) restart(o.name, 'packet chain removed');
  const order = (v: PacketPartView) => [...v.chains.map((c) => c.name), '|', ...v.functions.map((f) => f.name)].join(',');
  if (!out.some((c) => c.kind === 'packet-changed') && order(a) !== order(b)) restart('order', 'packet functions or chains reordered (their ids move)');
  return out;
}

/**
 * What changes when `next` replaces `live`. Identical views give no changes.
 * @throws DiffError (E_DIFF) when the views are of differently named policies.
 */
export function diffPolicies(live: PolicyView, next: PolicyView): PolicyDiff {
  if (live.name !== next.name) {
    throw new DiffError(`cannot diff policy ${next.name} against policy ${live.name}: a policy is compared with the loaded policy of the same name`);
  }
  const changes: Change[] = [...diffGateway(live, next), ...diffPool(live, next), ...diffFunctions(live, next), ...diffRoutes(live, next), ...diffXdp(live, next), ...diffTc(live, next), ...diffPacket(live, next)];
  changes.sort(compareChanges);
  const restartReasons: string[] = [];
  for (const c of changes) if (c.action === 'restart' && !restartReasons.includes(c.reason)) restartReasons.push(c.reason);
  return { policy: next.name, changes, live: restartReasons.length === 0, restartReasons };
}

function compareChanges(a: Change, b: Change): number {
  const k = CHANGE_KINDS.indexOf(a.kind) - CHANGE_KINDS.indexOf(b.kind);
  if (k !== 0) return k;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function diffGateway(live: PolicyView, next: PolicyView): Change[] {
  const out: Change[] = [];
  if (live.gateway.engine !== next.gateway.engine) {
    out.push({ kind: 'gateway-engine-changed', action: 'restart', name: 'gateway', from: live.gateway.engine, to: next.gateway.engine, reason: GATEWAY_ENGINE_RESTART_REASON });
  }
  const from = live.gateway.instances;
  const to = next.gateway.instances;
  if (from !== to) out.push({ kind: 'gateway-scaled', action: 'restart', name: 'gateway', from, to, reason: GATEWAY_RESTART_REASON });
  return out;
}

function diffPool(live: PolicyView, next: PolicyView): Change[] {
  const c: PoolChanged = { kind: 'pool-changed', action: 'restart', name: 'pool', reason: POOL_RESTART_REASON };
  if (live.pool.bufferSize !== next.pool.bufferSize) c.bufferSize = { from: live.pool.bufferSize, to: next.pool.bufferSize };
  if (live.pool.bufferCount !== next.pool.bufferCount) c.bufferCount = { from: live.pool.bufferCount, to: next.pool.bufferCount };
  return c.bufferSize || c.bufferCount ? [c] : [];
}

function diffFunctions(live: PolicyView, next: PolicyView): Change[] {
  const out: Change[] = [];
  const old = new Map(live.functions.map((f) => [f.name, f]));
  const now = new Map(next.functions.map((f) => [f.name, f]));
  for (const f of next.functions) {
    const o = old.get(f.name);
    if (!o) {
      out.push({ kind: 'function-added', action: 'live', name: f.name, instances: f.instances, language: f.language, handler: f.handler, maxInFlight: f.maxInFlight });
      continue;
    }
    if (o.instances !== f.instances) out.push({ kind: 'function-scaled', action: 'live', name: f.name, from: o.instances, to: f.instances });
    const c: FunctionCodeChanged = { kind: 'function-code-changed', action: 'live', name: f.name };
    // An unknown hash is not evidence of a change: an old manifest would otherwise make every
    // function look rewritten.
    if (o.codeHash !== null && f.codeHash !== null && o.codeHash !== f.codeHash) c.codeHash = { from: o.codeHash, to: f.codeHash };
    if (o.language !== f.language) c.language = { from: o.language, to: f.language };
    if (o.handler !== f.handler) c.handler = { from: o.handler, to: f.handler };
    if (o.maxInFlight !== f.maxInFlight) c.maxInFlight = { from: o.maxInFlight, to: f.maxInFlight };
    if (c.codeHash || c.language || c.handler || c.maxInFlight) out.push(c);
    if ((o.placement ?? null) !== (f.placement ?? null)) out.push({ kind: 'function-placement-changed', action: 'live', name: f.name, from: o.placement ?? null, to: f.placement ?? null });
  }
  for (const o of live.functions) {
    if (!now.has(o.name)) out.push({ kind: 'function-removed', action: 'live', name: o.name, instances: o.instances });
  }
  return out;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function diffRoutes(live: PolicyView, next: PolicyView): Change[] {
  const out: Change[] = [];
  const old = new Map(live.routes.map((r) => [r.name, r]));
  const now = new Map(next.routes.map((r) => [r.name, r]));
  const shape = (r: RouteView): RouteShape => ({ functions: [...r.functions], methods: normMethods(r.methods) });
  for (const r of next.routes) {
    const o = old.get(r.name);
    if (!o) out.push({ kind: 'route-added', action: 'live', name: r.name, ...shape(r) });
    else if (!sameList(o.functions, r.functions) || !sameList(normMethods(o.methods), normMethods(r.methods))) {
      out.push({ kind: 'route-changed', action: 'live', name: r.name, from: shape(o), to: shape(r) });
    }
  }
  for (const o of live.routes) if (!now.has(o.name)) out.push({ kind: 'route-removed', action: 'live', name: o.name, ...shape(o) });
  return out;
}

function ruleRef(r: XdpRuleIR): XdpRuleRef {
  return { index: r.index, name: r.name, summary: r.summary, count: r.count };
}

/**
 * A rule's meaning. Devmap slots are left out: they number redirect targets in order of first use,
 * so adding a redirect earlier renumbers later rules without changing what they do.
 */
function ruleKey(r: XdpRuleIR): string {
  const action = r.action.kind === 'redirect' ? { kind: 'redirect', ifname: r.action.ifname } : r.action;
  return canonicalJson({ name: r.name, match: r.match, action, count: r.count });
}

function diffSets(old: readonly XdpSetIR[], now: readonly XdpSetIR[]): XdpSetChange[] {
  const out: XdpSetChange[] = [];
  const before = new Map(old.map((s) => [s.name, s]));
  const after = new Map(now.map((s) => [s.name, s]));
  for (const s of now) {
    const o = before.get(s.name);
    if (!o) {
      out.push({ name: s.name, change: 'added', elementsAdded: [...s.elements], elementsRemoved: [] });
      continue;
    }
    // A set is a map: element order means nothing.
    const had = new Set(o.elements);
    const has = new Set(s.elements);
    const c: XdpSetChange = {
      name: s.name,
      change: 'changed',
      elementsAdded: s.elements.filter((e) => !had.has(e)),
      elementsRemoved: o.elements.filter((e) => !has.has(e)),
    };
    if (o.kind !== s.kind) c.kind = { from: o.kind, to: s.kind };
    if (o.maxEntries !== s.maxEntries) c.maxEntries = { from: o.maxEntries, to: s.maxEntries };
    if (c.elementsAdded.length || c.elementsRemoved.length || c.kind || c.maxEntries) out.push(c);
  }
  for (const o of old) if (!after.has(o.name)) out.push({ name: o.name, change: 'removed', elementsAdded: [], elementsRemoved: [...o.elements] });
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function diffSection(o: XdpSectionIR, s: XdpSectionIR): XdpChanged | null {
  // Keys in the order they always had (the JSON is a contract): lists, then mode, default, malformed.
  const { default: dflt, malformed, ...lists } = diffClassifier(o, s);
  const c: XdpChanged = { kind: 'xdp-changed', action: 'live', name: s.interface, ...lists };
  if (o.mode !== s.mode) c.mode = { from: o.mode, to: s.mode };
  if (dflt) c.default = dflt;
  if (malformed) c.malformed = malformed;
  const changed = c.mode || c.default || c.malformed || c.rulesAdded.length || c.rulesRemoved.length || c.rulesChanged.length || c.sets.length;
  return changed ? c : null;
}

/** What two sections of any hook differ in: default, malformed, rules by index, sets by name. */
function diffClassifier(o: ClassifierSectionIR, s: ClassifierSectionIR): Omit<XdpChanged, 'kind' | 'action' | 'name' | 'mode'> {
  const c: Omit<XdpChanged, 'kind' | 'action' | 'name' | 'mode'> = { rulesAdded: [], rulesRemoved: [], rulesChanged: [], sets: diffSets(o.sets, s.sets) };
  const d0 = describeAction(o.default);
  const d1 = describeAction(s.default);
  if (d0 !== d1) c.default = { from: d0, to: d1 };
  if (o.malformed !== s.malformed) c.malformed = { from: o.malformed, to: s.malformed };
  const n = Math.max(o.rules.length, s.rules.length);
  for (let i = 0; i < n; i++) {
    const a = o.rules[i];
    const b = s.rules[i];
    if (a && !b) c.rulesRemoved.push(ruleRef(a));
    else if (!a && b) c.rulesAdded.push(ruleRef(b));
    else if (a && b && ruleKey(a) !== ruleKey(b)) c.rulesChanged.push({ index: i, from: ruleRef(a), to: ruleRef(b) });
  }
  return c;
}

function diffXdp(live: PolicyView, next: PolicyView): Change[] {
  const out: Change[] = [];
  const old = new Map(live.xdp.map((s) => [s.interface, s]));
  const now = new Map(next.xdp.map((s) => [s.interface, s]));
  for (const s of next.xdp) {
    const o = old.get(s.interface);
    if (!o) {
      out.push({ kind: 'xdp-added', action: 'live', name: s.interface, mode: s.mode, default: describeAction(s.default), rules: s.rules.length, sets: s.sets.length });
      continue;
    }
    const c = diffSection(o, s);
    if (c) out.push(c);
  }
  for (const o of live.xdp) if (!now.has(o.interface)) out.push({ kind: 'xdp-removed', action: 'live', name: o.interface, rules: o.rules.length });
  return out;
}

function diffTc(live: PolicyView, next: PolicyView): Change[] {
  const out: Change[] = [];
  const key = (s: TcSectionIR) => `${s.interface} ${s.direction}`;
  const old = new Map((live.tc ?? []).map((s) => [key(s), s]));
  const now = new Map((next.tc ?? []).map((s) => [key(s), s]));
  for (const s of next.tc ?? []) {
    const at = { name: key(s), interface: s.interface, direction: s.direction };
    const o = old.get(key(s));
    if (!o) {
      out.push({ kind: 'tc-added', action: 'live', ...at, default: describeAction(s.default), rules: s.rules.length, sets: s.sets.length });
      continue;
    }
    const c: TcChanged = { kind: 'tc-changed', action: 'live', ...at, ...diffClassifier(o, s) };
    if (c.default || c.malformed || c.rulesAdded.length || c.rulesRemoved.length || c.rulesChanged.length || c.sets.length) out.push(c);
  }
  for (const o of live.tc ?? []) if (!now.has(key(o))) out.push({ kind: 'tc-removed', action: 'live', name: key(o), interface: o.interface, direction: o.direction, rules: o.rules.length });
  return out;
}
