/**
 * `bpfctl k8s manifests POLICY`: what a cluster needs to run a policy's agents (docs/kubernetes.md).
 * A pure function of the loaded policy, its file tree and the options: the same input gives the
 * same objects, byte for byte once rendered (render.ts), which is what lets examples/k8s be
 * checked against it.
 *
 * Objects: a Namespace; the node-link Secret (unless an existing one is named); the policy tree as
 * a ConfigMap; the agent as one DaemonSet per node class (one when the policy places nothing by
 * label); a Service for the gateways. No ServiceAccount or RBAC: the agent reads no Kubernetes API.
 */
import { isPlaced } from '../../ir/placement.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { objectProblems, referenceProblems } from './api-rules.ts';
import { LAST_APPLIED_MAX_BYTES, policyConfigMap } from './configmap.ts';
import { agentDaemonSet, CLASS_LABEL } from './daemonset.ts';
import { K8sManifestError } from './errors.ts';
import { policyNames } from './names.ts';
import { nodeClasses } from './node-classes.ts';
import { gatewayService, type K8sObject, namespaceObject, secretObject } from './objects.ts';
import { checkOptions, type ManifestOptions, mebibytes } from './options.ts';
import type { PolicyTree } from './tree.ts';

export type { K8sObject } from './objects.ts';

export interface ManifestDocument {
  object: K8sObject;
  /** Why the object is as it is, for a person reading the YAML. */
  comment: string;
  /** The file it goes in with `-o DIR`: numbered, so `kubectl apply -f DIR` makes the Namespace first. */
  file: string;
}

export interface Manifests {
  policy: string;
  documents: ManifestDocument[];
  /** What the person applying them must know (printed on stderr, not in the YAML). */
  notes: string[];
}

export const FILES = { namespace: '00-namespace.yaml', secret: '10-secret.yaml', configMap: '20-configmap.yaml', daemonSet: '30-daemonset.yaml', service: '40-service.yaml' } as const;

/** @throws K8sManifestError for options or a placement Kubernetes cannot run as asked */
export function generateManifests(ir: PolicyIR, tree: PolicyTree, o: ManifestOptions): Manifests {
  checkOptions(o, ir);
  checkPlacement(ir, o);
  const names = policyNames(ir.name);
  const labels = names.podLabels;
  const ns = o.namespace;
  const hasGateway = ir.routes.length > 0;
  const documents: ManifestDocument[] = [];
  const notes: string[] = [];

  documents.push({
    object: namespaceObject(ns),
    comment: 'Pod Security "privileged": the agent needs the host network, hostPath volumes and added capabilities, which the baseline level refuses.',
    file: FILES.namespace,
  });

  let secretName: string;
  if ('existing' in o.secret) {
    secretName = o.secret.existing;
    notes.push(`the node-link secret is read from the existing Secret ${ns}/${secretName} (key "secret"): create it before the agents start (docs/kubernetes.md)`);
  } else {
    secretName = names.secret;
    documents.push({
      object: secretObject(secretName, ns, labels, o.secret.value),
      comment: 'The shared secret the node-links prove to each other (HMAC-SHA256 challenge-response) before any descriptor is read. Keep this file out of git.',
      file: FILES.secret,
    });
  }

  const cm = policyConfigMap(tree, names.configMap, ns, labels);
  documents.push({
    object: cm.configMap,
    comment: `The policy ${ir.name} and the files it needs (${tree.files.length}), mounted at /etc/bpfctl/policy by the agent's volume "policy", whose items put each key back at its path. A change is applied live by every agent (the kubelet swaps the files in one rename).`,
    file: FILES.configMap,
  });
  if (cm.bytes > LAST_APPLIED_MAX_BYTES) notes.push(`the policy's ConfigMap is ${cm.bytes} bytes: apply it with kubectl apply --server-side (a client-side apply copies it into an annotation of at most 256 KiB)`);

  const classes = nodeClasses(ir);
  for (const c of classes) {
    const where = c.suffix ? `the nodes of class ${c.suffix} (${c.match.map((m) => `${m.key} ${m.operator} ${m.values?.join('|')}`).join(', ')})` : o.peers.length ? 'the nodes of --peers' : 'every node';
    documents.push({
      object: agentDaemonSet({
        name: c.suffix ? `${names.base}-${c.suffix}` : names.base,
        namespace: ns,
        image: o.image,
        podLabels: labels,
        nodeClass: c,
        gatewayPort: hasGateway ? o.gatewayPort : null,
        linkPort: o.linkPort,
        peers: o.peers,
        secretName,
        policyVolume: cm.volume,
        hugepagesBytes: o.hugepagesBytes,
        packet: (ir.packet?.functions.length ?? 0) > 0 || (ir.packet?.chains.length ?? 0) > 0,
      }),
      comment: `The agent of ${ir.name} on ${where}. Host network; capabilities, not privilege; the host's bpffs, cgroup v2 tree, /dev/shm${o.hugepagesBytes ? ' and huge pages' : ''} mounted (docs/kubernetes.md).`,
      file: FILES.daemonSet,
    });
  }
  if (classes.length > 1) notes.push(`placement by labels: ${classes.length} DaemonSets, one per node class (${CLASS_LABEL}: ${classes.map((c) => c.suffix).join(', ')}), each telling its agents their labels`);
  if (o.hugepagesBytes) notes.push(`each agent requests ${mebibytes(o.hugepagesBytes)} of hugepages-2Mi for the pool: nodes need that many preallocated, or the pods stay Pending (--hugepages 0 puts the pool in /dev/shm)`);

  if (hasGateway) {
    documents.push({
      object: gatewayService(names.service, ns, labels, labels),
      comment: `The gateways of every agent of ${ir.name} behind one address: http://${names.service}.${ns}/ (port 80 to each node's ${o.gatewayPort}).`,
      file: FILES.service,
    });
  }
  if (tree.packages.length) {
    notes.push(`the handlers import ${tree.packages.join(', ')}: install ${tree.packages.length === 1 ? 'it' : 'them'} in the image under /etc/bpfctl/node_modules (packages resolve from the mounted files' directory upwards)`);
  }
  const objects = documents.map((d) => d.object);
  const problems = [...objects.flatMap(objectProblems), ...referenceProblems(objects, 'existing' in o.secret ? [o.secret.existing] : [])];
  if (problems.length) throw new K8sManifestError(`the manifests would not run on Kubernetes: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`);
  return { policy: ir.name, documents, notes };
}

/** A placed policy is a multi-node one: its agents must know each other. */
function checkPlacement(ir: PolicyIR, o: ManifestOptions): void {
  const placed = ir.functions.filter((f) => f.placement);
  if (!isPlaced(ir)) return;
  if (!o.peers.length) {
    throw new K8sManifestError(
      `policy ${ir.name} places functions on nodes (${placed.map((f) => f.name).join(', ')}): give --peers NAME=HOST,... with every node of the policy and its node IP (the agents read no Kubernetes API to find each other)`,
    );
  }
  const known = new Set(o.peers.map((p) => p.name));
  for (const f of placed) {
    for (const [i, n] of (f.placement?.nodes ?? []).entries()) {
      if (!known.has(n)) throw new K8sManifestError(`functions.${f.name}.placement.nodes[${i}]: node '${n}' is not in --peers (${[...known].join(', ')}), so no agent would run there`);
    }
  }
}
