/**
 * The agent as a DaemonSet: one pod per node of its class (node-classes.ts), on the host's
 * network (the gateway and node-link ports are the node's, the chain's hub is in the host's
 * loopback), with the capabilities eBPF work takes instead of full privilege, and the host's
 * bpffs, cgroup v2 tree, /dev/shm and huge pages mounted where bpfctl expects them.
 *
 * Capabilities: BPF and PERFMON (loading programs, the verifier's bounded loops), NET_ADMIN
 * (sockhash, XDP, tc), SYS_ADMIN (bpffs pins, cgroup attach and moves), SYS_RESOURCE (locked
 * memory on kernels that still count it); NET_RAW and IPC_LOCK with packet chains (AF_XDP
 * sockets, a pinned UMEM). Everything else is dropped. Not `privileged`: no access to every
 * device and no unmasked /proc. AppArmor's runtime profile forbids writing under /sys/fs/bpf, so
 * it is off for this container; seccomp keeps the runtime's default profile, which allows bpf()
 * and perf_event_open() to a process with those capabilities.
 */
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IVolumeMount } from 'kubernetes-models/v1/VolumeMount';
import { agentScript, forCommand, MOUNT } from './agent-script.ts';
import { mebibytes, type Peer } from './options.ts';
import type { NodeClass } from './node-classes.ts';

export const CLASS_LABEL = 'bpfctl.io/node-class';
/** The key of the node-link secret in its Secret (a file of that name in the mount). */
export const SECRET_KEY = 'secret';

export interface AgentDaemonSetOptions {
  name: string;
  namespace: string;
  image: string;
  podLabels: Record<string, string>;
  nodeClass: NodeClass;
  /** null: a policy without a chain, no gateway. */
  gatewayPort: number | null;
  linkPort: number;
  /** Every node of the policy (this one included); empty: one node's agent does not link. */
  peers: Peer[];
  /** The Secret holding the node-link secret under SECRET_KEY. */
  secretName: string;
  policyVolume: IVolume;
  hugepagesBytes: number;
  /** Packet chains: AF_XDP sockets need NET_RAW, their UMEM IPC_LOCK. */
  packet: boolean;
}

