/**
 * Placement by labels, on Kubernetes: which nodes run which agent configuration.
 *
 * An agent must be told its node's labels (`BPFCTL_NODE_LABELS`): a pod cannot read them without
 * the API, and the agent reads no API. One DaemonSet has one pod template, so one label value for
 * every node; a policy placing functions on `role: edge` and `role: core` needs agents that say
 * `role=edge`, agents that say `role=core`, and agents that say neither. So the nodes are split
 * into classes, one DaemonSet each: for every label key the policy uses, a class takes one of its
 * values (`key In [value]`) or none of them (`key NotIn [values]`, which a node without the label
 * also matches). Each node is in exactly one class, and the DaemonSet controller moves an agent
 * when a node's labels change (it deletes pods from nodes that stop matching).
 */
import type { INodeSelectorRequirement } from 'kubernetes-models/v1/NodeSelectorRequirement';
import type { PolicyIR } from '../../ir/policy.ts';
import { K8sManifestError } from './errors.ts';
import { slug } from './names.ts';

/** More would be more DaemonSets than a person can follow; the policy should use fewer labels. */
export const MAX_CLASSES = 16;

export interface NodeClass {
  /** Appended to the DaemonSet's name; '' when the policy places nothing by label (one class). */
  suffix: string;
  /** The labels the class's nodes have (of those the policy uses): the agent's BPFCTL_NODE_LABELS. */
  labels: Record<string, string>;
  /** What a node of the class matches (all of them). */
  match: INodeSelectorRequirement[];
}

export function nodeClasses(ir: PolicyIR): NodeClass[] {
  const values = new Map<string, Set<string>>();
  for (const f of ir.functions) {
    for (const [k, v] of Object.entries(f.placement?.labels ?? {})) {
      if (!values.has(k)) values.set(k, new Set());
      values.get(k)!.add(v);
    }
  }
  if (values.size === 0) return [{ suffix: '', labels: {}, match: [] }];
  const keys = [...values.keys()].sort();
  let combos: { labels: Record<string, string>; match: INodeSelectorRequirement[] }[] = [{ labels: {}, match: [] }];
  for (const k of keys) {
    const vs = [...values.get(k)!].sort();
    combos = combos.flatMap((c) => [
      ...vs.map((v) => ({ labels: { ...c.labels, [k]: v }, match: [...c.match, { key: k, operator: 'In' as const, values: [v] }] })),
      { labels: c.labels, match: [...c.match, { key: k, operator: 'NotIn' as const, values: vs }] },
    ]);
  }
  if (combos.length > MAX_CLASSES) {
    throw new K8sManifestError(`the placement labels (${keys.join(', ')}) split the nodes into ${combos.length} classes, one DaemonSet each; at most ${MAX_CLASSES}: place by fewer label keys or values`);
  }
  const taken = new Set<string>();
  return combos.map((c) => {
    const base = Object.entries(c.labels).map(([k, v]) => slug(`${k.slice(k.lastIndexOf('/') + 1)}-${v}`)).join('-') || 'rest';
    let suffix = base.slice(0, 40).replace(/-+$/, '');
    for (let n = 2; taken.has(suffix); n++) suffix = `${base.slice(0, 36).replace(/-+$/, '')}-${n}`;
    taken.add(suffix);
    return { suffix, ...c };
  });
}
