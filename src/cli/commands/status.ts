/** `bpfctl status [POLICY]`: loaded policies, or one policy's programs, routes, functions, counters. */
import { AccessError, pathExists } from '../../deploy/access.ts';
import { listPolicies, loadedManifest } from '../../deploy/loaded.ts';
import { policyStatus } from '../../deploy/status.ts';
import { type AgentStatus, readAgentStatus } from '../../runtime/agent/agent.ts';
import { askSupervisor, controlPath, type SlotInfo } from '../../runtime/supervisor/index.ts';
import { usage } from './catalog.ts';
import { type PacketView, printPacket } from './packet-view.ts';
import { type Args, defineCommand } from './types.ts';

export const statusCommand = defineCommand({
  ...usage('status'),
  builder: (y) => y.positional('policy', { type: 'string', describe: 'policy name' }),
  handler: async (argv: Args<{ policy?: string }>) => {
    const { out } = argv;
    if (!argv.policy) {
      const rows = listPolicies().map((name) => {
        const m = loadedManifest(name);
        return {
          policy: name,
          functions: m.ir.functions.length,
          routes: m.ir.routes.length,
          xdp: m.xdp.map((x) => x.interface).join(',') || '-',
          programs: m.pins.progs.length + m.xdp.length + (m.tc?.length ?? 0),
          loaded: m.createdAt,
        };
      });
      out.table(rows, ['policy', 'functions', 'routes', 'xdp', 'programs', 'loaded']);
      return;
    }
    const s = policyStatus(argv.policy);
    const processes = await runningProcesses(argv.policy);
    const packet = processes ? ((await askSupervisor(argv.policy, { op: 'packet' }, undefined, 2000)) as PacketView | null) : null;
    const agent = readAgentStatus(argv.policy);
    const nodes = agent ? nodesView(agent) : null;
    if (out.json) return void out.printJson({ ...s, processes, ...(packet ? { packet } : {}), ...(nodes ? { nodes } : {}) });
    out.record({ policy: s.policy, pinned: s.dir, cgroup: s.cgroup ?? '-', loaded: s.createdAt, file: s.policyFile ?? '-', hash: s.schemaHash.slice(0, 16) }, `Policy ${s.policy}`);
    out.line('');
    out.table(s.programs, ['pin', 'id', 'type', 'name'], 'Programs');
    if (s.routes.length) {
      out.line('');
      out.table(s.routes.map((r) => ({ ...r, functions: r.functions.join(' -> ') })), ['id', 'name', 'functions', 'msgs', 'bytes', 'drops'], 'Routes');
      out.line('');
      // Instance ids that stand for other nodes (the node-link's) are shown by the node's name.
      const where = (fn: number, i: number) => nodes?.remoteIds[fn]?.[i] ?? String(i);
      out.table(s.functions.map((f) => ({ ...f, live: f.live.length ? f.live.map((i) => where(f.id, i)).join(',') : 'none' })), ['id', 'name', 'instances', 'live', 'msgs', 'bytes', 'drops'], 'Functions');
      const drops = s.drops.filter((d) => d.count > 0);
      if (drops.length) {
        out.line('');
        out.table(drops, ['reason', 'count'], 'Drops');
      }
    }
    if (s.xdp.length) {
      out.line('');
      out.table(s.xdp, ['interface', 'mode', 'dir'], 'XDP (bpfctl xdp status for rules and counters)');
    }
    if (s.tc.length) {
      out.line('');
      out.table(s.tc, ['interface', 'direction', 'dir'], 'tc (bpfctl xdp status for rules and counters)');
    }
    if (nodes) {
      out.line('');
      out.table(nodes.peers, ['node', 'address', 'up', 'runs'], `Nodes (this is ${nodes.node}; bpfctl agent status for more)`);
    }
    if (packet) printPacket(out, packet);
    if (processes) {
      out.line('');
      out.table(
        processes.map((p) => ({ ...p, lastError: p.lastError ?? '' })),
        ['kind', 'name', 'instance', 'pid', 'state', 'restarts', 'lastError'],
        'Processes (bpfctl run)',
      );
    }
  },
});

/** The instances a running `bpfctl run` supervises, or null when none runs this policy. */
async function runningProcesses(policy: string): Promise<SlotInfo[] | null> {
  const path = controlPath(policy);
  if (!pathExists(path)) return null;
  try {
    return (await askSupervisor(policy, { op: 'instances' }, undefined, 2000)) as SlotInfo[];
  } catch (err) {
    // The supervisor's socket is root's: not being allowed is not the same as nothing running.
    const code = (err as { code?: string }).code;
    if (code === 'EACCES' || code === 'EPERM') throw new AccessError('cannot ask the supervisor at', path, 'connect', { cause: err });
    // A stale socket from a supervisor that was killed: nothing runs.
    return null;
  }
}

/** The nodes a policy run by `bpfctl agent` spans, and which node each remote instance id is. */
function nodesView(a: AgentStatus): { node: string; peers: { node: string; address: string; up: string; runs: string }[]; remoteIds: Record<number, Record<number, string>> } {
  const remoteIds: Record<number, Record<number, string>> = {};
  for (const r of [...a.link.remote, ...(a.link.spill ?? [])]) remoteIds[r.fnId] = Object.fromEntries(r.instances.map((id, j) => [id, `@${r.peers[j] ?? '?'}`]));
  return {
    node: a.node,
    peers: a.link.peers.map((p) => ({ node: p.name, address: p.address, up: p.up ? 'yes' : p.problem ? `no: ${p.problem}` : 'no', runs: p.state?.hosts.join(',') ?? '' })),
    remoteIds,
  };
}
