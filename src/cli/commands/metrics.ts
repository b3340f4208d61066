/**
 * `bpfctl metrics POLICY`: a Prometheus endpoint for a loaded policy, in a process of its own that
 * needs only the policy's pins (docs/metrics.md). `--once` prints one scrape instead (the text
 * format, or prom-client's JSON with --json) for scripts and for `promtool check metrics`.
 */
import { PolicyNotLoadedError } from '../../deploy/policy.ts';
import { pinRoot } from '../../deploy/paths.ts';
import { DEFAULT_LISTEN, parseListen, policyMetrics, readPolicy, serveMetrics } from '../../metrics/index.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

interface MetricsArgs {
  policy: string;
  listen: string;
  once: boolean;
  pool?: string;
}

export const metricsCommand = defineCommand<MetricsArgs>({
  ...usage('metrics'),
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true, describe: 'policy name' })
      .option('listen', { type: 'string', default: DEFAULT_LISTEN, describe: 'HOST:PORT to serve GET /metrics on' })
      .option('once', { type: 'boolean', default: false, describe: 'print one scrape and exit (with --json: as JSON)' })
      .option('pool', { type: 'string', describe: "the chain's pool file name (default: the policy's name)" }),
  handler: async (argv: Args<MetricsArgs>) => {
    const { out } = argv;
    const root = pinRoot();
    // Refuse a policy that is not loaded now; one unloaded later reads as bpfctl_policy_loaded 0.
    if (!readPolicy(argv.policy, { root, poolName: argv.pool }).loaded) throw new PolicyNotLoadedError(argv.policy, root);
    const metrics = policyMetrics(argv.policy, { root, poolName: argv.pool });
    if (argv.once) {
      if (out.json) out.printJson(await metrics.json());
      else out.stdout.write(await metrics.text());
      return;
    }
    const at = parseListen(argv.listen);
    const server = await serveMetrics(metrics, at);
    if (out.json) out.printJson({ policy: argv.policy, url: server.url, pid: process.pid });
    else out.line(`metrics of ${argv.policy} on ${server.url} (Ctrl-C stops)`);
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    try {
      await stopped;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await server.close();
    }
  },
});
