/**
 * The manifest of a loaded policy. bpffs holds only BPF objects, so the manifest is itself a
 * pinned one-entry array map whose value is `u32 length` + UTF-8 JSON. It says what is pinned, by
 * which bpfctl, from which IR (the IR is kept whole, so status and route commands need no policy
 * file), and lets bpfctl refuse pins it does not understand.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, unpin } from '../../loader/index.ts';
import { BpfctlError } from '../errors.ts';
import { hashIR, type PolicyIR } from '../ir/policy.ts';

/** Bumped when the pin layout or manifest shape changes incompatibly. */
export const MANIFEST_VERSION = 1;
const MAP_NAME = 'bpfctl_manifest';

export interface Manifest {
  manifestVersion: number;
  policy: string;
  /** IR schema hash (sha256 of the canonical IR, as loaded). */
  schemaHash: string;
  /**
   * Hash of the chain maps' layout (value structs, limits, names) these pins were made with. A
   * bpfctl whose layout differs refuses to read or write them rather than misinterpret them.
   */
  layoutHash: string;
  createdAt: string;
  policyFile: string | null;
  /** The cgroup the sockops program is attached to (null without chains). */
  cgroup: string | null;
  /** Pinned programs/maps/links, relative to the policy directory. */
  pins: { progs: string[]; maps: string[]; links: string[] };
  xdp: { interface: string; mode: string; dir: string }[];
  /** The tc sections attached (tcx links under `tc/<ifname>/<direction>/`); absent when none. */
  tc?: { interface: string; direction: 'ingress' | 'egress'; dir: string }[];
  /** The network namespace the XDP/tc sections' interfaces are in (absent: the loader's own). */
  netns?: string;
  /** sha256 of each function's handler file when it was loaded or applied (what `diff` compares). */
  codeHashes?: Record<string, string>;
  ir: PolicyIR;
}

export class ManifestError extends BpfctlError {
  readonly dir: string;
  constructor(dir: string, message: string, options?: { cause?: unknown }) {
    super('E_MANIFEST', message, options);
    this.dir = dir;
  }
}

export function manifestPath(dir: string): string {
  return join(dir, 'manifest');
}

/**
 * Pins the manifest. The IR's hash and `schemaHash` are derived here from the IR written, so no
 * caller that changes the IR (route changes, scaling, apply) can leave a stale hash behind.
 */
export function writeManifest(dir: string, manifest: Omit<Manifest, 'schemaHash'> & { schemaHash?: string }): void {
  const hash = hashIR(manifest.ir);
  const written: Manifest = { ...manifest, ir: { ...manifest.ir, hash }, schemaHash: hash };
  const json = Buffer.from(JSON.stringify(written), 'utf8');
  // One page-rounded value sized to the content: big IRs (10k-rule XDP sets) fit without a limit.
  const valueSize = Math.ceil((json.length + 4) / 4096) * 4096;
  const value = Buffer.alloc(valueSize);
  value.writeUInt32LE(json.length, 0);
  json.copy(value, 4);
  const path = manifestPath(dir);
  const map = BpfMap.create({ type: 'array', name: MAP_NAME, keySize: 4, valueSize, maxEntries: 1 });
  try {
    map.update(Buffer.alloc(4), value);
    unpin(path);
    map.pin(path);
  } finally {
    map.close();
  }
}

/** @throws ManifestError when the directory holds no manifest or one this bpfctl cannot read. */
export function readManifest(dir: string): Manifest {
  const path = manifestPath(dir);
  if (!existsSync(path)) throw new ManifestError(dir, `${dir} holds no bpfctl manifest (not loaded by bpfctl, or partly removed: bpfctl unload cleans it up)`);
  const map = BpfMap.openPinned(path);
  let text: string;
  try {
    const value = map.lookup(Buffer.alloc(4));
    if (!value) throw new ManifestError(dir, `manifest ${path} is empty`);
    const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const len = buf.readUInt32LE(0);
    if (len > buf.length - 4) throw new ManifestError(dir, `manifest ${path} is corrupt (length ${len} > ${buf.length - 4})`);
    text = buf.subarray(4, 4 + len).toString('utf8');
  } finally {
    map.close();
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw new ManifestError(dir, `manifest ${path} is not valid JSON`, { cause: err });
  }
  if (m.manifestVersion !== MANIFEST_VERSION) {
    throw new ManifestError(
      dir,
      `policy ${m.policy ?? '?'} was pinned by a bpfctl with manifest version ${m.manifestVersion}, this one reads ${MANIFEST_VERSION}: refusing to reuse its maps (bpfctl unload ${m.policy ?? dir} and load it again)`,
    );
  }
  return m;
}
