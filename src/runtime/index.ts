/**
 * `bpfctl/runtime`: what function modules, supervisors and tools built on bpfctl import. Handler
 * modules need only the types (`Request`, `Handler`) and `FunctionError`.
 */
export { type Gateway, type GatewayOptions, type GatewayStats, type InstancesMap, startGateway } from './gateway/index.ts';
export { type DeadLetter, type Hub, startDeadLetter, startHub } from './hub.ts';
export { type BufRef, Pool, PoolError, type PoolStats } from './pool/index.ts';
export * from './sdk/index.ts';
export { TypedMap } from './typed-map.ts';
