/**
 * The environment a supervisor gives a function process: the one contract shared by the TS entry
 * (sdk/main.ts) and the C library (src/runtime/c/fn.c). C functions cannot read the policy, so
 * everything they need (their function id, route lengths) is spelt out here too.
 */
import type { PolicyIR } from '../../ir/policy.ts';

export const ENV = {
  /** policy.ts path (TS functions load the IR from it). */
  policy: 'BPFCTL_POLICY',
  /** Function name and numeric id (1..N). */
  fn: 'BPFCTL_FN',
  fnId: 'BPFCTL_FN_ID',
  inst: 'BPFCTL_INST',
  /** Handler module (TS) when not the policy's; C functions are their own executable. */
  handler: 'BPFCTL_HANDLER',
  hubPort: 'BPFCTL_HUB_PORT',
  /** sockops registration: reserved local port, and the cgroup to join first (optional). */
  regPort: 'BPFCTL_REG_PORT',
  cgroup: 'BPFCTL_CGROUP',
  /** Registration by the supervisor: the inherited socket, already in `socks`. */
  sockFd: 'BPFCTL_SOCK_FD',
  /** Pool name or path (Pool.open / bpfctl_pool_open). */
  pool: 'BPFCTL_POOL',
  /** Comma-separated length of every route, by route id (a C function's hop = len on error). */
  routes: 'BPFCTL_ROUTES',
  /** Comma-separated function id at every hop of every route, routes separated by ';' (checks). */
  routeHops: 'BPFCTL_ROUTE_HOPS',
  maxInFlight: 'BPFCTL_MAX_IN_FLIGHT',
  /** A pipe the instance writes "ready <fn> <inst> <pid>\n" to once registered. */
  readyFd: 'BPFCTL_READY_FD',
} as const;

export interface FunctionEnvOptions {
  policyFile: string;
  functionName: string;
  instance: number;
  hubPort: number;
  pool: string;
  regPort?: number;
  cgroup?: string;
  sockFd?: number;
  readyFd?: number;
  handler?: string;
}

/** The environment for one instance (merge it over process.env when spawning). */
export function functionEnv(ir: PolicyIR, o: FunctionEnvOptions): Record<string, string> {
  const fn = ir.functions.find((f) => f.name === o.functionName);
  if (!fn) throw new Error(`policy ${ir.name} has no function '${o.functionName}'`);
  const env: Record<string, string> = {
    [ENV.policy]: o.policyFile,
    [ENV.fn]: fn.name,
    [ENV.fnId]: String(fn.id),
    [ENV.inst]: String(o.instance),
    [ENV.hubPort]: String(o.hubPort),
    [ENV.pool]: o.pool,
    [ENV.routes]: ir.routes.map((r) => r.hops.length).join(','),
    [ENV.routeHops]: ir.routes.map((r) => r.hops.join(',')).join(';'),
  };
  if (fn.maxInFlight !== null) env[ENV.maxInFlight] = String(fn.maxInFlight);
  if (o.regPort !== undefined) env[ENV.regPort] = String(o.regPort);
  if (o.cgroup !== undefined) env[ENV.cgroup] = o.cgroup;
  if (o.sockFd !== undefined) env[ENV.sockFd] = String(o.sockFd);
  if (o.readyFd !== undefined) env[ENV.readyFd] = String(o.readyFd);
  if (o.handler !== undefined) env[ENV.handler] = o.handler;
  return env;
}
