/**
 * One policy's metrics as a prom-client Registry (docs/metrics.md lists every metric). Each
 * metric's collect() reads the policy's pins when a scrape asks, never on a timer: the first
 * collect of a scrape takes a snapshot of everything (readPolicy), the others of the same scrape
 * reuse it, so the numbers of one scrape are of one moment and the maps are read once.
 *
 * Instances are labelled `instance_id`, not `instance`: Prometheus gives every scraped series an
 * `instance` label of its own (the scrape target) and renames a scraped one to
 * `exported_instance`.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { LATENCY_BOUNDS } from '../schema/gateway-stats.ts';
import { CollectedHistogram } from './histogram.ts';
import { type PolicySnapshot, readPolicy, type SnapshotOptions } from './snapshot.ts';

type Labels = Record<string, string | number>;
type Rows = (s: PolicySnapshot) => Iterable<readonly [Labels, number]>;

export interface PolicyMetrics {
  readonly registry: Registry;
  /** The text exposition format (what GET /metrics answers). */
  text(): Promise<string>;
  /** The same scrape as prom-client's JSON (metrics with their samples). */
  json(): Promise<unknown[]>;
}

/** The registry of `policy`. Reading errors surface from text()/json() (a failed scrape). */
export function policyMetrics(policy: string, opts: SnapshotOptions = {}): PolicyMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ policy });
  let memo: { snap?: PolicySnapshot; err?: unknown } | null = null;
  const snap = (): PolicySnapshot => {
    if (!memo) {
      try {
        memo = { snap: readPolicy(policy, opts) };
      } catch (err) {
        memo = { err };
      }
      // Every collect() of one scrape runs in the same turn of the event loop.
      setImmediate(() => {
        memo = null;
      });
    }
    if (memo.err !== undefined) throw memo.err;
    return memo.snap!;
  };

  const counter = (name: string, help: string, labelNames: string[], rows: Rows) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        let n = 0;
        for (const [labels, v] of rows(snap())) {
          this.inc(labels, v);
          n++;
        }
        if (n === 0 && labelNames.length === 0) this.remove({});
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], rows: Rows) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        let n = 0;
        for (const [labels, v] of rows(snap())) {
          this.set(labels, v);
          n++;
        }
        // prom-client gives a metric without labels a 0 of its own after reset(): a source that
        // is not there (no pool, no packet plane) has no series, as labelled metrics have none.
        if (n === 0 && labelNames.length === 0) this.remove({});
      },
    });

  gauge('bpfctl_policy_loaded', 'Whether the policy is loaded (its pins exist); without it every other series of the policy is absent', [], (s) => [[{}, s.loaded ? 1 : 0]]);

  const routes = (s: PolicySnapshot) => s.chain?.routes ?? [];
  const route = (r: { name: string; version: number }) => ({ route: r.name, version: r.version });
  counter('bpfctl_route_requests_total', 'Requests whose descriptor came back to a gateway on this route version (gw_stats route_replies)', ['route', 'version'], (s) =>
    routes(s).map((r) => {
      let n = 0;
      for (const g of s.gateways) {
        const rr = g.routeReplies.get(r.slot);
        if (rr && rr[0] === r.version) n += rr[1];
      }
      return [route(r), n] as const;
    }),
  );
  counter('bpfctl_route_messages_total', 'Descriptors the sk_msg program routed on this route version, every hop (route_stats)', ['route', 'version'], (s) => routes(s).map((r) => [route(r), r.msgs] as const));
  counter('bpfctl_route_bytes_total', 'Payload bytes of the descriptors routed on this route version (route_stats)', ['route', 'version'], (s) => routes(s).map((r) => [route(r), r.bytes] as const));
  counter('bpfctl_route_drops_total', 'Descriptors on this route version the sk_msg program refused (route_stats)', ['route', 'version'], (s) => routes(s).map((r) => [route(r), r.drops] as const));

  const fns = (s: PolicySnapshot) => s.chain?.functions ?? [];
  counter('bpfctl_function_messages_total', 'Descriptors delivered to the function; gateway = replies (fn_stats)', ['function'], (s) => fns(s).map((f) => [{ function: f.name }, f.msgs] as const));
  counter('bpfctl_function_bytes_total', 'Payload bytes of the descriptors delivered to the function (fn_stats)', ['function'], (s) => fns(s).map((f) => [{ function: f.name }, f.bytes] as const));
  counter('bpfctl_function_drops_total', 'Descriptors bound for the function that the sk_msg program refused (fn_stats)', ['function'], (s) => fns(s).map((f) => [{ function: f.name }, f.drops] as const));
  gauge('bpfctl_function_instances', 'Live instances of the function, the ones the kernel picks from (instances)', ['function'], (s) => fns(s).map((f) => [{ function: f.name }, f.live.length] as const));
  gauge('bpfctl_function_instances_declared', 'Instances the policy, or the last bpfctl scale, asks for (manifest)', ['function'], (s) => fns(s).map((f) => [{ function: f.name }, f.declared] as const));
  gauge('bpfctl_instance_up', '1 for every live instance of a function (instances)', ['function', 'instance_id'], (s) => fns(s).flatMap((f) => f.live.map((i) => [{ function: f.name, instance_id: i }, 1] as const)));
  counter('bpfctl_chain_drops_total', 'Descriptors the sk_msg program refused, by reason (drop_reasons)', ['reason'], (s) => (s.chain?.drops ?? []).map((d) => [{ reason: d.reason }, d.count] as const));

  gauge('bpfctl_pool_buffers', 'Buffers in the shared pool', [], (s) => (s.pool ? [[{}, s.pool.buffers]] : []));
  gauge('bpfctl_pool_buffers_in_use', 'Pool buffers taken now, by any process', [], (s) => (s.pool ? [[{}, s.pool.inUse]] : []));
  counter('bpfctl_pool_alloc_failures_total', 'Pool allocations that found the pool empty', [], (s) => (s.pool ? [[{}, s.pool.allocFailures]] : []));

  counter('bpfctl_gateway_responses_total', 'HTTP responses written by the gateway instance, by status (gw_stats)', ['instance_id', 'code'], (s) =>
    s.gateways.flatMap((g) => [...g.statuses].map(([code, n]) => [{ instance_id: g.instance, code: code === 0 ? 'other' : code }, n] as const)),
  );
  gauge('bpfctl_gateway_info', '1 per gateway instance that has set up its statistics slot (gw_stats)', ['instance_id', 'engine', 'pid'], (s) => s.gateways.map((g) => [{ instance_id: g.instance, engine: g.engine, pid: g.pid }, 1] as const));
  new CollectedHistogram(
    'bpfctl_gateway_request_duration_seconds',
    'Seconds from handing a request to the chain to writing its answer, per gateway instance (gw_stats)',
    LATENCY_BOUNDS,
    () => snap().gateways.map((g) => ({ labels: { instance_id: g.instance }, buckets: g.latency, sum: g.latencySum })),
  ).register(registry);

  counter('bpfctl_xdp_rule_packets_total', 'Packets an XDP rule decided; (default) is the default action (rule_stats)', ['interface', 'rule'], (s) => s.xdp.flatMap((x) => x.rules.map((r) => [{ interface: x.interface, rule: r.name }, r.packets] as const)));
  counter('bpfctl_xdp_rule_bytes_total', 'Bytes of the packets an XDP rule decided (rule_stats)', ['interface', 'rule'], (s) => s.xdp.flatMap((x) => x.rules.map((r) => [{ interface: x.interface, rule: r.name }, r.bytes] as const)));
  counter('bpfctl_xdp_parser_packets_total', 'Frames the XDP parser set aside before the rules: malformed, fragment (xdp_stats)', ['interface', 'reason'], (s) => s.xdp.flatMap((x) => x.parser.map((p) => [{ interface: x.interface, reason: p.reason }, p.packets] as const)));

  // Packet chains (docs/packet-chains.md): the same counters per chain, function and instance as
  // the request chains have, read from the pool's packet plane.
  const pkt = (s: PolicySnapshot) => s.packet;
  const pchains = (s: PolicySnapshot) => pkt(s)?.chains ?? [];
  for (const [what, help] of [
    ['in', 'Frames pktio put on the packet chain'],
    ['out', 'Frames of the packet chain transmitted'],
    ['dropped', 'Frames of the packet chain dropped by a handler or by a drop egress'],
    ['lost', 'Frames of the packet chain lost: no live instance, a ring full, or a transmit failure'],
  ] as const) {
    counter(`bpfctl_packet_chain_frames_${what}_total`, `${help} (packet plane)`, ['chain'], (s) => pchains(s).map((c) => [{ chain: c.name }, c[what]] as const));
  }

  const insts = (s: PolicySnapshot) => (pkt(s)?.functions ?? []).flatMap((f) => f.instances.map((i) => [{ function: f.name, instance_id: i.instance }, i] as const));
  for (const [what, help] of [
    ['rx', 'Frames the packet function instance took from its ring'],
    ['passed', 'Frames the instance handed on, to the next function or the egress'],
    ['dropped', 'Frames the handler of the instance said to drop'],
    ['lost', 'Frames the instance could not hand on: no live instance downstream, or its ring full'],
    ['reclaimed', 'Frames the instance held when it died, given back to the pool by the supervisor'],
  ] as const) {
    counter(`bpfctl_packet_function_frames_${what}_total`, `${help} (packet plane)`, ['function', 'instance_id'], (s) => insts(s).map(([l, i]) => [l, i[what]] as const));
  }
  counter('bpfctl_packet_function_batches_total', 'Batches the packet function instance handled (frames per batch: frames_rx / batches)', ['function', 'instance_id'], (s) => insts(s).map(([l, i]) => [l, i.batches] as const));
  counter('bpfctl_packet_function_wakeups_total', 'Times the packet function instance was woken from an empty ring', ['function', 'instance_id'], (s) => insts(s).map(([l, i]) => [l, i.wakeups] as const));
  gauge('bpfctl_packet_function_queued_frames', 'Frames waiting in the ring of the packet function instance', ['function', 'instance_id'], (s) => insts(s).map(([l, i]) => [l, i.queued] as const));
  gauge('bpfctl_packet_function_instances', 'Live instances of the packet function, the ones producers hand frames to', ['function'], (s) => (pkt(s)?.functions ?? []).map((f) => [{ function: f.name }, f.live] as const));
  gauge('bpfctl_packet_instance_up', '1 for every live instance of a packet function', ['function', 'instance_id'], (s) => insts(s).flatMap(([l, i]) => (i.live ? [[l, 1] as const] : [])));

  const ports = (s: PolicySnapshot) => pkt(s)?.ports ?? [];
  for (const [metric, field, help] of [
    ['rx', 'rx', 'Frames pktio received on the AF_XDP port'],
    ['tx', 'tx', 'Frames pktio transmitted on the AF_XDP port'],
    ['tx_failed', 'txFail', 'Frames the AF_XDP port could not transmit'],
    ['no_chain', 'noChain', 'Frames received without a valid chain, or for a chain with nothing to run: dropped'],
    ['lost', 'lost', "Frames pktio could not hand to the chain's first function: its ring full"],
  ] as const) {
    counter(`bpfctl_packet_port_frames_${metric}_total`, `${help} (packet plane)`, ['interface'], (s) => ports(s).map((p) => [{ interface: p.interface }, p[field]] as const));
  }
  counter('bpfctl_packet_port_kernel_drops_total', "Frames the kernel dropped on the port's AF_XDP sockets, by reason: rx_dropped, rx_ring_full, rx_fill_empty (XDP_STATISTICS)", ['interface', 'reason'], (s) =>
    ports(s).flatMap((p) => p.kernelDrops.map((d) => [{ interface: p.interface, reason: d.reason }, d.count] as const)),
  );
  gauge('bpfctl_packet_port_posted_buffers', 'Pool buffers pktio holds for the port: in its fill rings and unfinished transmissions', ['interface'], (s) => ports(s).map((p) => [{ interface: p.interface }, p.posted] as const));
  gauge('bpfctl_packet_port_queues', 'RX queues of the port pktio has an AF_XDP socket on', ['interface'], (s) => ports(s).map((p) => [{ interface: p.interface }, p.queues] as const));
  gauge('bpfctl_packet_port_info', '1 per AF_XDP port; mode: zero-copy, copy (the driver refused zero-copy), or unbound', ['interface', 'mode'], (s) => ports(s).map((p) => [{ interface: p.interface, mode: p.mode }, 1] as const));
  gauge('bpfctl_packet_tx_queued_frames', "Frames waiting for pktio's transmit thread (ring 0)", [], (s) => (pkt(s) ? [[{}, pkt(s)!.txQueued]] : []));
  gauge('bpfctl_pktio_up', "Whether the policy's pktio process runs (the packet plane names it and it exists)", [], (s) => (pkt(s) ? [[{}, pkt(s)!.pktioUp ? 1 : 0]] : []));

  return {
    registry,
    text: () => registry.metrics(),
    json: () => registry.getMetricsAsJSON(),
  };
}
