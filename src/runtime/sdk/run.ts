/**
 * runFunction: one instance of one function of a policy, from handler module to registered socket.
 * A process usually runs exactly one (src/runtime/sdk/main.ts is the entry the supervisor spawns);
 * tests may run several in one process with the 'callback' registration.
 */
import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import type { PolicyIR } from '../../ir/policy.ts';
import { importUserModule, loadPolicyFile, resolveHandler } from '../../load/index.ts';
import { Pool } from '../pool/index.ts';
import { Dispatcher, type DispatcherStats } from './dispatcher.ts';
import { Link, type RegisterMode } from './link.ts';
import type { RuntimePool } from './pool-api.ts';
import { LiveRouteTable, type RouteView, staticRouteTable } from '../route-table.ts';
import { FunctionError, type Handler } from './types.ts';

/** Handlers running at once per instance when the policy does not say (`maxInFlight`). */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** Descriptors an instance holds waiting beyond maxInFlight before it sheds with 503. */
export const DEFAULT_MAX_QUEUE = 4096;

export interface RunFunctionOptions {
  /**
   * The policy (IR), or the path of its policy.ts: where the function's id, handler and routes
   * come from unless given below. The supervisor gives them explicitly instead (`fnId`,
   * `handlerPath`, `pinDir`): a policy file edited after the chain started says nothing about it.
   */
  policy?: PolicyIR | string;
  functionName: string;
  /** The function's id in the running chain (default: the policy's). */
  fnId?: number;
  instance: number;
  /** Handler module (default export). Default: the policy's handler path, resolved against the policy file. */
  handlerPath?: string;
  /** The file the user wrote, when `handlerPath` is the bundle built from it (named in errors). */
  handlerSource?: string;
  /** A handler object instead of a module (in-process use). */
  handler?: Handler;
  hubPort: number;
  hubHost?: string;
  /** The loaded policy's pin directory: routes are followed live through its mapped `routes` map. */
  pinDir?: string;
  /** Routes to follow instead (default: pinDir's live table, else the policy's routes, fixed). */
  routes?: RouteView;
  /** Registration by the supervisor: an inherited socket it already inserted into `socks`. */
  sockFd?: number;
  /** Registration by the caller: inserts the socket's fd into `socks` (processes holding the maps). */
  register?: (fd: number) => void | Promise<void>;
  /** Force a registration mode (default: sockFd -> fd, register -> callback, IPC channel -> ipc). */
  mode?: RegisterMode;
  /** The pool: an open Pool, or its name/path for Pool.open (default: the policy's name). */
  pool?: RuntimePool | string;
  maxInFlight?: number;
  maxQueue?: number;
  /** Diagnostics (default: stderr, prefixed with the instance). */
  log?: (msg: string) => void;
  /** Called when the socket can never be registered again (fd mode without IPC). Default: exit(75). */
  onFatal?: (err: Error) => void;
  /** Written "ready <fn> <inst> <pid>\n" once registered (a pipe from the supervisor). */
  readyFd?: number;
}

export interface FunctionInstance {
  readonly fnId: number;
  readonly functionName: string;
  readonly instance: number;
  /** Resolves when the socket is registered for the first time. */
  readonly ready: Promise<void>;
  stats(): DispatcherStats & { link: Link['counters']; up: boolean };
  close(): void;
}

/** EX_TEMPFAIL: the supervisor should restart the instance with a fresh socket. */
export const EXIT_RESTART = 75;

/**
 * Starts an instance: loads the handler, opens the pool, connects and registers. Returns once the
 * connection attempt is under way; `ready` says when descriptors can flow.
 * @throws FunctionError (E_FUNCTION) for an unknown function or handler module without a default export.
 * @throws PoolError when the pool cannot be opened; PolicyLoadError/PolicyError for a bad policy path.
 */
