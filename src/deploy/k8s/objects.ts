/**
 * The kinds generated, and the small objects around the agent: its Namespace, the node-link
 * Secret, the gateway Service.
 */
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';
import { SECRET_KEY } from './daemonset.ts';

export type K8sObject = INamespace | ISecret | IConfigMap | IDaemonSet | IService;

export function namespaceObject(name: string): INamespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      // Host network, hostPath volumes and added capabilities are what Pod Security's baseline
      // level forbids: a namespace that enforces it (or restricted) would admit no agent pod.
      labels: { 'pod-security.kubernetes.io/enforce': 'privileged' },
    },
  };
}

export function secretObject(name: string, namespace: string, labels: Record<string, string>, value: string): ISecret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels },
    type: 'Opaque',
    data: { [SECRET_KEY]: Buffer.from(value.trim()).toString('base64') },
  };
}

/** The gateways of every agent, behind one cluster address, port 80. */
export function gatewayService(name: string, namespace: string, labels: Record<string, string>, selector: Record<string, string>): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels },
    spec: {
      type: 'ClusterIP',
      selector,
      ports: [{ name: 'http', port: 80, targetPort: 'gateway', protocol: 'TCP' }],
    },
  };
}
