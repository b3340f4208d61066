/** The HTTP gateway of a function chain (function id 0). */
export { type Gateway, type GatewayOptions, type GatewayStats, startGateway } from './gateway.ts';
export type { InstancesMap } from './live-instances.ts';
