/**
 * The node agent (`bpfctl agent`, docs/multi-node.md): one per node of a policy that spans
 * several. It runs this node's share of the policy with the single-node supervisor (startChain
 * with `localShare`: only the instances placed here, and this node's gateways numbered apart from
 * the other nodes'), a node-link for the hops that cross nodes, and converges to the policy
 * source when it changes, through the same apply path as `bpfctl apply`.
 *
 * The policy source is a file or a directory holding `policy.ts` (or .js/.mjs): a Kubernetes
 * ConfigMap is mounted as a directory whose files are symlinks into `..data`, which the kubelet
 * swaps atomically. So the directory is watched, not the file (a watch on a replaced file stays on
 * the old inode), changes are debounced, and a policy that does not validate is logged and left
 * out: the chain keeps running what it ran. The node-link secret file is followed the same way
 * (watch-source.ts): a new secret is used for new handshakes at once, and the previous one is
 * still accepted for a grace period (node-link/secrets.ts), so nodes that see a rotation at
 * different moments keep linking.
 */
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { localShare, NODE_NAME, type NodeIdentity } from '../../ir/placement.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { buildNativeNodeLink } from '../node-link/native/build.ts';
import { NodeLink, type NodeLinkEngine, type NodeLinkStatus } from '../node-link/node-link.ts';
import type { PeerAddress } from '../node-link/peers.ts';
import { SECRET_GRACE_MS, SecretRing, type SecretRingStatus } from '../node-link/secrets.ts';
import { type Chain, startChain } from '../supervisor/chain.ts';
import { runDir } from '../supervisor/lock.ts';
import type { SlotInfo } from '../supervisor/slot.ts';
import { AgentError } from './errors.ts';
import { MIN_SECRET_BYTES, readSecretFile } from './secret-file.ts';
import { watchSource } from './watch-source.ts';

export { AgentError } from './errors.ts';

export interface AgentOptions {
  /** A policy file, or a directory with policy.ts (a mounted ConfigMap). */
  policy: string;
  node: NodeIdentity;
  /** Node-link address of this node (peers dial it). */
  listen: { host: string; port: number };
  /** The other nodes. */
  peers: PeerAddress[];
  /** This node's own entry of a cluster-wide peer list, checked against `listen` before anything starts. */
  selfEntry?: PeerAddress | null;
  /** The policy's shared secret (the contents of a file, e.g. a mounted Kubernetes Secret). */
  secret: Buffer;
  /** The file it came from: followed, and a new secret taken without a restart. */
  secretFile?: string;
  /** How long the previous secret is still accepted after a rotation (default SECRET_GRACE_MS). */
  secretGraceMs?: number;
  /**
   * What moves descriptors between the nodes: 'native' (default), the C data path in a process of
   * its own, or 'node', the same in the agent's event loop (no compiler needed).
   */
  nodeLinkEngine?: NodeLinkEngine;
  /** Gateway HTTP address and port. */
  host?: string;
  port?: number;
  poolName?: string;
  timeoutMs?: number;
  debounceMs?: number;
  progress?: (text: string) => void;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface AgentStatus {
  policy: string;
  node: string;
  labels: Record<string, string>;
  url: string;
  local: SlotInfo[];
  link: NodeLinkStatus;
  /** The node-link secret: rotations, the previous one's grace, a change that was not taken. */
  secret: SecretRingStatus;
  lastApply: { at: string; ok: boolean; message: string } | null;
}

export interface Agent {
  readonly chain: Chain;
  readonly link: NodeLink;
  readonly nodeLinkPort: number;
  status(): AgentStatus;
  /** Converges to the policy source now (what a change of it triggers). */
  converge(): Promise<void>;
  stop(): Promise<void>;
}

const POLICY_NAMES = ['policy.ts', 'policy.js', 'policy.mjs'];

/** The policy file of a source: itself, or the policy file of a directory. @throws AgentError */
export function policyFileOf(source: string): string {
  const abs = resolve(source);
  if (!existsSync(abs)) throw new AgentError(`policy source ${abs} does not exist`);
  if (!statSync(abs).isDirectory()) return abs;
  for (const n of POLICY_NAMES) if (existsSync(join(abs, n))) return join(abs, n);
  throw new AgentError(`policy directory ${abs} holds none of ${POLICY_NAMES.join(', ')}`);
}

/**
 * `NAME=HOST:PORT,...`: the other nodes, and this node's own entry when the list names it (one
 * list for every node, as a DaemonSet gives every pod the same). @throws AgentError
 */
export function parsePeers(text: string, self: string): { peers: PeerAddress[]; self: PeerAddress | null } {
  const out: PeerAddress[] = [];
  let mine: PeerAddress | null = null;
  for (const part of text.split(',').filter(Boolean)) {
    const m = /^([^=]+)=(.+):(\d+)$/.exec(part.trim());
    if (!m) throw new AgentError(`--peers entry '${part}' must be NAME=HOST:PORT`);
    const [, name, host, port] = m;
    if (!NODE_NAME.test(name!)) throw new AgentError(`--peers: node name '${name}' must be a DNS name (a-z, 0-9, '-', '.')`);
    if (out.some((p) => p.name === name) || (mine && name === self)) throw new AgentError(`--peers names ${name} twice`);
    const entry = { name: name!, host: host!.replace(/^\[|\]$/g, ''), port: Number(port) };
    if (name === self) mine = entry;
    else out.push(entry);
  }
  return { peers: out, self: mine };
}

const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);
/** An IP literal in one spelling (IPv6 has many: fd00:0::1 is fd00::1). */
const canonicalIp = (a: string): string => (isIP(a) === 6 ? new URL(`http://[${a}]`).hostname.slice(1, -1) : a);

