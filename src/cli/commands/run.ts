/**
 * `bpfctl run POLICY`: the policy's chain as running processes (src/runtime/supervisor), its URLs
 * printed, until Ctrl-C or SIGTERM; then everything it made is removed. `--demo` sends a few
 * requests to every route, shows the answers and stops (the README's `npm run demo`).
 * `bpfctl scale POLICY FUNCTION N` asks the running supervisor (its control socket) to run N
 * instances of a function.
 */
import { BpfctlError } from '../../errors.ts';
import { DEFAULT_LISTEN, type MetricsServer, parseListen, policyMetrics, serveMetrics } from '../../metrics/index.ts';
import { askSupervisor, type Chain, type DemoResult, runDemo, type SlotInfo, startChain } from '../../runtime/supervisor/index.ts';
import type { Output } from '../output.ts';
import { requirePrivileges } from '../privileges.ts';
import { usage } from './catalog.ts';
import { type Args, defineCommand } from './types.ts';

interface RunArgs {
  policy: string;
  port: number;
  host?: string;
  demo: boolean;
  timeout?: number;
  bodyTimeout?: number;
  pool?: string;
  metrics?: string;
  netns?: string;
}

function printUrls(out: Output, chain: Chain): void {
  if (chain.packet) {
    const p = chain.policy.packet!;
    const ports = chain.packet.snapshot().ports;
    const mode = (ifname: string) => {
      const port = ports.find((x) => x.interface === ifname);
      return port ? `${port.zeroCopy ? 'zero-copy' : 'copy'}, ${port.nqueues} queue${port.nqueues === 1 ? '' : 's'}` : '';
    };
    const rows = p.chains.map((c) => ({
      chain: c.name,
      functions: c.functions.map((f) => p.functions[f]!.name).join(' -> ') || '(none)',
      egress: c.egress.kind === 'tx' ? `tx ${p.ports[c.egress.port]!.interface} (${mode(p.ports[c.egress.port]!.interface)})` : 'drop',
      mode: c.poll ? 'busy-poll' : 'event',
    }));
    out.table(rows, ['chain', 'functions', 'egress', 'mode'], `packet chains of ${chain.policy.name} (AF_XDP ${p.ports.map((x) => `${x.interface}: ${mode(x.interface)}`).join('; ')})`);
    if (chain.routes.length === 0) return;
  }
  const rows = [{ route: '(gateway)', functions: '', url: chain.url }, ...chain.routes.map((r) => ({ route: r.name, functions: r.functions.join(' -> '), url: r.url }))];
  out.table(rows, ['route', 'functions', 'url'], `policy ${chain.policy.name} is running (supervisor pid ${process.pid})`);
}

function printDemo(out: Output, results: DemoResult[]): void {
  for (const r of results) out.line(`POST ${r.url}  ${JSON.stringify(r.request)}  ->  ${r.status} ${JSON.stringify(r.response)}  (${r.ms} ms)`);
}

