/**
 * What `bpfctl k8s manifests` is told besides the policy: where the objects go, which image runs
 * the agent, its ports, the other nodes, the node-link secret and the huge pages to ask for. The
 * text forms (`--peers`, `--hugepages`) are parsed here so the generator and its tests share them.
 */
import { NODE_NAME } from '../../ir/placement.ts';
import { planeSize } from '../../schema/packet-layout.ts';
import { geometry } from '../../schema/pool-layout.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { K8sManifestError } from './errors.ts';
import { checkDnsLabel, checkDnsSubdomain } from './names.ts';

/** A node of the policy and the address its node-link is reached at (its node IP). */
export interface Peer {
  name: string;
  host: string;
  port: number;
}

/** The node-link secret: a value to put in a Secret, or a Secret that already exists. */
export type SecretSource = { value: string } | { existing: string };

export interface ManifestOptions {
  namespace: string;
  image: string;
  /** Gateway HTTP port on every node (host network). */
  gatewayPort: number;
  /** Node-link port on every node (host network). */
  linkPort: number;
  /** Every node of the policy, this one included: the agents link to each other. Empty: none. */
  peers: Peer[];
  secret: SecretSource;
  /** Huge pages (2 MiB) each agent asks for, in bytes; 0: none, the pool lives in /dev/shm. */
  hugepagesBytes: number;
  /** How the manifests were made (the command line), for the header of the YAML. */
  source?: string;
}

export const DEFAULT_NAMESPACE = 'bpfctl';
export const DEFAULT_GATEWAY_PORT = 8080;
export const DEFAULT_LINK_PORT = 7946;
export const HUGE_PAGE = 2 * 1024 * 1024;
/** The agent refuses a shorter secret (src/runtime/agent). */
export const MIN_SECRET_BYTES = 16;

export function checkPort(what: string, port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new K8sManifestError(`${what} must be a port number 1-65535, got ${port}`);
}

/**
 * `NAME=HOST[:PORT],...`: every node of the policy, this one included (each agent leaves itself
 * out). Every agent listens on the same port (one DaemonSet template), so a port other than
 * `linkPort` could never be reached. @throws K8sManifestError
 */
export function parsePeers(text: string, linkPort: number): Peer[] {
  const out: Peer[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([^=]+)=(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(part);
    if (!m) throw new K8sManifestError(`--peers entry '${part}' must be NAME=HOST or NAME=HOST:PORT (the node's name and its node IP)`);
    const [, name, rawHost, rawPort] = m;
    if (!NODE_NAME.test(name!)) throw new K8sManifestError(`--peers: node name '${name}' must be a Kubernetes node name (a DNS name: a-z, 0-9, '-', '.')`);
    if (out.some((p) => p.name === name)) throw new K8sManifestError(`--peers names ${name} twice`);
    const port = rawPort === undefined ? linkPort : Number(rawPort);
    if (port !== linkPort) {
      throw new K8sManifestError(`--peers ${part}: every agent listens on the node-link port ${linkPort} (one DaemonSet for all nodes); give --link-port ${port} or leave the port out`);
    }
    out.push({ name: name!, host: rawHost!.replace(/^\[|\]$/g, ''), port });
  }
  return out;
}

/**
 * Bytes of huge pages from `--hugepages`: `0`/`off`, or a quantity in Mi or Gi that is a whole
 * number of 2 MiB pages (Kubernetes counts `hugepages-2Mi` in bytes). @throws K8sManifestError
 */
export function parseHugepages(text: string): number {
  if (text === '0' || text === 'off') return 0;
  const m = /^(\d+)(Mi|Gi)$/.exec(text);
  if (!m) throw new K8sManifestError(`--hugepages '${text}' must be auto, 0 (none), or a size like 64Mi or 1Gi`);
  const bytes = Number(m[1]) * (m[2] === 'Gi' ? 1024 ** 3 : 1024 ** 2);
  if (bytes % HUGE_PAGE !== 0) throw new K8sManifestError(`--hugepages ${text} is not a whole number of 2Mi pages`);
  return bytes;
}

/** The huge pages a policy's pool takes: its mapped size on 2 MiB pages (packet plane included). */
export function poolHugepagesBytes(ir: PolicyIR): number {
  const p = ir.packet;
  const plane = p && (p.chains.length > 0 || p.functions.length > 0) ? planeSize(p.functions.length) : 0;
  return geometry(ir.pool.bufferSize, ir.pool.bufferCount, HUGE_PAGE, plane).totalSize;
}

/** `64Mi` for a byte count (a whole number of MiB, as huge page amounts are). */
export function mebibytes(bytes: number): string {
  return bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3}Gi` : `${Math.ceil(bytes / 1024 ** 2)}Mi`;
}

/** Checks what the API server would refuse later. @throws K8sManifestError */
export function checkOptions(o: ManifestOptions, ir: PolicyIR): void {
  checkDnsLabel('--namespace', o.namespace);
  if (!o.image || /\s/.test(o.image)) throw new K8sManifestError(`--image '${o.image}' must be an image reference without spaces (e.g. registry.example/bpfctl:0.1.0)`);
  checkPort('--gateway-port', o.gatewayPort);
  checkPort('--link-port', o.linkPort);
  if (o.peers.length && o.gatewayPort === o.linkPort) throw new K8sManifestError(`--gateway-port and --link-port are both ${o.linkPort}: both listen on the node's network`);
  if ('existing' in o.secret) checkDnsSubdomain('--secret-name', o.secret.existing);
  else if (Buffer.byteLength(o.secret.value.trim()) < MIN_SECRET_BYTES) throw new K8sManifestError(`the node-link secret must be at least ${MIN_SECRET_BYTES} bytes (the agent refuses a shorter one)`);
  if (o.hugepagesBytes % HUGE_PAGE !== 0) throw new K8sManifestError(`huge pages of ${o.hugepagesBytes} bytes are not a whole number of 2 MiB pages`);
  // The agent numbers gateway processes across nodes into 32 ids (docs/multi-node.md).
  const nodes = Math.max(1, o.peers.length);
  if (nodes * ir.gateway.instances > 32) throw new K8sManifestError(`${nodes} nodes x ${ir.gateway.instances} gateway processes exceed the 32 gateway instance ids the agents share`);
}
