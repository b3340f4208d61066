/**
 * Deploy and remove a policy's tc sections. Each section becomes one sched_cls program attached
 * to its interface's ingress or egress through a pinned tcx link, with its program and maps pinned
 * beside it, the layout of an XDP section's directory one level down:
 *
 *   <pinDir>/tc/<ifname>/<direction>/link          the tcx attachment (removing it detaches)
 *   <pinDir>/tc/<ifname>/<direction>/prog          the program
 *   <pinDir>/tc/<ifname>/<direction>/maps/<name>   rule_stats, xdp_stats, tx_ports, set_<name>
 *
 * so counters, sets and status read a tc directory with the XDP code. tcx (kernel 6.6+) needs no
 * qdisc: the link is the attachment, other tcx programs on the device keep theirs, and the
 * program is replaced with one bpf_link_update, so a redeploy leaves no moment without rules.
 * As for XDP, everything that can fail on bad input happens before the running program is
 * touched, and a failure after that is rolled back.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateTc, ifaceSlug, TC_PROG_NAME, type XdpPolicyLike } from '../codegen/xdp/index.ts';
import type { TcDirection } from '../dsl/tc.ts';
import type { TcSectionIR } from '../ir/xdp.ts';
import { BpfLink, type BpfObject, mkdirp, unpinAll } from '../../loader/index.ts';
import { type DeployXdpOptions, detachDir, ifindexFromTarget, loadClassifier, pinAll, swapOnLink, XdpDeployError } from './xdp.ts';

export type DeployTcOptions = Omit<DeployXdpOptions, 'mode'>;

export interface TcDeployment {
  interface: string;
  direction: TcDirection;
  /** The section's pin directory. */
  dir: string;
  ifindex: number;
  progId: number;
  linkId: number;
  /** True when an attached program was replaced (link update). */
  replaced: boolean;
}

const DIRECTIONS: readonly TcDirection[] = ['ingress', 'egress'];

/** How a tc section is named in messages and tables: `veth0 egress`. */
export function tcLabel(s: { interface: string; direction: TcDirection }): string {
  return `${s.interface} ${s.direction}`;
}

export function tcRoot(pinDir: string): string {
  return join(pinDir, 'tc');
}

export function tcDir(pinDir: string, ifname: string, direction: TcDirection): string {
  return join(tcRoot(pinDir), ifaceSlug(ifname), direction);
}

/** The tc sections deployed under `pinDir`: interface directory names and directions, sorted. */
export function listTcDeployments(pinDir: string): { slug: string; direction: TcDirection; dir: string }[] {
  const root = tcRoot(pinDir);
  if (!existsSync(root)) return [];
  const out: { slug: string; direction: TcDirection; dir: string }[] = [];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    for (const direction of DIRECTIONS) {
      const dir = join(root, e.name, direction);
      if (existsSync(dir)) out.push({ slug: e.name, direction, dir });
    }
  }
  return out.sort((a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : DIRECTIONS.indexOf(a.direction) - DIRECTIONS.indexOf(b.direction)));
}

function sectionOf(ir: XdpPolicyLike, section: TcSectionIR | number): TcSectionIR {
  const s = typeof section === 'number' ? ir.tc?.[section] : section;
  if (!s) throw new XdpDeployError(`tc #${String(section)}`, `policy ${ir.name} has no tc[${String(section)}]`);
  return s;
}

/**
 * Generates, compiles, loads (verifies) and fills the program of one tc section, without
 * attaching or pinning anything (deploy, the tests and the benchmark share it). The caller
 * closes the object. With `keepSets`, sets start from the ones pinned under `pinnedDir`.
 * @throws CompileError, VerifierError, XdpDeployError (a redirect target that does not exist)
 */
export function buildTcObject(ir: XdpPolicyLike, section: TcSectionIR | number, opts: DeployTcOptions & { pinnedDir?: string } = {}): BpfObject {
  const s = sectionOf(ir, section);
  return loadClassifier(ir.name, generateTc(ir, s), s, opts);
}

/**
 * Compiles, loads, attaches and pins tc section `sectionIndex` of `ir` under
 * `<pinDir>/tc/<ifname>/<direction>/`. A program attached there by an earlier deploy is replaced
 * through its link (bpf_link_update), atomically.
 * @throws CompileError, VerifierError, LoaderError (attach: errno explained), XdpDeployError.
 *   On any failure the interface keeps what it had before (nothing, or the old program).
 */
