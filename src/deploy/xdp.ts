/**
 * Deploy and remove a policy's XDP sections. Each section becomes one program attached to its
 * interface through a pinned bpf_link, with its maps and program pinned next to the link:
 *
 *   <pinDir>/xdp/<ifname>/link          the attachment (removing it detaches the program)
 *   <pinDir>/xdp/<ifname>/prog          the program
 *   <pinDir>/xdp/<ifname>/maps/<name>   rule_stats, xdp_stats, tx_ports, xsk_<group>, set_<name>
 *
 * Redeploying swaps the program with one link update: the interface is never without a program.
 * Everything that can fail on bad input (codegen, clang, the verifier, filling the maps) happens
 * before the running program is touched, and a failure after that is rolled back.
 *
 * tc sections (src/deploy/tc.ts) are deployed the same way through tcx links, with the same
 * directory layout under `<pinDir>/tc/<ifname>/<direction>/`: what is shared lives here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, BpfMap, BpfObject, BpfProgram, mkdirp, unpin, unpinAll, withNetns } from '../../loader/index.ts';
import { type GeneratedXdp, generateXdp, ifaceSlug, setMapName, XDP_MAPS, XDP_PROG_NAME, type XdpPolicyLike, xskMapName } from '../codegen/xdp/index.ts';
import { type CompileOptions, compileBpf } from '../compile/index.ts';
import { BpfctlError } from '../errors.ts';
import type { ClassifierSectionIR, XdpSectionIR } from '../ir/xdp.ts';
import { encodeSetKey, kindOfMap, SET_VALUE } from './xdp-sets.ts';

export type XdpModeOption = 'native' | 'generic' | 'auto';

export interface DeployXdpOptions {
  /** Used when the section's mode is 'auto' (the default): 'native', 'generic' or 'auto'. */
  mode?: XdpModeOption;
  /** Network namespace of the interface (a name under /run/netns, or a path). */
  netns?: string;
  /** Keep the elements the running program's sets hold (changed with `bpfctl set`) instead of the policy's. */
  keepSets?: boolean;
  progress?: (text: string) => void;
  compile?: CompileOptions;
}

export interface XdpDeployment {
  interface: string;
  /** The mode the kernel used: 'native' or 'generic'. */
  mode: string;
  /** The section's pin directory. */
  dir: string;
  ifindex: number;
  progId: number;
  linkId: number;
  /** True when an attached program was replaced (link update). */
  replaced: boolean;
}

/** Deploying a section failed for a reason other than compile/verify/attach errors. */
export class XdpDeployError extends BpfctlError {
  readonly interface: string;
  constructor(ifname: string, message: string, options?: { cause?: unknown }) {
    super('E_XDP_DEPLOY', `xdp ${ifname}: ${message}`, options);
    this.interface = ifname;
  }
}

export function xdpRoot(pinDir: string): string {
  return join(pinDir, 'xdp');
}

export function xdpDir(pinDir: string, ifname: string): string {
  return join(xdpRoot(pinDir), ifaceSlug(ifname));
}

