/**
 * The nodes bench's machines: three network namespaces on one bridge (test/helpers/netns.ts,
 * createNetnsBridge), each a node running `bpfctl agent run` of ./policy (own pin root, cgroup
 * parent, run directory and pool, as docs/multi-node.md says nodes on one host are kept apart),
 * and on node b the far end of the plain TCP hop (./tcp-hop-server.ts).
 *
 * Everything this makes is listed in a state file under .cache/bench/nodes-<pid>/ before it is
 * made: `destroy()` removes it, and the next run removes what a bench killed outright (SIGKILL)
 * left, once that bench's pid is gone. Agents leave on their own when the bench dies (their stdin
 * closes, ./agent-host.ts); namespaces and directories cannot, hence the state file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Mount } from '../../src/deploy/paths.ts';
import { candidatePaths } from '../../src/runtime/pool/backing.ts';
import { removeOwnDirs } from '../../test/helpers/leaks.ts';
import { createNetnsBridge, type NetnsBridge } from '../../test/helpers/netns.ts';
import { sh } from '../../test/helpers/sh.ts';
import { type Child, describeProcess, processTree } from '../chain/proc.ts';
import { spawnTsIn } from './ns.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const repo = here('../..');
export const POLICY_FILE = here('./policy/policy.ts');
export const POLICY_NAME = 'bench-nodes';
export const NODE_NAMES = ['a', 'b', 'c'] as const;
export type NodeName = (typeof NODE_NAMES)[number];
const LINK_PORT = 7946;
const HTTP_PORT = 18080;
export const CPU_PROF_DIR = join(repo, '.cache/bench/nodes-cpu-prof');
const poolName = (node: string) => `bench-nodes-${process.pid}-${node}`;

export interface Node {
  readonly name: NodeName;
  readonly ns: string;
  readonly ip: string;
  readonly env: Record<string, string>;
  agent: Child | null;
}

/** A process of the bench's setup, by node, for the CPU accounting and the busiest-process column. */
export interface Proc {
  pid: number;
  label: string;
}

/** What a run made that outlives its processes, written down before it is made. */
interface State {
  pid: number;
  netns: string[];
  dirs: string[];
  /** Pool names (their files: /dev/shm or hugetlbfs). */
  pools: string[];
}

const workRoot = join(repo, '.cache/bench');

/** A cgroup directory and the ones below it, deepest first (cgroups go with rmdir, once empty of processes). */
function rmdirTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmdirTree(join(dir, e.name));
  removeOwnDirs([dir]);
}

function removeState(s: State, work: string): void {
  for (const ns of s.netns) sh('ip', ['netns', 'del', ns], { allowFail: true });
  for (const d of s.dirs) {
    // Pins of an agent that was killed (a stopped one removed its own): unlinking removes them.
    if (d.startsWith('/sys/fs/bpf/')) rmSync(d, { recursive: true, force: true });
    else if (d.startsWith('/sys/fs/cgroup')) rmdirTree(d);
  }
  for (const p of s.pools ?? []) for (const f of candidatePaths(p)) rmSync(f, { force: true });
  rmSync(work, { recursive: true, force: true });
}