export async function runFunction(o: RunFunctionOptions): Promise<FunctionInstance> {
  const ir = typeof o.policy === 'string' ? await loadPolicyFile(o.policy) : (o.policy ?? null);
  const found = ir?.functions.find((f) => f.name === o.functionName);
  if (ir && !found && o.fnId === undefined) {
    throw new FunctionError(404, `policy ${ir.name} has no function '${o.functionName}' (functions: ${ir.functions.map((f) => f.name).join(', ')})`);
  }
  if (!found && (o.fnId === undefined || !o.handlerPath && !o.handler)) {
    throw new FunctionError(500, `function '${o.functionName}': without a policy, fnId and a handler are needed`);
  }
  const fn = { id: o.fnId ?? found!.id, name: o.functionName, maxInFlight: found?.maxInFlight ?? null };
  const tag = `[${fn.name}#${o.instance} pid ${process.pid}]`;
  const log = o.log ?? ((m: string) => process.stderr.write(`${tag} ${m}\n`));

  let handler = o.handler;
  if (!handler) {
    const path = o.handlerPath ?? (typeof o.policy === 'string' && found ? resolveHandler(o.policy, found) : undefined);
    if (!path) throw new FunctionError(500, `function '${fn.name}': no handler (pass handlerPath when the policy is given as IR)`);
    handler = await loadHandler(path, o.handlerSource ?? path);
  }

  const ownPool = o.pool === undefined || typeof o.pool === 'string';
  if (ownPool && o.pool === undefined && !ir) throw new FunctionError(500, `function '${fn.name}': no pool given`);
  const pool: RuntimePool = ownPool ? Pool.open((o.pool as string | undefined) ?? ir!.name) : (o.pool as RuntimePool);
  const liveRoutes = !o.routes && o.pinDir ? LiveRouteTable.open(o.pinDir) : null;
  const routes = o.routes ?? liveRoutes ?? (ir ? staticRouteTable(ir) : null);
  if (!routes) throw new FunctionError(500, `function '${fn.name}': no routes (pass pinDir or a policy)`);

  const mode: RegisterMode | undefined = o.mode ?? (o.sockFd !== undefined ? 'fd' : o.register ? 'callback' : process.send ? 'ipc' : undefined);
  if (!mode) throw new FunctionError(500, `function '${fn.name}': no way to register its socket (pass sockFd or register, or run it under bpfctl run)`);

  let link: Link | null = null;
  const dispatcher = new Dispatcher({
    pool,
    bufSize: pool.bufferSize,
    handler,
    fnId: fn.id,
    fnName: fn.name,
    instance: o.instance,
    routes,
    owner: process.pid,
    maxInFlight: o.maxInFlight ?? fn.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    maxQueue: o.maxQueue ?? DEFAULT_MAX_QUEUE,
    // A batch written to the kernel at once (the usual case: sk_msg hands it to the next hop
    // inside the send) leaves its buffer free for the next batch of the same size.
    send: (bytes) => (link?.write(bytes) ? link.drained : true),
    log,
  });

  let firstUp: () => void = () => {};
  const ready = new Promise<void>((r) => {
    firstUp = r;
  });
  let announced = false;
  dispatcher.hold(true);
  link = new Link({
    mode,
    hubPort: o.hubPort,
    hubHost: o.hubHost,
    sockFd: o.sockFd,
    register: o.register,
    identity: { fn: fn.name, fnId: fn.id, inst: o.instance },
    onData: (buf, len) => {
      dispatcher.push(buf, len);
      dispatcher.flush();
    },
    onUp: () => {
      dispatcher.resetFraming();
      dispatcher.hold(false);
      if (announced) return;
      announced = true;
      if (o.readyFd !== undefined) writeSync(o.readyFd, `ready ${fn.name} ${o.instance} ${process.pid}\n`);
      process.send?.({ type: 'bpfctl:ready', fn: fn.name, fnId: fn.id, inst: o.instance, pid: process.pid, mode });
      firstUp();
    },
    onDown: (err) => {
      // A half-read descriptor died with the connection; what finishes meanwhile waits for the next.
      dispatcher.resetFraming();
      dispatcher.hold(true);
      process.send?.({ type: 'bpfctl:lost', fn: fn.name, inst: o.instance, pid: process.pid, error: err?.message ?? 'closed' });
    },
    onFatal:
      o.onFatal ??
      ((err) => {
        log(`${err.message}; exiting ${EXIT_RESTART} so the supervisor restarts this instance`);
        process.exit(EXIT_RESTART);
      }),
    log,
  });
  link.start();

  return {
    fnId: fn.id,
    functionName: fn.name,
    instance: o.instance,
    ready,
    stats: () => ({ ...dispatcher.stats(), link: { ...link.counters }, up: link.isUp }),
    close: () => {
      dispatcher.close();
      link.close();
      liveRoutes?.close();
      if (ownPool) (pool as Pool).close();
    },
  };
}

/**
 * Imports a handler module (a bundle the supervisor built, or any .js/.ts file: TypeScript is
 * bundled first); its default export must be a function. `source` is the file the user wrote,
 * named in errors instead of the bundle in the cache. @throws FunctionError
 */
export async function loadHandler(path: string, source: string = path): Promise<Handler> {
  const abs = resolve(path);
  const shown = resolve(source);
  let mod: { default?: unknown };
  try {
    mod = (await importUserModule(abs)) as { default?: unknown };
  } catch (err) {
    throw new FunctionError(500, `cannot import handler ${shown}: ${(err as Error).message}`);
  }
  // A CommonJS module's exports arrive wrapped in `default`: accept default.default as well.
  let h = mod.default;
  if (h && typeof h === 'object' && typeof (h as { default?: unknown }).default === 'function') h = (h as { default: unknown }).default;
  if (typeof h !== 'function') throw new FunctionError(500, `handler ${shown} must default-export a function (req) => response`);
  return h as Handler;
}