/** Interfaces with a deployed section under `pinDir` (directory names). */
export function listXdpDeployments(pinDir: string): string[] {
  const root = xdpRoot(pinDir);
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/** ifindex of `ifname`, looked up in `netns` when given. 0 when there is no such interface. */
export function ifindexOf(ifname: string, netns?: string): number {
  try {
    const out = execFileSync('ip', [...(netns ? ['-n', netns] : []), '-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return (JSON.parse(out) as { ifindex: number }[])[0]?.ifindex ?? 0;
  } catch {
    return 0;
  }
}

function inNetns<T>(netns: string | undefined, fn: () => T): T {
  return netns ? withNetns(netns, fn) : fn();
}

/** Fills the new program's maps: sets (from the policy, or the running sets) and redirect targets. */
function fillMaps(obj: BpfObject, s: ClassifierSectionIR, dir: string | undefined, opts: DeployXdpOptions): void {
  for (const set of s.sets) {
    const map = obj.map(setMapName(set.name));
    const oldPath = dir && join(dir, 'maps', setMapName(set.name));
    if (opts.keepSets && oldPath && existsSync(oldPath)) {
      const old = BpfMap.openPinned(oldPath);
      try {
        if (kindOfMap(old) === set.kind) {
          for (let k = old.nextKey(null); k; k = old.nextKey(k)) map.update(k, SET_VALUE);
          continue;
        }
      } finally {
        old.close();
      }
    }
    for (const e of set.elements) map.update(encodeSetKey(set.name, set.kind, e), SET_VALUE);
  }
  if (s.redirects.length) {
    const txPorts = obj.map(XDP_MAPS.txPorts);
    // A devmap resolves the ifindex in the namespace of the process that writes it (tc's array
    // holds the number only, which bpf_redirect() reads in the device's own namespace).
    inNetns(opts.netns, () => {
      s.redirects.forEach((ifname, slot) => {
        const ifindex = ifindexOf(ifname, opts.netns);
        if (!ifindex) throw new XdpDeployError(s.interface, `redirect target '${ifname}' does not exist${opts.netns ? ` in netns ${opts.netns}` : ''}`);
        const key = new Uint8Array(4);
        const value = new Uint8Array(4);
        new DataView(key.buffer).setUint32(0, slot, true);
        new DataView(value.buffer).setUint32(0, ifindex, true);
        txPorts.update(key, value);
      });
    });
  }
}

/**
 * Generates, compiles, loads (verifies) and fills the program of one section, without attaching or
 * pinning anything: what deploy, the tests and the benchmark share. The caller closes the object.
 * With `keepSets`, sets start from the ones pinned under `pinnedDir`.
 * @throws CompileError, VerifierError, XdpDeployError (a redirect target that does not exist)
 */
export function buildXdpObject(ir: XdpPolicyLike, section: XdpSectionIR | number, opts: DeployXdpOptions & { pinnedDir?: string } = {}): BpfObject {
  const s = typeof section === 'number' ? ir.xdp[section] : section;
  if (!s) throw new XdpDeployError(`#${String(section)}`, `policy ${ir.name} has no xdp[${String(section)}]`);
  return loadClassifier(ir.name, generateXdp(ir, s), s, opts);
}

/**
 * Compiles a generated classifier, loads it (the verifier) and fills its maps for section `s`:
 * the part of building a program the xdp and tc deployers share. The caller closes the object.
 */
export function loadClassifier(policy: string, gen: GeneratedXdp, s: ClassifierSectionIR, opts: DeployXdpOptions & { pinnedDir?: string }): BpfObject {
  const base = gen.file.replace(/\.bpf\.c$/, '');
  const { objectPath } = compileBpf({ source: gen.source, name: `${policy}-${base}` }, opts.compile);
  const obj = BpfObject.open(objectPath, { name: `${policy}-${base}` });
  try {
    // AF_XDP sockets (pktio's, a user's) are in the running program's xskmaps: the replacement
    // must use the same maps, or every steered frame would drop until each socket re-registered.
    // (libbpf dups the fd: the pinned map's own handle is closed once the object is loaded.)
    const olds: BpfMap[] = [];
    try {
      for (const g of 'xskGroups' in s ? s.xskGroups : []) {
        const pinned = opts.pinnedDir && join(opts.pinnedDir, 'maps', xskMapName(g));
        if (!pinned || !existsSync(pinned)) continue;
        const old = BpfMap.openPinned(pinned);
        olds.push(old);
        obj.reuseMap(xskMapName(g), old);
      }
      obj.load();
    } finally {
      for (const m of olds) m.close();
    }
    fillMaps(obj, s, opts.pinnedDir, opts);
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

/** Pins a loaded section's program and maps under its directory (`prog`, `maps/<name>`). */
export function pinAll(obj: BpfObject, prog: BpfProgram, dir: string): string[] {
  const pinned: string[] = [];
  try {
    prog.pin(join(dir, 'prog'));
    pinned.push(join(dir, 'prog'));
    for (const m of obj.maps) {
      const path = join(dir, 'maps', m.name);
      obj.map(m.name).pin(path);
      pinned.push(path);
    }
    return pinned;
  } catch (err) {
    for (const p of pinned) unpin(p);
    throw err;
  }
}

function openPinnedMaps(dir: string): Map<string, BpfMap> {
  const out = new Map<string, BpfMap>();
  const maps = join(dir, 'maps');
  if (!existsSync(maps)) return out;
  try {
    for (const name of readdirSync(maps)) out.set(name, BpfMap.openPinned(join(maps, name)));
  } catch (err) {
    for (const m of out.values()) m.close();
    throw err;
  }
  return out;
}

function unpinProgAndMaps(dir: string): void {
  unpin(join(dir, 'prog'));
  unpinAll(join(dir, 'maps'));
}

/**
 * Replaces the program on `link` with `prog` (bpf_link_update: traffic never meets a moment
 * without a program), then the pins under `dir` with the new object's. If pinning fails, the old
 * program goes back on the link and its pins back in place: exactly what was there.
 */
export function swapOnLink(link: BpfLink, obj: BpfObject, prog: BpfProgram, dir: string): void {
  const oldProg = existsSync(join(dir, 'prog')) ? BpfProgram.openPinned(join(dir, 'prog')) : null;
  const oldMaps = openPinnedMaps(dir);
  try {
    link.update(prog);
    try {
      unpinProgAndMaps(dir);
      pinAll(obj, prog, dir);
    } catch (err) {
      if (oldProg) link.update(oldProg);
      unpinProgAndMaps(dir);
      oldProg?.pin(join(dir, 'prog'));
      for (const [name, m] of oldMaps) m.pin(join(dir, 'maps', name));
      throw err;
    }
  } finally {
    for (const m of oldMaps.values()) m.close();
    oldProg?.close();
  }
}

/**
 * Compiles, loads, attaches and pins xdp section `sectionIndex` of `ir` under
 * `<pinDir>/xdp/<ifname>/`. An attached program (from an earlier deploy) is replaced atomically;
 * a new attachment uses the section's mode, or `opts.mode` when the section says 'auto'.
 * @throws CompileError, VerifierError, LoaderError (attach: errno explained), XdpDeployError.
 *   On any failure the interface keeps what it had before (nothing, or the old program).
 */
export function deployXdp(ir: XdpPolicyLike, sectionIndex: number, pinDir: string, opts: DeployXdpOptions = {}): XdpDeployment {
  const s = ir.xdp[sectionIndex];
  if (!s) throw new XdpDeployError(`#${sectionIndex}`, `policy ${ir.name} has no xdp[${sectionIndex}]`);
  const progress = opts.progress ?? (() => {});
  const dir = xdpDir(pinDir, s.interface);
  const mode: XdpModeOption = s.mode !== 'auto' ? s.mode : (opts.mode ?? 'auto');

  const obj = buildXdpObject(ir, s, { ...opts, pinnedDir: dir });
  let link: BpfLink | null = null;
  try {
    const prog = obj.program(XDP_PROG_NAME);
    mkdirp(dir);
    const linkPath = join(dir, 'link');

    if (existsSync(linkPath)) {
      link = BpfLink.openPinned(linkPath);
      const info = link.info();
      const current = currentMode(info.target, opts.netns);
      const live = ifindexFromTarget(info.target) !== 0; // 0: the interface went away under the link
      if (live && (mode === 'auto' || mode === current)) {
        progress(`xdp ${s.interface}: replacing program ${info.progId} with ${prog.id} (link ${link.id})`);
        swapOnLink(link, obj, prog, dir);
        return { interface: s.interface, mode: current ?? 'unknown', dir, ifindex: ifindexFromTarget(info.target), progId: prog.id, linkId: link.id, replaced: true };
      }
      // A different mode needs a new attachment: the old one has to go first (brief gap).
      progress(live ? `xdp ${s.interface}: mode ${current} -> ${mode}: re-attaching` : `xdp ${s.interface}: the old link lost its interface: attaching anew`);
      link.close();
      link = null;
      detachDir(dir);
      mkdirp(dir);
    } else if (existsSync(dir)) {
      unpinAll(dir); // leftovers of an interrupted deploy, with no attachment to keep
      mkdirp(dir);
    }

    const att = prog.attachXdp(s.interface, { mode, ...(opts.netns ? { netns: opts.netns } : {}) });
    link = att;
    try {
      att.pin(linkPath);
      pinAll(obj, prog, dir);
    } catch (err) {
      att.detach();
      unpinAll(dir);
      throw err;
    }
    progress(`xdp ${s.interface}: attached program ${prog.id} (${att.mode}, link ${att.id})`);
    return { interface: s.interface, mode: att.mode, dir, ifindex: att.ifindex, progId: prog.id, linkId: att.id, replaced: false };
  } finally {
    link?.close();
    obj.close();
  }
}

/** The ifindex a link (xdp, tcx) is attached to, from its info's target; 0 once its interface is gone. */
export function ifindexFromTarget(target: string): number {
  const m = /^ifindex:(\d+)/.exec(target);
  return m ? Number(m[1]) : 0;
}

/** The mode an XDP link is attached in, from `ip link` (xdp = native, xdpgeneric = generic). */
export function currentMode(target: string, netns?: string): 'native' | 'generic' | undefined {
  const ifindex = ifindexFromTarget(target);
  if (!ifindex) return undefined;
  try {
    const out = execFileSync('ip', [...(netns ? ['-n', netns] : []), '-d', '-j', 'link', 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const dev = (JSON.parse(out) as { ifindex: number; xdp?: { mode?: number } }[]).find((d) => d.ifindex === ifindex);
    // XDP_ATTACHED_DRV = 1, XDP_ATTACHED_SKB = 2.
    return dev?.xdp?.mode === 1 ? 'native' : dev?.xdp?.mode === 2 ? 'generic' : undefined;
  } catch {
    return undefined;
  }
}

/** Detach through the link (explicitly, so a link fd held elsewhere cannot keep it attached) and unpin. */
export function detachDir(dir: string): void {
  const linkPath = join(dir, 'link');
  if (existsSync(linkPath)) {
    const l = BpfLink.openPinned(linkPath);
    try {
      l.detach();
    } catch {
      // Already detached (its interface is gone): removing the pin below releases it.
    } finally {
      l.close();
    }
  }
  unpinAll(dir);
}

/**
 * Detaches and unpins the XDP sections deployed under `pinDir` (only `ifname`'s when given).
 * Returns the interfaces it removed.
 */
export function undeployXdp(pinDir: string, ifname?: string): string[] {
  const names = ifname ? [ifaceSlug(ifname)] : listXdpDeployments(pinDir);
  const done: string[] = [];
  for (const n of names) {
    const dir = join(xdpRoot(pinDir), n);
    if (!existsSync(dir)) continue;
    detachDir(dir);
    done.push(n);
  }
  if (!ifname && existsSync(xdpRoot(pinDir))) unpinAll(xdpRoot(pinDir));
  return done;
}
