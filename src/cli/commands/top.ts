/**
 * `bpfctl top POLICY`: live rates of a loaded policy, from two readings of its pins one interval
 * apart. It counts two different things and labels both, since they differ by the route's length:
 *
 * - requests per route: replies that came back to a gateway for a request it holds
 *   (`gw_stats` route_replies, written by the gateway processes; a loaded chain nobody runs has
 *   none). One per request, whatever the route's length.
 * - messages per hop: every descriptor the sk_msg program routed (`route_stats`, `fn_stats`): a
 *   request on a route of three functions is four messages (three hops and the way back).
 *
 * Routes are read as the kernel has them (current and draining versions, by slot), so a route
 * changed live shows its new version at once. With --json: one JSON object per refresh (NDJSON).
 */

import { pathExists } from '../../deploy/access.ts';
import { openChainMaps } from '../../deploy/chain-maps.ts';
import type { Manifest } from '../../deploy/manifest.ts';
import { policyDir } from '../../deploy/paths.ts';
import { loadedManifest } from '../../deploy/policy.ts';
import { liveRoutes } from '../../deploy/routes.ts';
import { BpfctlError } from '../../errors.ts';
import { readChain } from '../../metrics/chain-reader.ts';
import { readGateways } from '../../metrics/gateway-reader.ts';
import { usage } from './catalog.ts';
import { packetRates, readPacket } from './packet-view.ts';
import { type Args, defineCommand } from './types.ts';

interface TopArgs {
  policy: string;
  interval: number;
  count?: number;
}

/** One reading of a policy's counters. */
export interface TopReading {
  at: number;
  routes: {
    slot: number;
    version: number;
    name: string;
    state: 'current' | 'draining';
    functions: string[];
    /** Replies back at a gateway for requests on this route version. */
    requests: number;
    /** Descriptors the kernel routed on it, every hop and the way back. */
    messages: number;
    bytes: number;
    drops: number;
  }[];
  functions: { id: number; name: string; declared: number; live: number; messages: number; bytes: number; drops: number }[];
}

/** Reads every counter `top` shows. @throws PolicyNotLoadedError, AccessError, LoaderError */
export function readTop(policy: string, manifest: Manifest = loadedManifest(policy)): TopReading {
  const dir = policyDir(policy);
  const at = performance.now();
  if (!pathExists(`${dir}/maps/routes`)) return { at, routes: [], functions: [] };
  const cm = openChainMaps(policy, undefined, manifest);
  try {
    const chain = readChain(cm, manifest.ir);
    const table = liveRoutes(cm);
    const draining = new Set(table.draining.map((r) => r.slot));
    const hops = new Map([...table.current, ...table.draining].map((r) => [r.slot, r.hops]));
    const names = new Map(chain.functions.map((f) => [f.id, f.name]));
    const gateways = readGateways(dir);
    const replies = (slot: number, version: number) => gateways.reduce((n, g) => n + (g.routeReplies.get(slot)?.[0] === version ? g.routeReplies.get(slot)![1] : 0), 0);
    return {
      at,
      routes: chain.routes.map((r) => ({
        slot: r.slot,
        version: r.version,
        name: r.name,
        state: draining.has(r.slot) ? 'draining' : 'current',
        functions: (hops.get(r.slot) ?? []).map((h) => names.get(h) ?? `#${h}`),
        requests: replies(r.slot, r.version),
        messages: r.msgs,
        bytes: r.bytes,
        drops: r.drops,
      })),
      functions: chain.functions.map((f) => ({ id: f.id, name: f.name, declared: f.declared, live: f.live.length, messages: f.msgs, bytes: f.bytes, drops: f.drops })),
    };
  } finally {
    cm.close();
  }
}

const perSecond = (a: number, b: number, seconds: number) => (seconds > 0 ? Math.max(0, Math.round((b - a) / seconds)) : 0);

/** Rates between two readings; a route version or function missing from `prev` starts at its current count. */
export function topRates(prev: TopReading, cur: TopReading) {
  const s = (cur.at - prev.at) / 1000;
  const routes = cur.routes.map((r) => {
    const p = prev.routes.find((x) => x.slot === r.slot && x.version === r.version) ?? r;
    return {
      route: r.name,
      slot: r.slot,
      version: r.version,
      state: r.state,
      functions: r.functions,
      requestsPerSec: perSecond(p.requests, r.requests, s),
      messagesPerSec: perSecond(p.messages, r.messages, s),
      bytesPerSec: perSecond(p.bytes, r.bytes, s),
      dropsPerSec: perSecond(p.drops, r.drops, s),
      requests: r.requests,
      messages: r.messages,
      drops: r.drops,
    };
  });
  const functions = cur.functions.map((f) => {
    const p = prev.functions.find((x) => x.id === f.id) ?? f;
    return {
      function: f.name,
      live: f.live,
      declared: f.declared,
      messagesPerSec: perSecond(p.messages, f.messages, s),
      bytesPerSec: perSecond(p.bytes, f.bytes, s),
      dropsPerSec: perSecond(p.drops, f.drops, s),
      messages: f.messages,
      drops: f.drops,
    };
  });
  return { seconds: s, routes, functions };
}