/** What earlier runs killed outright left (their pid gone): namespaces, pins, cgroups, work dirs. */
export function removeStale(log: (s: string) => void): void {
  if (!existsSync(workRoot)) return;
  for (const e of readdirSync(workRoot)) {
    const m = /^nodes-(\d+)$/.exec(e);
    if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    const work = join(workRoot, e);
    try {
      const s = JSON.parse(readFileSync(join(work, 'state.json'), 'utf8')) as State;
      log(`removing what bench pid ${s.pid} left: ${[...s.netns, ...s.dirs].join(' ')}`);
      removeState(s, work);
    } catch {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

/** The namespaces and directories of this run (nothing started yet). */
export class Rig {
  readonly work = join(workRoot, `nodes-${process.pid}`);
  readonly secretFile = join(this.work, 'secret');
  readonly bridge: NetnsBridge;
  readonly nodes: Node[];
  private readonly state: State;

  constructor() {
    mkdirSync(this.work, { recursive: true });
    const cg = cgroup2Mount();
    const id = (n: string) => `bpfctl-bench-nodes-${process.pid}-${n}`;
    const env = (n: string) => ({ BPFCTL_BPFFS: `/sys/fs/bpf/${id(n)}`, BPFCTL_CGROUP_PARENT: join(cg, id(n)), BPFCTL_RUN_DIR: join(this.work, `run-${n}`) });
    // createNetnsBridge's names are bt<pid>nd<k><i> and bt<pid>nd<k>s: known before it runs.
    this.state = { pid: process.pid, netns: [], dirs: NODE_NAMES.flatMap((n) => [env(n).BPFCTL_BPFFS, env(n).BPFCTL_CGROUP_PARENT, env(n).BPFCTL_RUN_DIR]), pools: NODE_NAMES.map(poolName) };
    this.save();
    this.bridge = createNetnsBridge(NODE_NAMES.length, 'nd');
    this.state.netns = [this.bridge.switchNs, ...this.bridge.nodes.map((n) => n.ns)];
    this.save();
    this.nodes = NODE_NAMES.map((name, i) => ({ name, ns: this.bridge.nodes[i]!.ns, ip: this.bridge.nodes[i]!.ip, env: env(name), agent: null }));
    writeFileSync(this.secretFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
  }

  private save(): void {
    mkdirSync(dirname(join(this.work, 'state.json')), { recursive: true });
    writeFileSync(join(this.work, 'state.json'), JSON.stringify(this.state));
  }

  node(name: NodeName): Node {
    return this.nodes.find((n) => n.name === name)!;
  }

  /** Synchronous, for the exit path too: every process of the run must be gone first. */
  destroy(): void {
    this.bridge.destroy();
    removeState(this.state, this.work);
  }
}

interface AgentStatusFile {
  url: string;
  link: { peers: { name: string; up: boolean }[]; remote: { function: string; peers: string[] }[] };
}

function agentStatus(n: Node): AgentStatusFile | null {
  try {
    return JSON.parse(readFileSync(join(n.env.BPFCTL_RUN_DIR!, `${POLICY_NAME}.agent.json`), 'utf8')) as AgentStatusFile;
  } catch {
    return null;
  }
}

/** Every peer up and every function that runs elsewhere served by a peer, as this node sees it. */
function linked(n: Node): boolean {
  const s = agentStatus(n);
  return !!s && s.link.peers.length === NODE_NAMES.length - 1 && s.link.peers.every((p) => p.up) && s.link.remote.length > 0 && s.link.remote.every((r) => r.peers.length > 0);
}

export interface Cluster {
  /** a's gateway (the client is on a): `url('/spread')`. */
  url(route: string): string;
  /** Every process of the three agents (supervisor + node-link, gateway, function instances) and the tcp hop server. */
  procs(): Proc[];
  /** V8 CPU profiles of the three agents (supervisor + node-link; not their children), between the two calls. */
  startCpuProfiles(): void;
  /** Resolves with the files written (CPU_PROF_DIR/agent-<node>-<pid>.cpuprofile). */
  stopCpuProfiles(): Promise<string[]>;
  stop(): Promise<void>;
}

function startAgent(rig: Rig, n: Node, extraEnv: Record<string, string>): Child {
  const peers = rig.nodes.filter((p) => p !== n).map((p) => `${p.name}=${p.ip}:${LINK_PORT}`);
  const args = ['--policy', POLICY_FILE, '--node', n.name, '--labels', `node=${n.name}`, '--listen', `${n.ip}:${LINK_PORT}`, '--peers', peers.join(','),
    '--secret-file', rig.secretFile, '--port', String(HTTP_PORT), '--pool', poolName(n.name), '--timeout', '5000'];
  n.agent = spawnTsIn(n.ns, `agent-${n.name}`, here('./agent-host.ts'), args, { ...n.env, ...extraEnv });
  return n.agent;
}

async function until(what: string, ok: () => boolean, ms: number, rig: Rig): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; agents' stderr:\n${rig.nodes.map((n) => `--- ${n.name}\n${n.agent?.stderr().slice(-1500) ?? ''}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The tcp hop server on b, then the agents (a first: a cold start builds the native gateway once), linked. */
export async function startCluster(rig: Rig, log: (s: string) => void): Promise<Cluster> {
  const a = rig.node('a');
  const b = rig.node('b');
  const tcpServer = spawnTsIn(b.ns, 'tcp-hop-server', here('./tcp-hop-server.ts'), [b.ip]);
  const children: Child[] = [tcpServer];
  const stop = async () => {
    // Agents first and together (each tears its own node down), then the rest.
    await Promise.all(rig.nodes.map((n) => n.agent?.stop('SIGTERM', 20_000)));
    await Promise.all(children.map((c) => c.stop()));
  };
  try {
    const tcpPort = Number((await tcpServer.line(/^listening (\d+)$/))[1]);
    const ready = /^policy \S+ on node \S+: gateway (\S+),/;
    log('starting agent a');
    const urlA = (await startAgent(rig, a, { BENCH_NODES_TCP_HOP: `${b.ip}:${tcpPort}` }).line(ready, 180_000))[1]!;
    log('starting agents b and c');
    await Promise.all(rig.nodes.filter((n) => n !== a).map((n) => startAgent(rig, n, {}).line(ready, 180_000)));
    await until('the three agents linked', () => rig.nodes.every(linked), 60_000, rig);
    // describeProcess names any *host.ts 'supervisor': here that is the agent, supervisor and node-link in one process.
    const label = (node: string, pid: number) => `${node}: ${describeProcess(pid).replace(/^supervisor$/, 'agent (supervisor + node-link)')}`;
    return {
      url: (route) => `${urlA.replace(/\/$/, '')}${route}`,
      procs: () => [
        ...rig.nodes.flatMap((n) => (n.agent ? processTree(n.agent.pid).map((pid) => ({ pid, label: label(n.name, pid) })) : [])),
        { pid: tcpServer.pid, label: 'b: tcp hop server' },
      ],
      startCpuProfiles: () => {
        for (const n of rig.nodes) n.agent?.send('cpu-prof start');
      },
      stopCpuProfiles: async () => {
        mkdirSync(CPU_PROF_DIR, { recursive: true });
        const files: string[] = [];
        for (const n of rig.nodes) {
          if (!n.agent) continue;
          const f = join(CPU_PROF_DIR, `agent-${n.name}-${process.pid}.cpuprofile`);
          n.agent.send(`cpu-prof stop ${f}`);
          await n.agent.line(/^cpu-prof written /, 60_000);
          files.push(f);
        }
        return files;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
