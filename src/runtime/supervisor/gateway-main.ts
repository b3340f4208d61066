/**
 * Process entry of one gateway instance, forked by the supervisor as a cluster worker: the HTTP
 * server is the chain's ceiling (one Node server tops out around 16k req/s on 2 cores), so it gets
 * an event loop of its own, and with `gateway.instances` > 1 the workers share one listening
 * socket (the cluster primary only creates it; each worker accepts for itself).
 *
 * Its chain socket goes to the supervisor over the cluster IPC channel, which inserts it. Routes
 * and live instances are read from the pinned maps through read-only mappings; the supervisor
 * tells it over IPC when an instance dies, so the requests that instance held fail at once.
 */
import { readManifest } from '../../deploy/manifest.ts';
import { startGateway } from '../gateway/index.ts';
import { GatewayStatsSlot } from '../gateway/stats-slot.ts';
import { LiveInstanceCounts, LiveRouteTable } from '../route-table.ts';
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
  const pinDir = need(GW_ENV.pinDir);
  // Function names (for messages) and the pool's size; routes and instances are followed live.
  const ir = readManifest(pinDir).ir;
  const routes = LiveRouteTable.open(pinDir);
  const instances = LiveInstanceCounts.open(pinDir);
  // This instance's slot of maps/gw_stats: what `bpfctl metrics` reads about its responses.
  const metrics = GatewayStatsSlot.open(pinDir, gwInst, 'node');
  const timeout = process.env[GW_ENV.timeoutMs];
  const bodyTimeout = process.env[GW_ENV.bodyTimeoutMs];
  const gw = await startGateway({
    policy: ir,
    pool: need(GW_ENV.pool),
    hubPort: num(GW_ENV.hubPort),
    gwInst,
    mode: 'ipc',
    routes,
    instances,
    metrics,
    port: num(GW_ENV.httpPort),
    host: need(GW_ENV.httpHost),
    timeoutMs: timeout ? Number(timeout) : undefined,
    bodyTimeoutMs: bodyTimeout ? Number(bodyTimeout) : undefined,
  });
  process.on('message', (m: { type?: string; fnId?: number; inst?: number; before?: number[] }) => {
    if (m?.type === 'bpfctl:instance-down' && typeof m.fnId === 'number' && typeof m.inst === 'number' && Array.isArray(m.before)) {
      gw.instanceDown(m.fnId, m.inst, m.before);
    }
  });
  await gw.ready;
  process.send?.({ type: 'bpfctl:ready', port: gw.port, pid: process.pid, gwInst });
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    // Open requests get a 503 rather than a reset connection.
    void gw.close().finally(() => {
      routes.close();
      instances.close();
      metrics.close();
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