/** 1234567 -> "1.2M": rates and totals in a column a few characters wide. */
function short(n: number): string {
  if (n < 10_000) return String(n);
  for (const [d, u] of [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (n >= d) return `${(n / d).toFixed(n >= 10 * d ? 0 : 1)}${u}`;
  }
  return String(n);
}

export const topCommand = defineCommand({
  ...usage('top'),
  builder: (y) =>
    y
      .positional('policy', { type: 'string', demandOption: true })
      .option('interval', { type: 'number', default: 1, describe: 'seconds between refreshes' })
      .option('count', { type: 'number', describe: 'stop after this many refreshes (default: until Ctrl-C)' }),
  handler: async (argv: Args<TopArgs>) => {
    const { out } = argv;
    if (!(argv.interval > 0)) throw new BpfctlError('E_USAGE', `--interval must be a positive number of seconds, got ${argv.interval}`);
    const ms = Math.max(0.1, argv.interval) * 1000;
    const manifest = loadedManifest(argv.policy);
    let prev = readTop(argv.policy, manifest);
    let prevPacket = await readPacket(argv.policy);
    let stopped = false;
    const stop = () => {
      stopped = true;
    };
    process.once('SIGINT', stop);
    try {
      for (let i = 0; !stopped && (argv.count === undefined || i < argv.count); i++) {
        await new Promise((r) => setTimeout(r, ms));
        const cur = readTop(argv.policy, manifest);
        const rates = topRates(prev, cur);
        prev = cur;
        const curPacket = await readPacket(argv.policy);
        const packet = prevPacket && curPacket ? packetRates(prevPacket, curPacket, rates.seconds) : null;
        prevPacket = curPacket;
        if (out.json) {
          out.printJson({ time: new Date().toISOString(), policy: argv.policy, seconds: rates.seconds, routes: rates.routes, functions: rates.functions, ...(packet ? { packet } : {}) });
          continue;
        }
        // Redraw in place on a terminal; append when piped so logs stay readable.
        if ((out.stdout as NodeJS.WriteStream).isTTY) out.stdout.write('\x1b[H\x1b[2J');
        out.line(`bpfctl top ${argv.policy}   ${new Date().toLocaleTimeString()}   every ${argv.interval}s, Ctrl-C quits`);
        // A policy without request chains (no chain maps: packet chains, classifiers) has nothing
        // for the request tables but an empty header each.
        if (rates.routes.length > 0 || rates.functions.length > 0) {
          out.line('req = requests: replies back at the gateway, one per request');
          out.line('msg = messages per hop: descriptors the kernel routed (hops + 1 per request)');
          out.line('');
          out.table(
            rates.routes.map((r) => ({
              route: r.state === 'draining' ? `${r.route} (draining)` : r.route,
              functions: r.functions.join(' -> '),
              'req/s': short(r.requestsPerSec),
              'msg/s': short(r.messagesPerSec),
              'drop/s': short(r.dropsPerSec),
              req: short(r.requests),
              msg: short(r.messages),
            })),
            ['route', 'functions', 'req/s', 'msg/s', 'drop/s', 'req', 'msg'],
            'Routes',
          );
          out.line('');
          out.table(
            rates.functions.map((f) => ({
              function: f.function,
              live: `${f.live}/${f.declared}`,
              'msg/s': short(f.messagesPerSec),
              'bytes/s': short(f.bytesPerSec),
              'drop/s': short(f.dropsPerSec),
              msg: short(f.messages),
              drops: short(f.drops),
            })),
            ['function', 'live', 'msg/s', 'bytes/s', 'drop/s', 'msg', 'drops'],
            'Functions (messages each received; the gateway gets every reply)',
          );
        } else if (!packet) out.line('no request chains; packet chains show while a bpfctl run of the policy runs them');
        if (packet) {
          out.line('');
          out.table(
            packet.chains.map((c) => ({ chain: c.chain, 'in/s': short(c.inPerSec), 'out/s': short(c.outPerSec), 'drop/s': short(c.dropsPerSec), in: short(c.in), out: short(c.out), drops: short(c.drops) })),
            ['chain', 'in/s', 'out/s', 'drop/s', 'in', 'out', 'drops'],
            'Packet chains (frames)',
          );
          out.line('');
          out.table(
            packet.functions.map((f) => ({ function: f.function, live: f.live, 'pkt/s': short(f.pktsPerSec), 'drop/s': short(f.dropsPerSec), queued: f.queued, pkts: short(f.pkts), drops: short(f.drops) })),
            ['function', 'live', 'pkt/s', 'drop/s', 'queued', 'pkts', 'drops'],
            'Packet functions',
          );
          out.line('');
          out.table(
            packet.ports.map((x) => ({ port: x.port, 'rx/s': short(x.rxPerSec), 'tx/s': short(x.txPerSec), 'kernel drop/s': short(x.kernelDropsPerSec) })),
            ['port', 'rx/s', 'tx/s', 'kernel drop/s'],
            'AF_XDP ports',
          );
        }
      }
    } finally {
      process.off('SIGINT', stop);
    }
  },
});
