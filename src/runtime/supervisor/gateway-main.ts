/**
 * Process entry of one gateway instance, forked by the supervisor as a cluster worker: the HTTP
 * server is the chain's ceiling (one Node server tops out around 16k req/s on 2 cores), so it gets
 * an event loop of its own, and with `gateway.instances` > 1 the workers share one listening
 * socket (the cluster primary only creates it; each worker accepts for itself).
 *
 * Registration is sockops, like the functions': the reserved port is in `reg_ports`, and the
 * process joins the policy cgroup before it connects.
 */
import { BpfMap } from '../../../loader/index.ts';
import { loadPolicyFile } from '../../ir/policy.ts';
import { startGateway } from '../gateway/index.ts';
import { GW_ENV } from './gateway-env.ts';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (the supervisor sets it; see src/runtime/supervisor/gateway-env.ts)`);
  return v;
}

function num(name: string): number {
  const n = Number(need(name));
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${process.env[name]}'`);
  return n;
}

async function main(): Promise<void> {
  const gwInst = num(GW_ENV.gwInst);
  const ir = await loadPolicyFile(need(GW_ENV.policy));
  const instances = BpfMap.openPinned(need(GW_ENV.instancesPin));
  const timeout = process.env[GW_ENV.timeoutMs];
  const gw = await startGateway({
    policy: ir,
    pool: need(GW_ENV.pool),
    hubPort: num(GW_ENV.hubPort),
    gwInst,
    regPort: num(GW_ENV.regPort),
    cgroup: need(GW_ENV.cgroup),
    instances,
    port: num(GW_ENV.httpPort),
    host: need(GW_ENV.httpHost),
    timeoutMs: timeout ? Number(timeout) : undefined,
  });
  await gw.ready;
  process.send?.({ type: 'bpfctl:ready', port: gw.port, pid: process.pid, gwInst });
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    // Open requests get a 503 rather than a reset connection.
    void gw.close().finally(() => {
      instances.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`bpfctl gateway: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
