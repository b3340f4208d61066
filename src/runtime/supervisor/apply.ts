/**
 * `bpfctl apply` on a running chain: converge to a policy file without failing a request.
 *
 * What `diff` reports is done in its order: new functions start (fresh ids, appended), changed
 * code is rolled (per function: new instances with new ids start and register, then the old ones
 * leave `instances`, drain and stop; the old keep their sockets while draining, so what they
 * answer still reaches its gateway), instance counts change, all route changes are published as
 * one generation, functions no route uses any more stop, XDP and tc sections are swapped through
 * their links. A change that cannot be made live (pool geometry, gateway count) refuses the whole
 * apply before anything changes.
 */

import { applyClassifierChanges, manifestClassifiers, withClassifiers } from '../../deploy/classifiers.ts';
import { manifestHashes } from '../../deploy/code-hash.ts';
import { diffPolicies, type PolicyDiff, viewOfIr } from '../../deploy/diff.ts';
import { readManifest, writeManifest } from '../../deploy/manifest.ts';
import { applyRouteChanges, type RouteChange, type RouteChangeResult } from '../../deploy/routes.ts';
import { BpfctlError } from '../../errors.ts';
import { MAX_USER_FUNCTIONS } from '../../ir/chain-limits.ts';
import { type FunctionIR, hashIR, type PolicyIR } from '../../ir/policy.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { buildFunctionCode, type FunctionCode } from '../function-code.ts';
import { ChainStartError } from './errors.ts';
import type { Registry } from './registry.ts';
import { retireSlots, startSlots } from './scale.ts';
import type { Slot, SlotInfo } from './slot.ts';

export type { FunctionCode } from '../function-code.ts';

export interface ApplyContext {
  file: string;
  root: string;
  pinDir: string;
  slots: Slot[];
  code: Map<string, FunctionCode>;
  newSlot(f: FunctionIR): Slot;
  registry: Registry;
  scale(fn: string, n: number): Promise<SlotInfo[]>;
  drainMs: number;
  graceMs: number;
  progress(text: string): void;
  log(line: string): void;
  /** This machine's part of the policy (ChainOptions.localShare). */
  localShare?: (ir: PolicyIR) => PolicyIR;
  /** Scales a packet function (the packet runtime's scale), when the policy has packet chains. */
  packetScale?: (fn: string, n: number) => Promise<unknown>;
}

export interface ApplyResult {
  diff: PolicyDiff;
  routes: RouteChangeResult[];
}

export class ApplyError extends BpfctlError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** @throws ApplyError (E_APPLY_RESTART) when the change cannot be made to a running chain; PolicyError, CFunctionBuildError, ChainStartError */
export async function applyToChain(c: ApplyContext): Promise<ApplyResult> {
  const next = c.localShare ? c.localShare(await loadPolicyFile(c.file)) : await loadPolicyFile(c.file);
  const manifest = readManifest(c.pinDir);
  const live = manifest.ir;
  if (next.name !== live.name) throw new ApplyError('E_APPLY', `${c.file} is policy ${next.name}, the running chain is ${live.name}`);
  const nextHashes = manifestHashes(c.file, next);
  const diff = diffPolicies(viewOfIr(live, manifest.codeHashes ?? {}), viewOfIr(next, nextHashes));
  if (!diff.live) {
    throw new ApplyError('E_APPLY_RESTART', `policy ${live.name} cannot change this while it runs: ${diff.restartReasons.join('; ')} (bpfctl apply --restart restarts the chain with it)`);
  }
  if (diff.changes.length === 0) return { diff, routes: [] };

  const byName = new Map(next.functions.map((f) => [f.name, f]));
  let functions = live.functions.map((f) => ({ ...f }));
  const writeFunctions = () => {
    const m = readManifest(c.pinDir);
    writeManifest(c.pinDir, { ...m, ir: { ...m.ir, functions } });
  };
  const codeOf = (f: FunctionIR): Promise<FunctionCode> => buildFunctionCode(c.file, f);

  // Everything that can fail on bad input (C builds, TypeScript bundles) before the chain is touched.
  const built = new Map<string, FunctionCode>();
  for (const ch of diff.changes) {
    if (ch.kind === 'function-added' || ch.kind === 'function-code-changed') built.set(ch.name, await codeOf(byName.get(ch.name)!));
  }

  for (const ch of diff.changes.filter((x) => x.kind === 'function-added')) {
    const f = byName.get(ch.name)!;
    const used = new Set(functions.map((x) => x.id));
    let id = 1;
    while (used.has(id)) id++;
    if (id > MAX_USER_FUNCTIONS) throw new ApplyError('E_APPLY', `policy ${live.name} has no free function id for ${f.name}`);
    const added: FunctionIR = { ...f, id, instances: 0 };
    functions.push(added);
    c.code.set(f.name, built.get(f.name)!);
    writeFunctions();
    c.progress(`starting ${f.instances} instance(s) of new function ${f.name}`);
    await c.scale(f.name, f.instances);
    added.instances = f.instances;
  }

  for (const ch of diff.changes.filter((x) => x.kind === 'function-code-changed')) {
    const f = byName.get(ch.name)!;
    const cur = functions.find((x) => x.name === ch.name)!;
    c.code.set(ch.name, built.get(ch.name)!);
    Object.assign(cur, { handler: f.handler, language: f.language, maxInFlight: f.maxInFlight });
    writeFunctions();
    c.progress(`replacing the instances of ${ch.name} with its new code`);
    await replaceInstances(c, cur);
  }

  // Placement is read by the agent's node-link (spill) from the manifest: nothing to restart.
  for (const ch of diff.changes) {
    if (ch.kind !== 'function-placement-changed') continue;
    const f = byName.get(ch.name)!;
    const cur = functions.find((x) => x.name === ch.name)!;
    if (f.placement) cur.placement = f.placement;
    else delete cur.placement;
  }

  for (const ch of diff.changes) {
    if (ch.kind !== 'function-scaled') continue;
    await c.scale(ch.name, ch.to);
    functions.find((x) => x.name === ch.name)!.instances = ch.to;
  }
  writeFunctions();

  const routeChanges: RouteChange[] = [];
  for (const ch of diff.changes) {
    if (ch.kind === 'route-removed') routeChanges.push({ op: 'del', route: ch.name });
    if (ch.kind === 'route-added' || ch.kind === 'route-changed') {
      const r = next.routes.find((x) => x.name === ch.name)!;
      routeChanges.push({ op: 'set', route: r.name, functions: r.functions, methods: r.methods });
    }
  }
  const routes = routeChanges.length ? applyRouteChanges(live.name, routeChanges, { root: c.root, drainMs: c.drainMs }) : [];

  for (const ch of diff.changes.filter((x) => x.kind === 'function-removed')) {
    c.progress(`stopping removed function ${ch.name}`);
    await c.scale(ch.name, 0);
    functions = functions.filter((f) => f.name !== ch.name);
    c.code.delete(ch.name);
  }

  await scalePackets(diff, c.packetScale);
  const classifiers = applyClassifierChanges(diff, next, c.pinDir, manifest, c.progress);

  const m = readManifest(c.pinDir);
  const ir: PolicyIR = withClassifiers({ ...m.ir, functions, ...(next.packet ? { packet: next.packet } : {}) }, next);
  ir.hash = hashIR(ir);
  writeManifest(c.pinDir, { ...manifestClassifiers(m, classifiers), ir, policyFile: c.file, codeHashes: nextHashes, schemaHash: ir.hash });
  return { diff, routes };
}

