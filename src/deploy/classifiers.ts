/**
 * `apply` of a policy's classification sections, XDP and tc: what a diff says changed in them is
 * carried out on the pins, program by program through their links (bpf_link_update, so traffic
 * never meets an interface without rules), and the manifest records the result. One code path
 * for the supervisor of a running chain and for a loaded policy nothing runs (an XDP/tc-only
 * firewall, or a chain between runs).
 */
import type { XdpPolicyLike } from '../codegen/xdp/index.ts';
import { hashIR, type PolicyIR } from '../ir/policy.ts';
import type { PolicyDiff } from './diff.ts';
import { type Manifest, readManifest, writeManifest } from './manifest.ts';
import { policyDir } from './paths.ts';
import { convergeTc } from './tc.ts';
import { deployXdp, undeployXdp } from './xdp.ts';

/** The kinds of change this module carries out. */
export function isClassifierChange(kind: string): boolean {
  return kind.startsWith('xdp-') || kind.startsWith('tc-');
}

export interface ClassifierEntries {
  xdp: Manifest['xdp'];
  tc: NonNullable<Manifest['tc']>;
}

/**
 * Carries out the XDP and tc changes of `diff` under `pinDir`: sections added or changed are
 * deployed (programs swapped on their links, new ones attached), those `next` no longer has are
 * detached. XDP redeploys every section once one changed (as it always has); tc only the ones
 * the diff names. Returns the manifest entries.
 * @throws CompileError, VerifierError, LoaderError, XdpDeployError (what was already swapped stays)
 */
export function applyClassifierChanges(diff: PolicyDiff, next: XdpPolicyLike, pinDir: string, live: Pick<Manifest, 'xdp' | 'tc' | 'netns'>, progress: (text: string) => void = () => {}): ClassifierEntries {
  // Sections stay in the namespace they were loaded into.
  const netns = live.netns ? { netns: live.netns } : {};
  let xdp = live.xdp.filter((x) => next.xdp.some((s) => s.interface === x.interface));
  if (diff.changes.some((x) => x.kind.startsWith('xdp-'))) {
    for (const o of live.xdp) if (!next.xdp.some((s) => s.interface === o.interface)) undeployXdp(pinDir, o.interface);
    xdp = next.xdp.map((_, i) => {
      const d = deployXdp(next, i, pinDir, { progress, ...netns });
      return { interface: d.interface, mode: d.mode, dir: d.dir };
    });
  }
  let tc = live.tc ?? [];
  if (diff.changes.some((x) => x.kind.startsWith('tc-'))) {
    // Only the tc sections that changed get a new program: the others keep theirs, with their counters.
    const changed = new Set(diff.changes.filter((x) => x.kind === 'tc-added' || x.kind === 'tc-changed').map((x) => x.name));
    tc = convergeTc(next, pinDir, { progress, changed, ...netns });
  }
  return { xdp, tc };
}

/** `ir` with `next`'s classification sections (a policy without tc sections has no `tc` key). */
export function withClassifiers(ir: PolicyIR, next: Pick<PolicyIR, 'xdp' | 'tc'>): PolicyIR {
  const { tc: _old, ...rest } = ir;
  const out: PolicyIR = { ...rest, xdp: next.xdp, ...(next.tc?.length ? { tc: next.tc } : {}) };
  return { ...out, hash: hashIR(out) };
}

/** The manifest fields of `entries` (no `tc` key when there are none). */
export function manifestClassifiers(m: Manifest, entries: ClassifierEntries): Manifest {
  const { tc: _old, ...rest } = m;
  return { ...rest, xdp: entries.xdp, ...(entries.tc.length ? { tc: entries.tc } : {}) };
}

/**
 * Applies the XDP and tc changes of `diff` to a loaded policy that no supervisor runs, and records
 * them in its manifest (re-read here: route changes made just before wrote it too).
 */
export function applyClassifiersToLoaded(policy: string, diff: PolicyDiff, next: PolicyIR, opts: { root?: string; progress?: (text: string) => void } = {}): ClassifierEntries {
  const dir = policyDir(policy, opts.root);
  const entries = applyClassifierChanges(diff, next, dir, readManifest(dir), opts.progress);
  const m = readManifest(dir);
  const ir = withClassifiers(m.ir, next);
  writeManifest(dir, { ...manifestClassifiers(m, entries), ir, schemaHash: ir.hash });
  return entries;
}