export function agentDaemonSet(o: AgentDaemonSetOptions): IDaemonSet {
  const labels = { ...o.podLabels, 'app.kubernetes.io/component': 'agent', ...(o.nodeClass.suffix ? { [CLASS_LABEL]: o.nodeClass.suffix } : {}) };
  const linked = o.peers.length > 0;
  const env: IEnvVar[] = [
    { name: 'BPFCTL_NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'BPFCTL_SECRET_FILE', value: `${MOUNT.secret}/${SECRET_KEY}` },
    { name: 'BPFCTL_CACHE', value: MOUNT.cache },
  ];
  const nodeLabels = Object.entries(o.nodeClass.labels).map(([k, v]) => `${k}=${v}`);
  // A pod cannot read its node's labels; its class says which of the policy's it has.
  if (nodeLabels.length) env.push({ name: 'BPFCTL_NODE_LABELS', value: nodeLabels.join(',') });
  if (linked) {
    // On the host network the pod's IP is the node's: where the peers dial.
    env.push({ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    // Every node, this one included: the agent skips its own entry.
    env.push({ name: 'BPFCTL_PEERS', value: o.peers.map((p) => `${p.name}=${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`).join(',') });
  }
  const mounts: IVolumeMount[] = [
    { name: 'policy', mountPath: MOUNT.policy, readOnly: true },
    { name: 'secret', mountPath: MOUNT.secret, readOnly: true },
    // HostToContainer: a bpffs the host mounts later still shows. Bidirectional is only for
    // privileged containers, and pins need none: they are files in the host's bpffs either way.
    { name: 'bpffs', mountPath: MOUNT.bpffs, mountPropagation: 'HostToContainer' },
    { name: 'cgroup', mountPath: MOUNT.cgroup },
    { name: 'shm', mountPath: MOUNT.shm },
    ...(o.hugepagesBytes > 0 ? [{ name: 'hugepages', mountPath: MOUNT.hugepages }] : []),
    { name: 'run', mountPath: MOUNT.run },
    { name: 'cache', mountPath: MOUNT.cache },
  ];
  const hostDir = (name: string, path: string, type: 'Directory' | 'DirectoryOrCreate'): IVolume => ({ name, hostPath: { path, type } });
  const volumes: IVolume[] = [
    o.policyVolume,
    { name: 'secret', secret: { secretName: o.secretName, defaultMode: 0o400, items: [{ key: SECRET_KEY, path: SECRET_KEY }] } },
    hostDir('bpffs', MOUNT.bpffs, 'Directory'),
    hostDir('cgroup', MOUNT.cgroup, 'Directory'),
    // The host's, not the pod's 64 MiB one: the pool is a file here, and a restarted agent finds
    // (and cleans up) the one a killed agent left.
    hostDir('shm', MOUNT.shm, 'Directory'),
    ...(o.hugepagesBytes > 0 ? [hostDir('hugepages', MOUNT.hugepages, 'Directory')] : []),
    // Lock, control socket and status file: on the host, so a restarted agent sees a stale lock.
    hostDir('run', MOUNT.run, 'DirectoryOrCreate'),
    // Compiled eBPF objects and bundles: kept across container restarts of the pod.
    { name: 'cache', emptyDir: {} },
  ];
  const caps = ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_ADMIN', 'SYS_RESOURCE', ...(o.packet ? ['NET_RAW', 'IPC_LOCK'] : [])];
  const container: IContainer = {
    name: 'agent',
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['/bin/sh', '-c', forCommand(agentScript({ gatewayPort: o.gatewayPort, linkPort: o.linkPort, linked }))],
    env,
    ports: [...(o.gatewayPort !== null ? [{ name: 'gateway', containerPort: o.gatewayPort, protocol: 'TCP' as const }] : []), ...(linked ? [{ name: 'node-link', containerPort: o.linkPort, protocol: 'TCP' as const }] : [])],
    securityContext: {
      privileged: false,
      capabilities: { drop: ['ALL'], add: caps },
      appArmorProfile: { type: 'Unconfined' },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    ...(o.gatewayPort !== null ? { readinessProbe: { tcpSocket: { port: 'gateway' }, periodSeconds: 5 } } : {}),
    resources: {
      // Huge pages are counted by the kubelet: the pod's hugetlb limit is what it requests (0
      // without), whatever the hostPath mount shows. Requests and limits must be equal.
      requests: { cpu: '250m', memory: '256Mi', ...(o.hugepagesBytes > 0 ? { 'hugepages-2Mi': mebibytes(o.hugepagesBytes) } : {}) },
      ...(o.hugepagesBytes > 0 ? { limits: { 'hugepages-2Mi': mebibytes(o.hugepagesBytes) } } : {}),
    },
    volumeMounts: mounts,
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: o.name, namespace: o.namespace, labels },
    spec: {
      selector: { matchLabels: labels },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          // The pause container is then PID 1 and reaps what the agent's children leave behind.
          shareProcessNamespace: true,
          // The agent reads no Kubernetes API: no ServiceAccount token in the pod.
          automountServiceAccountToken: false,
          // The agent drains its chain and removes its pins, pool and cgroup on SIGTERM.
          terminationGracePeriodSeconds: 30,
          ...affinity(o.nodeClass, o.peers),
          containers: [container],
          volumes,
        },
      },
    },
  };
}

/**
 * The nodes of the class, and of the policy when it names its nodes. A node field selector takes
 * one value (the API server refuses `metadata.name In [a, b]`), so each node is a term of its own;
 * terms are ORed, the requirements of one term ANDed.
 */
function affinity(c: NodeClass, peers: readonly Peer[]): Pick<IPodSpec, 'affinity'> {
  if (!c.match.length && !peers.length) return {};
  const expressions = c.match.length ? { matchExpressions: c.match } : {};
  const terms = peers.length ? peers.map((p) => ({ ...expressions, matchFields: [{ key: 'metadata.name', operator: 'In' as const, values: [p.name] }] })) : [expressions];
  return { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } };
}
