/**
 * `bpfctl agent run`: this node's share of a policy that spans several nodes, its node-link to
 * the others, and convergence to the policy source as it changes (a file, or the directory a
 * Kubernetes ConfigMap is mounted as); until SIGTERM/Ctrl-C, then everything it made is removed.
 * `bpfctl agent status POLICY`: what the agent of this node runs, local and remote.
 * docs/multi-node.md.
 */
import { AgentError, agentStatusPath, parseLabels, parsePeers, readAgentStatus, startAgent } from '../../runtime/agent/agent.ts';
import { readSecretFile } from '../../runtime/agent/secret-file.ts';
import { SECRET_GRACE_MS } from '../../runtime/node-link/secrets.ts';
import { requirePrivileges } from '../privileges.ts';
import { usage } from './catalog.ts';
import { type Args, defineCommand } from './types.ts';

interface RunArgs {
  policy: string;
  node?: string;
  labels?: string;
  listen: string;
  peers?: string;
  secretFile?: string;
  secretGrace: number;
  nodeLinkEngine: 'native' | 'node';
  port: number;
  host?: string;
  pool?: string;
  timeout?: number;
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  if (!m) throw new AgentError(`--listen '${text}' must be HOST:PORT`);
  return { host: m[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port: Number(m[2]) };
}

const run = defineCommand<RunArgs>({
  command: 'run',
  describe: "Run this node's share of a policy (local instances, local gateway, node-link to the peers) and follow the policy source",
  builder: (y) =>
    y
      .option('policy', { type: 'string', demandOption: true, describe: 'policy file, or a directory with policy.ts (a mounted ConfigMap)' })
      .option('node', { type: 'string', describe: 'this node\'s name (default: $BPFCTL_NODE, then $NODE_NAME)' })
      .option('labels', { type: 'string', describe: 'this node\'s labels, k=v,k2=v2 (default: $BPFCTL_NODE_LABELS)' })
      .option('listen', { type: 'string', default: '0.0.0.0:7946', describe: 'node-link address peers connect to' })
      .option('peers', { type: 'string', describe: "the policy's nodes, NAME=HOST:PORT,... (this node's own entry is skipped, and must be its --listen address; default: $BPFCTL_PEERS)" })
      .option('secret-file', { type: 'string', describe: "file holding the policy's shared secret, followed: a new one is taken without a restart (default: $BPFCTL_SECRET_FILE)" })
      .option('secret-grace', { type: 'number', default: SECRET_GRACE_MS / 1000, describe: 'seconds the previous secret is still accepted after the secret file changes' })
      .option('node-link-engine', { choices: ['native', 'node'] as const, default: 'native' as const, describe: "what moves descriptors between nodes: 'native' (a C process; faster) or 'node' (the agent itself; no compiler needed)" })
      .option('port', { type: 'number', default: 0, describe: 'gateway HTTP port (0: any free one)' })
      .option('host', { type: 'string', describe: 'gateway HTTP address (default 127.0.0.1)' })
      .option('pool', { type: 'string', describe: "pool file name (default: the policy's name)" })
      .option('timeout', { type: 'number', describe: 'gateway reply deadline per request, in ms (default 5000)' }),
  handler: async (argv: Args<RunArgs>) => {
    const { out } = argv;
    requirePrivileges('agent run', 'it loads eBPF programs, makes a cgroup, a pool and its pid file in the run directory');
    const node = argv.node ?? process.env.BPFCTL_NODE ?? process.env.NODE_NAME;
    if (!node) throw new AgentError('which node is this? give --node NAME (or set BPFCTL_NODE)');
    const secretFile = argv.secretFile ?? process.env.BPFCTL_SECRET_FILE;
    if (!secretFile) throw new AgentError("no policy secret: give --secret-file FILE (peers prove it to each other; docs/multi-node.md)");
    const secret = readSecretFile(secretFile);
    if (!(argv.secretGrace >= 0)) throw new AgentError(`--secret-grace ${argv.secretGrace} must be a number of seconds, 0 or more`);
    const peers = parsePeers(argv.peers ?? process.env.BPFCTL_PEERS ?? '', node);
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const agent = await startAgent({
        policy: argv.policy,
        node: { name: node, labels: parseLabels(argv.labels ?? process.env.BPFCTL_NODE_LABELS) },
        listen: parseListen(argv.listen),
        peers: peers.peers,
        selfEntry: peers.self,
        secret,
        secretFile,
        secretGraceMs: argv.secretGrace * 1000,
        nodeLinkEngine: argv.nodeLinkEngine,
        port: argv.port,
        host: argv.host === '' ? '0.0.0.0' : argv.host,
        poolName: argv.pool,
        timeoutMs: argv.timeout,
        progress: (t) => out.progress(t),
        log: (l) => out.stderr.write(`${l}\n`),
        signal: stop.signal,
      });
      try {
        const s = agent.status();
        if (out.json) out.printJson({ policy: s.policy, node: s.node, pid: process.pid, url: s.url, nodeLink: s.link.listen });
        else out.line(`policy ${s.policy} on node ${s.node}: gateway ${s.url}, node-link ${s.link.listen} (agent pid ${process.pid})`);
        await new Promise<void>((resolve) => {
          if (stop.signal.aborted) resolve();
          stop.signal.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        out.progress('stopping');
        await agent.stop();
      }
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
});

const status = defineCommand<{ policy: string }>({
  command: 'status <policy>',
  describe: "What this node's agent runs: local instances, peers, remote functions",
  builder: (y) => y.positional('policy', { type: 'string', demandOption: true }),
  handler: (argv: Args<{ policy: string }>) => {
    const s = readAgentStatus(argv.policy);
    if (!s) throw new AgentError(`no agent runs policy ${argv.policy} on this node (no ${agentStatusPath(argv.policy)})`);
    const { out } = argv;
    if (out.json) return out.printJson(s);
    const rows = [
      ...s.local.filter((l) => l.kind === 'function').map((l) => ({ function: l.name, where: `local #${l.instance}`, state: l.state, pid: l.pid ?? '' })),
      ...(s.link.spill ?? []).flatMap((x) => x.peers.map((p) => ({ function: x.function, where: `remote ${p} (${x.active ? 'spilling now' : 'spill target'})`, state: 'up', pid: '' }))),
      ...s.link.remote.flatMap((r) => (r.peers.length ? r.peers.map((p) => ({ function: r.function, where: `remote ${p}`, state: 'up', pid: '' })) : [{ function: r.function, where: 'remote', state: 'no node', pid: '' }])),
    ];
    out.table(rows, ['function', 'where', 'state', 'pid'], `policy ${s.policy} on node ${s.node} (gateway ${s.url}, node-link ${s.link.listen})`);
    out.table(
      s.link.peers.map((p) => ({ peer: p.name, address: p.address, up: p.up ? 'yes' : p.problem ? `no: ${p.problem}` : 'no', runs: p.state?.hosts.join(',') ?? '' })),
      ['peer', 'address', 'up', 'runs'],
    );
    // Older agents' status files have no secret part.
    const sec = s.secret;
    if (sec) {
      const grace = sec.previousAcceptedUntil ? `, the previous one accepted until ${sec.previousAcceptedUntil}` : '';
      out.line(`secret: generation ${sec.generation}${sec.changedAt ? ` since ${sec.changedAt}` : ''}${grace}`);
      if (sec.warning) out.line(`warning: the secret file changed but was not taken: ${sec.warning}`);
    }
    const k = s.link.counters;
    out.line(`descriptors: ${k.sent ?? 0} sent to other nodes, ${k.received ?? 0} received, ${k.failedFast ?? 0} failed at once (503)${k.malformed ? `, ${k.malformed} malformed batches refused` : ''}; ${s.link.engine ?? 'node'} data path`);
    if (k.wrongVersion || k.refused) out.line(`refused connections: ${k.refused ?? 0} without a valid proof, ${k.wrongVersion ?? 0} of another protocol version`);
  },
});

export const agentCommand = defineCommand({
  ...usage('agent'),
  builder: (y) => y.command(run).command(status).demandCommand(1),
  handler: () => {},
});