/**
 * Rolls a function onto its new code: as many new instances as it runs now start (new ids) and
 * register; only then do the old ones leave `instances`, drain and stop. Capacity never drops.
 */
async function replaceInstances(c: ApplyContext, f: FunctionIR): Promise<void> {
  const old = c.slots.filter((s) => s.kind === 'function' && s.fnId === f.id);
  try {
    await startSlots(c, old.map(() => c.newSlot(f)));
  } catch (err) {
    throw new ChainStartError(`new code of ${f.name} did not start; the old instances keep running: ${(err as Error).message}`, { cause: err });
  }
  await retireSlots(c, old);
  c.log(`[supervisor] ${f.name}: ${old.length} instance(s) on the new code (live: ${c.registry.liveIds(f.id).join(', ') || 'none'})`);
}

async function scalePackets(diff: PolicyDiff, scale: ((fn: string, n: number) => Promise<unknown>) | undefined): Promise<void> {
  for (const ch of diff.changes) {
    if (ch.kind !== 'packet-function-scaled') continue;
    if (!scale) throw new ApplyError('E_APPLY', `cannot scale packet function ${ch.name}: the policy runs no packet chains`);
    await scale(ch.name, ch.to);
  }
}

export interface PacketOnlyApplyContext {
  file: string;
  pinDir: string;
  progress(text: string): void;
  packetScale?: (fn: string, n: number) => Promise<unknown>;
}

/**
 * `bpfctl apply` on a running policy of packet chains (and XDP/tc sections) only: steering changes
 * (the classifier swapped on its link; pktio's sockets stay in the reused xskmaps) and packet
 * function instance counts are live; anything else needs --restart.
 * @throws ApplyError (E_APPLY, E_APPLY_RESTART), PolicyError, CompileError, VerifierError
 */
export async function applyPacketOnly(c: PacketOnlyApplyContext): Promise<ApplyResult> {
  const next = await loadPolicyFile(c.file);
  const manifest = readManifest(c.pinDir);
  const live = manifest.ir;
  if (next.name !== live.name) throw new ApplyError('E_APPLY', `${c.file} is policy ${next.name}, the running policy is ${live.name}`);
  const nextHashes = manifestHashes(c.file, next);
  const diff = diffPolicies(viewOfIr(live, manifest.codeHashes ?? {}), viewOfIr(next, nextHashes));
  const reasons = [...diff.restartReasons];
  if (next.functions.length || next.routes.length) reasons.push('a request chain (functions and routes) starts with the policy');
  if (reasons.length) throw new ApplyError('E_APPLY_RESTART', `policy ${live.name} cannot change this while it runs: ${reasons.join('; ')} (bpfctl apply --restart restarts it with the new file)`);
  if (diff.changes.length === 0) return { diff, routes: [] };
  await scalePackets(diff, c.packetScale);
  const classifiers = applyClassifierChanges(diff, next, c.pinDir, manifest, c.progress);
  const m = readManifest(c.pinDir);
  const ir: PolicyIR = withClassifiers({ ...m.ir, ...(next.packet ? { packet: next.packet } : {}) }, next);
  ir.hash = hashIR(ir);
  writeManifest(c.pinDir, { ...manifestClassifiers(m, classifiers), ir, policyFile: c.file, codeHashes: nextHashes, schemaHash: ir.hash });
  return { diff, routes: [] };
}
