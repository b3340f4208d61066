/**
 * Hosts one bpfctl chain for the bench, in a process of its own: `host.ts <policy.ts>` runs
 * startChain (the supervisor: policy load, pool, hub; gateway and functions as its children),
 * prints `ready <json>` with what the bench and the loop driver need, and stops the chain (every
 * process, pin and the pool) on SIGTERM/SIGINT or when the bench closes its stdin.
 *
 * Its own process so that the CPU of the variant is exactly this process tree, and so that a
 * bench killed outright still gets the chain torn down (stdin closes).
 */
import { startChain } from '../../../src/runtime/supervisor/index.ts';
import { exitWithParent } from '../proc.ts';

const policyFile = process.argv[2];
if (!policyFile) {
  process.stderr.write('usage: host.ts <policy.ts>\n');
  process.exit(2);
}

const ac = new AbortController();
const starting = startChain(policyFile, { signal: ac.signal, log: (l) => process.stderr.write(`${l}\n`) });
// Aborting first: during a start it makes startChain remove what it made so far (and reject once
// it has); on a running chain it stops the supervisor from restarting instances that are going
// away with it.
exitWithParent(async () => {
  ac.abort();
  const chain = await starting.catch(() => null);
  await chain?.stop();
});

try {
  const chain = await starting;
  const route = chain.routes[0]!;
  process.stdout.write(
    `ready ${JSON.stringify({ url: route.url, policy: chain.policy.name, routeId: 0, routeLen: route.functions.length, hubPort: chain.hubPort, poolName: chain.poolName, pinDir: chain.pinDir })}\n`,
  );
} catch (err) {
  process.stderr.write(`bench host: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
