/**
 * Load, replace, inspect and remove whole policies. A loaded policy is one bpffs directory
 * (`<root>/<policy>/`: maps/, progs/, links/, xdp/<ifname>/, manifest) plus one cgroup.
 *
 * Replacing a loaded policy builds and verifies the new code first, so a policy that does not
 * compile or verify leaves the running one untouched; XDP programs are swapped atomically through
 * their links; the chain's pins are swapped (its functions re-register, as after any code change:
 * sockets keep the sk_msg program they were inserted with).
 */
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBpffs, mkdirp, unpinAll } from '../../loader/index.ts';
import { CHAIN_LAYOUT_HASH } from '../ir/chain-maps.ts';
import type { PolicyIR } from '../ir/policy.ts';
import { removeCgroup } from './cgroup.ts';
import { hasChain, installChain, prepareChain } from './chain.ts';
import { manifestHashes } from './code-hash.ts';
import { PolicyNotLoadedError } from './loaded.ts';
import { MANIFEST_VERSION, type Manifest, readManifest, writeManifest } from './manifest.ts';
import { pinRoot, policyCgroup, policyDir } from './paths.ts';
import { deployTc, removeStaleTc, tcManifestEntry, undeployTc } from './tc.ts';
import { deployXdp, undeployXdp } from './xdp.ts';

export interface LoadOptions {
  root?: string;
  policyFile?: string;
  progress?: (text: string) => void;
  /** XDP attach mode for every section that does not name one. */
  xdpMode?: 'native' | 'generic' | 'auto';
  /** On a replacement, keep the live contents of XDP sets (changed with `bpfctl set`) instead of refilling them from the policy. */
  keepSets?: boolean;
  /** Network namespace of the XDP sections' interfaces (a name under /run/netns, or a path). */
  netns?: string;
}

export interface LoadResult {
  manifest: Manifest;
  dir: string;
  replaced: boolean;
}

// What is loaded, read only: its own module, so listing and inspecting commands do not load codegen.
export { listPolicies, loadedManifest, PolicyNotLoadedError } from './loaded.ts';

/**
 * Build, load, attach and pin a policy; replaces it if it is already loaded.
 * @throws CompileError, VerifierError, LoaderError, CgroupError (nothing new is left behind)
 */
