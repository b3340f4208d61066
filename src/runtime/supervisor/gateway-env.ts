/**
 * The environment of a gateway process (supervisor/gateway-main.ts). Functions have theirs in
 * sdk/env.ts; the gateway needs a few more things (HTTP address, its instance id) and is always
 * bpfctl's own code, so the contract stays inside the supervisor. Routes and instances are not in
 * it: the gateway follows them live in the pinned maps under `pinDir`.
 */
export const GW_ENV = {
  pinDir: 'BPFCTL_PIN_DIR',
  pool: 'BPFCTL_POOL',
  hubPort: 'BPFCTL_HUB_PORT',
  gwInst: 'BPFCTL_GW_INST',
  httpPort: 'BPFCTL_HTTP_PORT',
  httpHost: 'BPFCTL_HTTP_HOST',
  timeoutMs: 'BPFCTL_GW_TIMEOUT_MS',
  bodyTimeoutMs: 'BPFCTL_GW_BODY_TIMEOUT_MS',
} as const;

export interface GatewayEnvOptions {
  pinDir: string;
  pool: string;
  hubPort: number;
  gwInst: number;
  httpPort: number;
  httpHost: string;
  timeoutMs?: number;
  bodyTimeoutMs?: number;
}

export function gatewayEnv(o: GatewayEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    [GW_ENV.pinDir]: o.pinDir,
    [GW_ENV.pool]: o.pool,
    [GW_ENV.hubPort]: String(o.hubPort),
    [GW_ENV.gwInst]: String(o.gwInst),
    [GW_ENV.httpPort]: String(o.httpPort),
    [GW_ENV.httpHost]: o.httpHost,
  };
  if (o.timeoutMs !== undefined) env[GW_ENV.timeoutMs] = String(o.timeoutMs);
  if (o.bodyTimeoutMs !== undefined) env[GW_ENV.bodyTimeoutMs] = String(o.bodyTimeoutMs);
  return env;
}
