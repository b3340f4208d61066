// hello-chain spread over three Kubernetes nodes (docs/kubernetes.md): upper runs on the nodes
// labelled bpfctl.io/role=edge, reverse on node-b and node-c by name, stamp on every node. The
// manifests in ../manifests are `bpfctl k8s manifests` of this file (their header says how), and
// test/unit/k8s-manifests.test.ts checks they are still what it writes.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'hello-cluster',
  functions: {
    upper: { instances: 2, handler: './functions/upper.ts', placement: { labels: { 'bpfctl.io/role': 'edge' } } },
    reverse: { instances: 3, handler: './functions/reverse.ts', placement: { nodes: ['node-b', 'node-c'] } },
    stamp: { instances: 1, handler: './functions/stamp.ts' },
  },
  routes: {
    '/hello': ['upper', 'reverse', 'stamp'],
    '/shout': ['upper', 'stamp'],
  },
  pool: { bufferSize: 4096, bufferCount: 1024 },
});
