/**
 * The policy tree as a ConfigMap, and the volume that mounts it back as the same tree.
 *
 * ConfigMap keys are flat ([-._a-zA-Z0-9]+), so `functions/upper.ts` is stored under a key like
 * `functions_upper.ts`, and the volume's `items` give each key its path in the mount. The
 * kubelet then writes the files under `..data/` with their directories and links every top-level
 * name (`policy.ts`, `functions`) to it, so the agent's `/etc/bpfctl/policy/policy.ts` finds
 * `./functions/upper.ts` where the policy says. An update swaps `..data` in one rename, which the
 * agent's watch on the directory sees, handlers and policy together.
 */
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IKeyToPath } from 'kubernetes-models/v1/KeyToPath';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import { K8sManifestError } from './errors.ts';
import { CONFIGMAP_KEY } from './names.ts';
import type { PolicyTree } from './tree.ts';

/** The API server refuses a ConfigMap whose data and binaryData add up to more. */
export const CONFIGMAP_MAX_BYTES = 1024 * 1024;
/** `kubectl apply` without --server-side copies the object into an annotation of at most this. */
export const LAST_APPLIED_MAX_BYTES = 256 * 1024;
/** Mode of the mounted files (0644; 0755 for a prebuilt program). YAML has no octal: decimal. */
const FILE_MODE = 0o644;
const EXEC_MODE = 0o755;

export interface PolicyConfigMap {
  configMap: IConfigMap;
  /** The pod volume that mounts it as the policy directory. */
  volume: IVolume;
  /** Bytes of its data (what the 1 MiB limit counts). */
  bytes: number;
}

/** The ConfigMap key of a tree path: the path itself when it is a valid key, else flattened. */
export function keyOf(path: string): string {
  return path.replace(/\//g, '_').replace(/[^-._a-zA-Z0-9]/g, '-');
}

export function policyConfigMap(tree: PolicyTree, name: string, namespace: string, labels: Record<string, string>): PolicyConfigMap {
  const data: Record<string, string> = {};
  const binaryData: Record<string, string> = {};
  const items: IKeyToPath[] = [];
  const taken = new Set<string>();
  let bytes = 0;
  for (const f of tree.files) {
    let key = keyOf(f.path);
    for (let n = 2; taken.has(key); n++) key = `${keyOf(f.path)}.${n}`;
    if (!CONFIGMAP_KEY.test(key) || key.length > 253) throw new K8sManifestError(`${f.path}: no ConfigMap key can name it (${key})`);
    taken.add(key);
    const text = f.data.toString('utf8');
    // Text goes in `data`, readable in `kubectl get -o yaml`; anything else in `binaryData`.
    if (!text.includes('\0') && Buffer.from(text, 'utf8').equals(f.data)) data[key] = text;
    else binaryData[key] = f.data.toString('base64');
    bytes += f.data.length;
    items.push({ key, path: f.path, ...(f.executable ? { mode: EXEC_MODE } : {}) });
  }
  if (bytes > CONFIGMAP_MAX_BYTES) {
    const biggest = [...tree.files].sort((a, b) => b.data.length - a.data.length).slice(0, 3).map((f) => `${f.path} ${f.data.length} B`);
    throw new K8sManifestError(`the policy's files add up to ${bytes} bytes, more than the ${CONFIGMAP_MAX_BYTES} a ConfigMap holds (largest: ${biggest.join(', ')}): put large files in the image`);
  }
  const configMap: IConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels },
    ...(Object.keys(data).length ? { data } : {}),
    ...(Object.keys(binaryData).length ? { binaryData } : {}),
  };
  const volume: IVolume = { name: 'policy', configMap: { name, defaultMode: FILE_MODE, items } };
  return { configMap, volume, bytes };
}