export function deployTc(ir: XdpPolicyLike, sectionIndex: number, pinDir: string, opts: DeployTcOptions = {}): TcDeployment {
  const s = sectionOf(ir, sectionIndex);
  const progress = opts.progress ?? (() => {});
  const label = `tc ${tcLabel(s)}`;
  const dir = tcDir(pinDir, s.interface, s.direction);
  const obj = buildTcObject(ir, s, { ...opts, pinnedDir: dir });
  let link: BpfLink | null = null;
  try {
    const prog = obj.program(TC_PROG_NAME);
    mkdirp(dir);
    const linkPath = join(dir, 'link');
    if (existsSync(linkPath)) {
      link = BpfLink.openPinned(linkPath);
      const info = link.info();
      const ifindex = ifindexFromTarget(info.target);
      if (ifindex !== 0) {
        progress(`${label}: replacing program ${info.progId} with ${prog.id} (link ${link.id})`);
        swapOnLink(link, obj, prog, dir);
        return { interface: s.interface, direction: s.direction, dir, ifindex, progId: prog.id, linkId: link.id, replaced: true };
      }
      // The interface went away under the link (the kernel detached it): attach anew.
      progress(`${label}: the old link lost its interface: attaching anew`);
      link.close();
      link = null;
      detachDir(dir);
      mkdirp(dir);
    } else if (existsSync(dir)) {
      unpinAll(dir); // leftovers of an interrupted deploy, with no attachment to keep
      mkdirp(dir);
    }
    const att = prog.attachTc(s.interface, s.direction, opts.netns ? { netns: opts.netns } : {});
    link = att;
    try {
      att.pin(linkPath);
      pinAll(obj, prog, dir);
    } catch (err) {
      att.detach();
      unpinAll(dir);
      throw err;
    }
    const ifindex = ifindexFromTarget(att.info().target);
    progress(`${label}: attached program ${prog.id} (tcx, link ${att.id})`);
    return { interface: s.interface, direction: s.direction, dir, ifindex, progId: prog.id, linkId: att.id, replaced: false };
  } finally {
    link?.close();
    obj.close();
  }
}

/**
 * Detaches and unpins the tc sections deployed under `pinDir`: all of them, those of `ifname`, or
 * only `ifname`'s `direction`. Returns what it removed (`veth0 egress`, by directory name).
 */
export function undeployTc(pinDir: string, ifname?: string, direction?: TcDirection): string[] {
  const done: string[] = [];
  for (const d of listTcDeployments(pinDir)) {
    if (ifname !== undefined && d.slug !== ifaceSlug(ifname)) continue;
    if (direction !== undefined && d.direction !== direction) continue;
    detachDir(d.dir);
    done.push(`${d.slug} ${d.direction}`);
  }
  // Empty interface directories, then the root once nothing is left in it.
  const root = tcRoot(pinDir);
  if (existsSync(root)) {
    for (const e of readdirSync(root)) if (!listTcDeployments(pinDir).some((d) => d.slug === e)) unpinAll(join(root, e));
    if (!readdirSync(root).length) unpinAll(root);
  }
  return done;
}

/**
 * Converges the tc sections under `pinDir` to `next`: its sections are deployed (a new
 * attachment, or the program swapped on its link), then the sections `next` no longer has are
 * detached. With `changed` (labels as `tcLabel` makes them, from a diff), a section not in it that
 * is attached already is left alone: its program, counters and live sets stay. Returns what the
 * manifest records. Used by `apply`; `load` does the same in two steps.
 */
export function convergeTc(next: XdpPolicyLike, pinDir: string, opts: DeployTcOptions & { changed?: ReadonlySet<string> } = {}): TcManifestEntry[] {
  const done = (next.tc ?? []).map((s, i) => {
    const dir = tcDir(pinDir, s.interface, s.direction);
    if (opts.changed && !opts.changed.has(tcLabel(s)) && existsSync(join(dir, 'link'))) return { interface: s.interface, direction: s.direction, dir };
    return tcManifestEntry(deployTc(next, i, pinDir, opts));
  });
  removeStaleTc(next, pinDir);
  return done;
}

/** Detaches the tc sections deployed under `pinDir` that `next` does not have. */
export function removeStaleTc(next: XdpPolicyLike, pinDir: string): string[] {
  const want = new Set((next.tc ?? []).map((s) => `${ifaceSlug(s.interface)} ${s.direction}`));
  return listTcDeployments(pinDir)
    .filter((d) => !want.has(`${d.slug} ${d.direction}`))
    .flatMap((d) => undeployTc(pinDir, d.slug, d.direction));
}

/** What a manifest records of a tc deployment. */
export interface TcManifestEntry {
  interface: string;
  direction: TcDirection;
  dir: string;
}

export function tcManifestEntry(d: TcDeployment): TcManifestEntry {
  return { interface: d.interface, direction: d.direction, dir: d.dir };
}
