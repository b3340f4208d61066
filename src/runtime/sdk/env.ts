/**
 * The environment a supervisor gives a function process: the one contract shared by the TS entry
 * (sdk/main.ts) and the C library (src/runtime/c/fn.c). Nothing in it describes routes: those are
 * live state, followed in the pinned maps (a copy taken at spawn goes stale at the first change).
 */

export const ENV = {
  /** The loaded policy's pin directory (live routes). */
  pinDir: 'BPFCTL_PIN_DIR',
  /** Function name and numeric id (1..N). */
  fn: 'BPFCTL_FN',
  fnId: 'BPFCTL_FN_ID',
  inst: 'BPFCTL_INST',
  /** Handler module (TS, absolute); C functions are their own executable. */
  handler: 'BPFCTL_HANDLER',
  /** The handler as the user wrote it, when BPFCTL_HANDLER is the bundle built from it (for messages). */
  handlerSource: 'BPFCTL_HANDLER_SOURCE',
  hubPort: 'BPFCTL_HUB_PORT',
  /** Registration by the supervisor: the inherited socket, already in `socks` (C functions). */
  sockFd: 'BPFCTL_SOCK_FD',
  /** Pool name or path (Pool.open / bpfctl_pool_open). */
  pool: 'BPFCTL_POOL',
  maxInFlight: 'BPFCTL_MAX_IN_FLIGHT',
  /** A pipe the instance writes "ready <fn> <inst> <pid>\n" to once registered. */
  readyFd: 'BPFCTL_READY_FD',
} as const;

export interface FunctionEnvOptions {
  functionName: string;
  fnId: number;
  instance: number;
  hubPort: number;
  pool: string;
  pinDir: string;
  maxInFlight?: number | null;
  sockFd?: number;
  readyFd?: number;
  handler?: string;
  handlerSource?: string;
}

/** The environment for one instance (merge it over process.env when spawning). */
export function functionEnv(o: FunctionEnvOptions): Record<string, string> {
  const env: Record<string, string> = {
    [ENV.fn]: o.functionName,
    [ENV.fnId]: String(o.fnId),
    [ENV.inst]: String(o.instance),
    [ENV.hubPort]: String(o.hubPort),
    [ENV.pool]: o.pool,
    [ENV.pinDir]: o.pinDir,
  };
  if (o.maxInFlight !== undefined && o.maxInFlight !== null) env[ENV.maxInFlight] = String(o.maxInFlight);
  if (o.sockFd !== undefined) env[ENV.sockFd] = String(o.sockFd);
  if (o.readyFd !== undefined) env[ENV.readyFd] = String(o.readyFd);
  if (o.handler !== undefined) env[ENV.handler] = o.handler;
  if (o.handlerSource !== undefined) env[ENV.handlerSource] = o.handlerSource;
  return env;
}
