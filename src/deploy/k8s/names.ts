/**
 * Names and labels of the objects generated for a policy, and the Kubernetes rules for them. The
 * API server checks these rules, not its OpenAPI schema, so a bad name given on the command line
 * would pass `kubectl apply --dry-run=client` and fail only on the cluster: checked here instead.
 */
import { K8sManifestError } from './errors.ts';

/** RFC 1123 label: namespaces, volume names, most short names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain: object names (ConfigMap, Secret, DaemonSet), at most 253. */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** RFC 1035 label: Service names (they become DNS names, so a leading digit is refused). */
export const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
/** Keys of a ConfigMap's data and binaryData. */
export const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;
/** Label values: at most 63 of these, starting and ending alphanumeric (or empty). */
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function checkDnsLabel(what: string, value: string): void {
  if (value.length > 63 || !DNS_LABEL.test(value)) {
    throw new K8sManifestError(`${what} '${value}' must be a DNS label: at most 63 of a-z, 0-9 and '-', starting and ending with a letter or digit`);
  }
}

export function checkDnsSubdomain(what: string, value: string): void {
  if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
    throw new K8sManifestError(`${what} '${value}' must be a DNS subdomain: at most 253 of a-z, 0-9, '-' and '.', starting and ending with a letter or digit`);
  }
}

/** A lower-case slug of `text` usable in a DNS label (may be empty). */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** Object names and labels of one policy's objects. Policy names allow '_', DNS names do not. */
export interface PolicyNames {
  /** The policy's name as written (the agent's, the pins'). */
  policy: string;
  /** `bpfctl-<policy>`: the DaemonSet (one per node class: `-<class>` appended). */
  base: string;
  configMap: string;
  secret: string;
  service: string;
  /** Labels every agent pod of the policy carries: what the Service selects. */
  podLabels: Record<string, string>;
}

export function policyNames(policy: string): PolicyNames {
  // Policy names are 1-48 of [a-z0-9_-]: with the prefix and the longest suffix ('-gateway') a
  // name is at most 63, which a Service name (a DNS label) must be.
  const instance = slug(policy);
  const base = `bpfctl-${instance}`;
  return {
    policy,
    base,
    configMap: `${base}-policy`,
    secret: `${base}-link`,
    service: `${base}-gateway`,
    podLabels: { 'app.kubernetes.io/name': 'bpfctl-agent', 'app.kubernetes.io/instance': instance },
  };
}