export function loadPolicy(ir: PolicyIR, opts: LoadOptions = {}): LoadResult {
  const root = opts.root ?? pinRoot();
  const progress = opts.progress ?? (() => {});
  ensureBpffs(root.startsWith('/sys/fs/bpf') ? '/sys/fs/bpf' : root);
  const dir = policyDir(ir.name, root);
  const old = existsSync(join(dir, 'manifest')) ? readManifest(dir) : null;
  const replaced = old !== null || existsSync(dir);

  // Everything that can fail on bad code happens before the loaded policy is touched.
  const prepared = hasChain(ir) ? prepareChain(ir, progress) : null;

  const pins: Manifest['pins'] = { progs: [], maps: [], links: [] };
  const xdp: Manifest['xdp'] = [];
  const tc: NonNullable<Manifest['tc']> = [];
  let cgroup: string | null = null;
  // Until the chain swap starts, a failure leaves a loaded policy exactly as it was: deployXdp
  // replaces each interface's program atomically or not at all.
  let swapping = false;
  try {
    mkdirp(dir);
    for (let i = 0; i < ir.xdp.length; i++) {
      progress(`XDP: ${ir.xdp[i]!.interface}`);
      const d = deployXdp(ir, i, dir, { mode: opts.xdpMode, keepSets: opts.keepSets, progress, ...(opts.netns ? { netns: opts.netns } : {}) });
      xdp.push({ interface: d.interface, mode: d.mode, dir: d.dir });
    }
    for (let i = 0; i < (ir.tc?.length ?? 0); i++) {
      progress(`tc: ${ir.tc![i]!.interface} ${ir.tc![i]!.direction}`);
      tc.push(tcManifestEntry(deployTc(ir, i, dir, { keepSets: opts.keepSets, progress, ...(opts.netns ? { netns: opts.netns } : {}) })));
    }
    swapping = true;
    // Interfaces the old policy classified and the new one does not: detach.
    for (const o of old?.xdp ?? []) {
      if (!ir.xdp.some((s) => s.interface === o.interface)) undeployXdp(dir, o.interface);
    }
    removeStaleTc(ir, dir);
    for (const sub of ['maps', 'progs', 'links']) unpinAll(join(dir, sub));
    if (prepared) {
      progress('attaching sk_msg to the sockhash');
      const installed = installChain(ir, dir, prepared);
      pins.progs.push(...installed.progs);
      pins.maps.push(...installed.maps);
      pins.links.push(...installed.links);
      cgroup = installed.cgroup;
    } else if (old?.cgroup) {
      removeCgroupQuietly(old.cgroup);
    }
    const manifest: Manifest = {
      manifestVersion: MANIFEST_VERSION,
      policy: ir.name,
      schemaHash: ir.hash,
      layoutHash: CHAIN_LAYOUT_HASH,
      createdAt: new Date().toISOString(),
      policyFile: opts.policyFile ?? null,
      cgroup,
      pins,
      xdp,
      ...(tc.length ? { tc } : {}),
      ...(opts.netns ? { netns: opts.netns } : {}),
      codeHashes: opts.policyFile ? manifestHashes(opts.policyFile, ir) : {},
      ir,
    };
    writeManifest(dir, manifest);
    progress(`${replaced ? 'replaced' : 'loaded'} policy ${ir.name} (pinned under ${dir})`);
    return { manifest, dir, replaced };
  } catch (err) {
    prepared?.object.close();
    if (old && !swapping) {
      // The old policy still runs. Sections replaced before the failure run the new program, which
      // the old manifest does not describe: say which in the error rather than guess a rollback.
      const done = [...xdp.map((x) => `XDP on ${x.interface}`), ...tc.map((x) => `tc on ${x.interface} ${x.direction}`)];
      if (done.length && err instanceof Error) err.message += ` (the policy loaded before keeps running; ${done.join(', ')} ${done.length > 1 ? 'were' : 'was'} already replaced)`;
      throw err;
    }
    // A half-installed policy is worse than none: remove all of it.
    removePolicyPins(dir);
    if (cgroup ?? old?.cgroup) removeCgroupQuietly(cgroup ?? old!.cgroup!);
    throw err;
  }
}

/** Detach and remove everything a policy pinned, and its cgroup. @throws PolicyNotLoadedError */
export function unloadPolicy(name: string, opts: { root?: string } = {}): { removed: string[] } {
  const root = opts.root ?? pinRoot();
  const dir = policyDir(name, root);
  if (!existsSync(dir)) throw new PolicyNotLoadedError(name, root);
  let manifest: Manifest | null = null;
  try {
    manifest = readManifest(dir);
  } catch {
    // A broken or foreign manifest must not keep `unload` from cleaning up what is there.
  }
  const removed = existsSync(dir) ? listPins(dir) : [];
  removePolicyPins(dir);
  removeCgroupQuietly(manifest?.cgroup ?? policyCgroup(name));
  // The shared root goes with the last policy, so an unloaded machine holds nothing of bpfctl.
  try {
    rmdirSync(root);
  } catch {
    // other policies still loaded, or not ours to remove
  }
  return { removed };
}

function removePolicyPins(dir: string): void {
  if (!existsSync(dir)) return;
  // XDP and tc first and explicitly: their links are what keeps traffic flowing through old programs.
  if (existsSync(join(dir, 'xdp'))) undeployXdp(dir);
  if (existsSync(join(dir, 'tc'))) undeployTc(dir);
  unpinAll(dir);
}

function removeCgroupQuietly(path: string): void {
  try {
    removeCgroup(path);
  } catch {
    // Processes still inside (a running `bpfctl run`) keep it; it is empty of programs anyway.
  }
}

function listPins(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listPins(join(dir, e.name), rel));
    else out.push(rel);
  }
  return out.sort();
}
