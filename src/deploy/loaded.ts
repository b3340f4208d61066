/**
 * Which policies are loaded and what their manifests say: read-only, and light (no codegen, no
 * compiler), so commands that only list or inspect start quickly.
 */
import { join } from 'node:path';
import { BpfctlError } from '../errors.ts';
import { listDir, pathExists } from './access.ts';
import { type Manifest, readManifest } from './manifest.ts';
import { pinRoot, policyDir } from './paths.ts';

export class PolicyNotLoadedError extends BpfctlError {
  constructor(name: string, root: string) {
    super('E_NOT_LOADED', `policy ${name} is not loaded (nothing under ${policyDir(name, root)}; bpfctl status lists loaded policies)`);
  }
}

/** Names of loaded policies under the pin root. */
export function listPolicies(root = pinRoot()): string[] {
  // Permission-aware (access.ts): an unreadable root is "permission denied", not "none loaded".
  return listDir(root, 'cannot list loaded policies in')
    .filter((n) => !n.startsWith('.') && pathExists(join(root, n, 'manifest')))
    .sort();
}

/** The manifest of a loaded policy. @throws PolicyNotLoadedError, ManifestError */
export function loadedManifest(name: string, root = pinRoot()): Manifest {
  const dir = policyDir(name, root);
  if (!pathExists(dir)) throw new PolicyNotLoadedError(name, root);
  // Throws AccessError for a directory we may not search (readManifest would say "no manifest").
  pathExists(join(dir, 'manifest'));
  return readManifest(dir);
}