export const runCommand = defineCommand<RunArgs>({
  ...usage('run'),
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy file (policy.ts)' })
      .option('port', { type: 'number', default: 0, describe: 'gateway HTTP port (0: any free one)' })
      .option('host', { type: 'string', describe: 'gateway HTTP address (default 127.0.0.1; --host alone: all interfaces)' })
      .option('timeout', { type: 'number', describe: 'gateway reply deadline per request, in ms (default 5000)' })
      .option('body-timeout', { type: 'number', describe: 'deadline for a request\'s headers and body, in ms (default 10000; then 408)' })
      .option('pool', { type: 'string', describe: "pool file name (default: the policy's name)" })
      .option('metrics', { type: 'string', describe: `serve Prometheus metrics on HOST:PORT (alone: ${DEFAULT_LISTEN}; docs/metrics.md)` })
      .option('netns', { type: 'string', describe: "network namespace of the policy's XDP interfaces and packet chain ports (a name under /run/netns, or a path)" })
      .option('demo', { type: 'boolean', default: false, describe: 'send example requests to every route, print the answers, stop' }),
  handler: async (argv: Args<RunArgs>) => {
    const { out } = argv;
    requirePrivileges(`run ${argv.policy}`, 'it loads eBPF programs, makes a cgroup, a pool and its pid file in the run directory');
    const stopReq = new AbortController();
    // Ctrl-C reaches the whole process group: the instances stop on their own, the supervisor
    // must not restart them, and must still clean up (a start under way is aborted and undone).
    const onSignal = (sig: NodeJS.Signals) => {
      if (!stopReq.signal.aborted) out.progress(`${sig}: stopping`);
      stopReq.abort();
    };
    // Checked before anything starts; served from the first chain on, across restarts in place.
    const metricsAt = argv.metrics === undefined ? null : parseListen(argv.metrics || DEFAULT_LISTEN);
    let metrics: MetricsServer | null = null;
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      let file = argv.policy;
      let port = argv.port;
      let demo: DemoResult[] | null = null;
      // One turn per chain: `bpfctl apply --restart` of a change that cannot be live ends this
      // chain and starts the new file in its place, on the same port.
      for (;;) {
        let restartTo: string | null = null;
        const turn = new AbortController();
        const chain = await startChain(file, {
          port,
          host: argv.host === '' ? '0.0.0.0' : argv.host,
          timeoutMs: argv.timeout,
          bodyTimeoutMs: argv.bodyTimeout,
          poolName: argv.pool,
          ...(argv.netns ? { netns: argv.netns } : {}),
          progress: (t) => out.progress(t),
          log: (l) => out.stderr.write(`${l}\n`),
          signal: stopReq.signal,
          // `bpfctl unload` of this policy: end the run as Ctrl-C does.
          onStopRequest: () => {
            out.progress('bpfctl unload asked to stop');
            stopReq.abort();
          },
          onRestartRequest: argv.demo
            ? undefined
            : (next) => {
                out.progress(`bpfctl apply --restart: restarting with ${next}`);
                restartTo = next;
                turn.abort();
              },
        });
        try {
          if (metricsAt && !metrics) {
            metrics = await serveMetrics(policyMetrics(chain.policy.name, { poolName: chain.poolName }), metricsAt);
            out.progress(`metrics on ${metrics.url}`);
          }
          if (argv.demo) {
            demo = await runDemo(chain);
            if (out.json) out.printJson({ policy: chain.policy.name, url: chain.url, routes: chain.routes, demo });
            else {
              printUrls(out, chain);
              printDemo(out, demo);
            }
          } else {
            if (out.json) {
              const packet = chain.packet ? { chains: chain.policy.packet!.chains.map((c) => c.name), ports: chain.packet.snapshot().ports.map((x) => ({ interface: x.interface, zeroCopy: x.zeroCopy, queues: x.nqueues })) } : undefined;
              out.printJson({ policy: chain.policy.name, pid: process.pid, url: chain.url, routes: chain.routes, ...(packet ? { packet } : {}), ...(metrics ? { metrics: metrics.url } : {}) });
            } else printUrls(out, chain);
            out.progress('Ctrl-C (or SIGTERM) stops the chain and removes its pins, pool and processes');
            await new Promise<void>((resolve) => {
              if (stopReq.signal.aborted) resolve();
              stopReq.signal.addEventListener('abort', () => resolve(), { once: true });
              turn.signal.addEventListener('abort', () => resolve(), { once: true });
            });
          }
        } finally {
          out.progress(`stopping ${chain.policy.name}`);
          await chain.stop();
          out.progress(`stopped; removed the pins under ${chain.pinDir}, pool ${chain.poolName} and cgroup ${chain.cgroup}`);
        }
        if (restartTo === null || stopReq.signal.aborted) break;
        file = restartTo;
        port = chain.port;
      }
      const failed = demo?.filter((r) => r.status !== 200) ?? [];
      if (failed.length) throw new BpfctlError('E_DEMO', `${failed.length} of ${demo!.length} demo requests failed (first: ${failed[0]!.route} -> ${failed[0]!.status} ${failed[0]!.response})`);
    } finally {
      await metrics?.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
});

interface ScaleArgs {
  policy: string;
  function: string;
  instances: number;
}

export const scaleCommand = defineCommand<ScaleArgs>({
  ...usage('scale'),
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy name' })
      .positional('function', { type: 'string', demandOption: true })
      .positional('instances', { type: 'number', demandOption: true }),
  handler: async (argv: Args<ScaleArgs>) => {
    const { out } = argv;
    requirePrivileges(`scale ${argv.policy}`, "it asks the chain's supervisor through its control socket, which is root's");
    out.progress(`asking the supervisor of ${argv.policy} for ${argv.instances} instance(s) of ${argv.function}`);
    const slots = (await askSupervisor(argv.policy, { op: 'scale', function: argv.function, instances: argv.instances })) as SlotInfo[];
    out.table(
      slots.map((s) => ({ function: s.name, instance: s.instance, pid: s.pid, state: s.state, restarts: s.restarts })),
      ['function', 'instance', 'pid', 'state', 'restarts'],
    );
  },
});
