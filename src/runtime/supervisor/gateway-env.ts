/**
 * The environment of a gateway process (supervisor/gateway-main.ts). Functions have theirs in
 * sdk/env.ts; the gateway needs a few more things (HTTP address, its instance id, the pinned
 * `instances` map) and is always bpfctl's own code, so the contract stays inside the supervisor.
 */
export const GW_ENV = {
  policy: 'BPFCTL_POLICY',
  pool: 'BPFCTL_POOL',
  hubPort: 'BPFCTL_HUB_PORT',
  regPort: 'BPFCTL_REG_PORT',
  cgroup: 'BPFCTL_CGROUP',
  gwInst: 'BPFCTL_GW_INST',
  httpPort: 'BPFCTL_HTTP_PORT',
  httpHost: 'BPFCTL_HTTP_HOST',
  /** Pin of the `instances` map: requests to a function with no live instance get 503 at once. */
  instancesPin: 'BPFCTL_INSTANCES_PIN',
  timeoutMs: 'BPFCTL_GW_TIMEOUT_MS',
} as const;

export interface GatewayEnvOptions {
  policyFile: string;
  pool: string;
  hubPort: number;
  regPort: number;
  cgroup: string;
  gwInst: number;
  httpPort: number;
  httpHost: string;
  instancesPin: string;
  timeoutMs?: number;
}

export function gatewayEnv(o: GatewayEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    [GW_ENV.policy]: o.policyFile,
    [GW_ENV.pool]: o.pool,
    [GW_ENV.hubPort]: String(o.hubPort),
    [GW_ENV.regPort]: String(o.regPort),
    [GW_ENV.cgroup]: o.cgroup,
    [GW_ENV.gwInst]: String(o.gwInst),
    [GW_ENV.httpPort]: String(o.httpPort),
    [GW_ENV.httpHost]: o.httpHost,
    [GW_ENV.instancesPin]: o.instancesPin,
  };
  if (o.timeoutMs !== undefined) env[GW_ENV.timeoutMs] = String(o.timeoutMs);
  return env;
}