/**
 * The peer list's entry for this node must be where this node listens: the other nodes dial what
 * the list says, so a different address would leave this node unreachable with no error anywhere
 * but here. A host name is resolved; with a wildcard `--listen`, the address must be one of this
 * machine's. @throws AgentError
 */
export async function checkSelfEntry(entry: PeerAddress, listen: { host: string; port: number }): Promise<void> {
  const where = `${entry.host.includes(':') ? `[${entry.host}]` : entry.host}:${entry.port}`;
  const fail = (why: string) => new AgentError(`--peers gives this node (${entry.name}) the address ${where}, but ${why}: the other nodes would dial the wrong place (correct --peers or --listen)`);
  if (listen.port === 0) throw fail('its node-link listens on any free port (--listen HOST:0)');
  if (entry.port !== listen.port) throw fail(`its node-link listens on port ${listen.port}`);
  let addresses: string[];
  try {
    addresses = isIP(entry.host) ? [entry.host] : (await lookup(entry.host, { all: true })).map((a) => a.address);
  } catch (err) {
    throw fail(`${entry.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  addresses = addresses.map(canonicalIp);
  if (WILDCARD.has(listen.host)) {
    const local = new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => canonicalIp(i.address))));
    if (!addresses.some((a) => local.has(a))) throw fail('that is no address of this machine');
    return;
  }
  if (!addresses.includes(canonicalIp(listen.host))) throw fail(`its node-link listens on ${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`);
}

/** `k=v,k2=v2` @throws AgentError */
export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? '').split(',').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new AgentError(`--labels entry '${part}' must be KEY=VALUE`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

export function agentStatusPath(policy: string, dir = runDir()): string {
  return join(dir, `${policy}.agent.json`);
}

/** What the agent running this policy on this node last wrote, or null when none runs it. */
export function readAgentStatus(policy: string, dir = runDir()): AgentStatus | null {
  try {
    return JSON.parse(readFileSync(agentStatusPath(policy, dir), 'utf8')) as AgentStatus;
  } catch {
    return null;
  }
}

/** Starts this node's share. @throws AgentError, and what startChain throws */
export async function startAgent(o: AgentOptions): Promise<Agent> {
  const progress = o.progress ?? (() => {});
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!NODE_NAME.test(o.node.name)) throw new AgentError(`node name '${o.node.name}' must be a DNS name (a-z, 0-9, '-', '.')`);
  if (o.secret.length < MIN_SECRET_BYTES) throw new AgentError(`the policy secret must be at least ${MIN_SECRET_BYTES} bytes`);
  if (o.selfEntry) await checkSelfEntry(o.selfEntry, o.listen);
  const file = policyFileOf(o.policy);
  const ir = await loadPolicyFile(file);
  const nodes = [o.node.name, ...o.peers.map((p) => p.name)].sort();
  const index = nodes.indexOf(o.node.name);
  const gwN = ir.gateway.instances;
  // Gateway instance ids are global across the nodes (a reply names its gateway by it): node i has i*N..i*N+N-1.
  if (nodes.length * gwN > 32) throw new AgentError(`${nodes.length} nodes x ${gwN} gateway processes exceed the 32 gateway instance ids`);
  const gateways = Array.from({ length: gwN }, (_, g) => index * gwN + g);
  const share = (x: typeof ir) => localShare(x, o.node);

  const chain = await startChain(file, {
    port: o.port,
    host: o.host,
    poolName: o.poolName,
    timeoutMs: o.timeoutMs,
    localShare: share,
    gatewayBase: index * gwN,
    progress,
    log,
    signal: o.signal,
  });
  const secrets = new SecretRing(o.secret);
  let link: NodeLink;
  let port: number;
  try {
    const engine = o.nodeLinkEngine ?? 'native';
    if (engine === 'native') progress('building the node-link data path (cached)');
    const nativeExe = engine === 'native' ? await buildNativeNodeLink() : undefined;
    link = new NodeLink({
      nativeExe,
      node: o.node.name,
      labels: { ...o.node.labels },
      nodes,
      policy: ir.name,
      secrets,
      listen: o.listen,
      peers: o.peers,
      root: dirname(chain.pinDir),
      pinDir: chain.pinDir,
      poolName: chain.poolName,
      hubPort: chain.hubPort,
      gateways,
      registerSocket: chain.registerSocket,
      setRemoteInstances: chain.setRemoteInstances,
      localPids: (fn) => chain.instances().flatMap((s) => (s.kind === 'function' && s.name === fn && s.state === 'ready' && s.pid ? [s.pid] : [])),
      log,
    });
    port = await link.start();
  } catch (err) {
    await chain.stop();
    throw err;
  }
  progress(`node ${o.node.name}: node-link on ${o.listen.host}:${port}, gateway ${chain.url}, peers ${o.peers.map((p) => p.name).join(', ') || 'none'}`);

  let lastApply: AgentStatus['lastApply'] = null;
  const sourceOf = (): string => {
    try {
      return readFileSync(policyFileOf(o.policy), 'utf8');
    } catch {
      return '';
    }
  };
  let running: Promise<void> = Promise.resolve();
  const converge = (): Promise<void> => {
    running = running.then(async () => {
      try {
        const r = await chain.apply(policyFileOf(o.policy));
        link.sync();
        const n = r.diff.changes.length;
        lastApply = { at: new Date().toISOString(), ok: true, message: n ? `${n} change${n > 1 ? 's' : ''}` : 'no change' };
        if (n) log(`[agent] applied ${n} change${n > 1 ? 's' : ''}: ${r.diff.changes.map((c) => `${c.kind} ${'name' in c ? c.name : ''}`.trim()).join(', ')}`);
      } catch (err) {
        lastApply = { at: new Date().toISOString(), ok: false, message: (err as Error).message.split('\n')[0]! };
        log(`[agent] policy not applied, still running the last one: ${lastApply.message}`);
      }
      writeStatus();
    });
    return running;
  };

  // Watch the directory: a ConfigMap update swaps `..data`, an editor renames over the file.
  // Handlers may change without the policy file: apply compares their hashes on every change.
  const watchDir = statSync(resolve(o.policy)).isDirectory() ? resolve(o.policy) : dirname(resolve(o.policy));
  const watches = [watchSource({ dir: watchDir, read: sourceOf, onChange: () => void converge(), debounceMs: o.debounceMs, log })];

  // The secret file the same way (a Secret volume is swapped like a ConfigMap's).
  const graceMs = o.secretGraceMs ?? SECRET_GRACE_MS;
  let graceTimer: NodeJS.Timeout | null = null;
  const secretChanged = () => {
    const path = o.secretFile!;
    let next: Buffer;
    try {
      next = readSecretFile(path);
    } catch (err) {
      const why = (err as Error).message;
      if (secrets.status().warning !== why) log(`[agent] warning: the node-link secret is unchanged: ${why}`);
      secrets.refuse(why);
      return writeStatus();
    }
    if (!secrets.rotate(next, graceMs)) return writeStatus();
    log(`[agent] node-link secret changed (generation ${secrets.status().generation}): new handshakes prove the new one; the previous one is accepted for ${Math.round(graceMs / 1000)} s more`);
    if (graceTimer) clearTimeout(graceTimer);
    graceTimer = setTimeout(() => {
      graceTimer = null;
      log('[agent] node-link secret: the previous one is no longer accepted');
      writeStatus();
    }, graceMs);
    graceTimer.unref();
    writeStatus();
  };
  if (o.secretFile) {
    const path = o.secretFile;
    const text = () => {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return '';
      }
    };
    watches.push(watchSource({ dir: dirname(resolve(path)), read: text, onChange: secretChanged, debounceMs: o.debounceMs, log }));
  }

  const statusFile = agentStatusPath(ir.name);
  const status = (): AgentStatus => ({ policy: ir.name, node: o.node.name, labels: { ...o.node.labels }, url: chain.url, local: chain.instances(), link: link.status(), secret: secrets.status(), lastApply });
  const writeStatus = () => {
    try {
      writeFileSync(`${statusFile}.tmp`, JSON.stringify(status()), { mode: 0o600 });
      renameSync(`${statusFile}.tmp`, statusFile);
    } catch (err) {
      log(`[agent] cannot write ${statusFile}: ${(err as Error).message}`);
    }
  };
  writeStatus();
  // The native data path's counters are asked for first: the file shows them as of now.
  const statusTimer = setInterval(() => void link.refresh().then(() => stopping || writeStatus()), 1000);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      for (const w of watches) w.close();
      if (graceTimer) clearTimeout(graceTimer);
      clearInterval(statusTimer);
      await running.catch(() => {});
      await link.close();
      await chain.stop();
      rmSync(statusFile, { force: true });
      rmSync(`${statusFile}.tmp`, { force: true });
    })();
    return stopping;
  };
  return { chain, link, nodeLinkPort: port, status, converge, stop };
}
