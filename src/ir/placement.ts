/**
 * Placement: which nodes run a function when a policy spans several (docs/multi-node.md). Plain
 * data and pure functions, like the rest of the IR: the check of a policy's `placement`, and the
 * share of a policy one node runs (`localShare`), which is what that node's agent loads and
 * converges to with the ordinary single-node machinery.
 */
import { checkKeys, describe, type Issues, isPlainObject, type PathSegment } from './issues.ts';

export interface PlacementIR {
  /** Node names, in the policy's order: the instances are spread over them. */
  nodes?: string[];
  /** Labels a node must carry (all of them): every matching node runs `instances`. */
  labels?: Record<string, string>;
  /**
   * Present (false) only when the policy says so: this function's requests never go to another
   * node's instances while it has local ones, however loaded those are. By default they spill.
   */
  spill?: false;
}

/** What a node is, as its agent was told (`bpfctl agent --node NAME --labels k=v`). */
export interface NodeIdentity {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** A Kubernetes node name is a DNS subdomain; agents use the same names. */
export const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;
/** Label keys (optionally prefixed) and values as Kubernetes writes them. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function lowerPlacement(spec: unknown, instances: number, path: PathSegment[], issues: Issues): PlacementIR | undefined {
  if (!isPlainObject(spec)) {
    issues.add(path, `placement must be an object { nodes: [...] } or { labels: {...} }, got ${describe(spec)}`);
    return undefined;
  }
  checkKeys(spec, ['nodes', 'labels', 'spill'], path, issues);
  if (spec.spill !== undefined && typeof spec.spill !== 'boolean') issues.add([...path, 'spill'], `spill must be true or false, got ${describe(spec.spill)}`);
  const spill = spec.spill === false ? { spill: false as const } : {};
  if ((spec.nodes === undefined) === (spec.labels === undefined)) {
    issues.add(path, 'placement needs exactly one of nodes (names) or labels');
    return undefined;
  }
  if (spec.nodes !== undefined) {
    const p = [...path, 'nodes'];
    if (!Array.isArray(spec.nodes) || spec.nodes.length === 0) {
      issues.add(p, `nodes must be a non-empty array of node names, got ${describe(spec.nodes)}`);
      return undefined;
    }
    const nodes: string[] = [];
    for (let i = 0; i < spec.nodes.length; i++) {
      const n: unknown = spec.nodes[i];
      if (typeof n !== 'string' || !NODE_NAME.test(n)) issues.add([...p, i], `node name must be a DNS name (a-z, 0-9, '-', '.'; at most 63), got ${describe(n)}`);
      else if (nodes.includes(n)) issues.add([...p, i], `node '${n}' is listed twice`);
      else nodes.push(n);
    }
    // Spread over the nodes: with fewer instances than nodes some node would run none, which is
    // almost always a mistake in the policy rather than a wish.
    if (nodes.length === spec.nodes.length && instances < nodes.length) {
      issues.add(p, `${instances} instance${instances === 1 ? '' : 's'} cannot be spread over ${nodes.length} nodes (instances are the total over the listed nodes)`);
    }
    return { nodes, ...spill };
  }
  const p = [...path, 'labels'];
  if (!isPlainObject(spec.labels) || Object.keys(spec.labels).length === 0) {
    issues.add(p, `labels must be a non-empty object of label -> value, got ${describe(spec.labels)}`);
    return undefined;
  }
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.labels)) {
    if (!LABEL_KEY.test(k)) issues.add([...p, k], `label key '${k}' is not a Kubernetes label key`);
    else if (typeof v !== 'string' || !LABEL_VALUE.test(v)) issues.add([...p, k], `label value must be a string of at most 63 of A-Z, a-z, 0-9, '-', '_', '.', got ${describe(v)}`);
    else labels[k] = v;
  }
  return { labels, ...spill };
}

/**
 * Instances of one function on `node`: all of them without placement; its part of the spread
 * (in list order, the first nodes taking the remainder) when placed by name; all of them on a
 * node whose labels match, none elsewhere.
 */
export function localInstances(f: { instances: number; placement?: PlacementIR }, node: NodeIdentity): number {
  const pl = f.placement;
  if (!pl) return f.instances;
  if (pl.nodes) {
    const at = pl.nodes.indexOf(node.name);
    if (at < 0) return 0;
    const m = pl.nodes.length;
    return Math.floor(f.instances / m) + (at < f.instances % m ? 1 : 0);
  }
  for (const [k, v] of Object.entries(pl.labels ?? {})) if (node.labels[k] !== v) return 0;
  return f.instances;
}

/** The part of a policy `node` runs: the same IR with each function's local instance count. */
export function localShare<T extends { functions: { instances: number; placement?: PlacementIR }[] }>(ir: T, node: NodeIdentity): T {
  return { ...ir, functions: ir.functions.map((f) => ({ ...f, instances: localInstances(f, node) })) };
}

/** True when a policy places any function (it is meant for several nodes). */
export function isPlaced(ir: { functions: { placement?: PlacementIR }[] }): boolean {
  return ir.functions.some((f) => f.placement !== undefined);
}
