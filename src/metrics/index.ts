/**
 * Prometheus metrics of a loaded policy (docs/metrics.md): the registry (registry.ts) over
 * readers of each source (chain maps, the gateways' shared block, the pool and its packet plane,
 * XDP sections), and the HTTP endpoint. Sits above src/runtime (it reads the pool and the plane
 * through the runtime's Pool and PacketPlane) and below the CLI; nothing below imports it.
 */
export { DEFAULT_LISTEN, formatListen, type ListenAddress, parseListen } from './address.ts';
export { MetricsError } from './errors.ts';
export { type PacketReading, readPacket } from './packet-reader.ts';
export { type PolicyMetrics, policyMetrics } from './registry.ts';
export { type MetricsServer, serveMetrics } from './server.ts';
export { type PolicySnapshot, readPolicy, type SnapshotOptions } from './snapshot.ts';
