/**
 * startChain: a policy's whole function chain running on this machine, from policy.ts to URLs.
 *
 * Process layout: this process (the supervisor) loads the policy, owns the pool file, the hub
 * and the dead-letter socket, and writes the registration maps; it carries no request traffic.
 * Every gateway instance and every function instance is a process of its own, in the policy
 * cgroup, registered through sockops from a port the supervisor reserved for it (slot.ts,
 * launch.ts). The registry keeps `instances` equal to the set of registered, living processes,
 * so the sk_msg program never picks a dead one; slots replace processes that die.
 */
import { resolve } from 'node:path';
import { type ChainMaps, openChainMaps } from '../../deploy/chain-maps.ts';
import { pinRoot, policyCgroup, policyDir } from '../../deploy/paths.ts';
import { loadPolicy, unloadPolicy } from '../../deploy/policy.ts';
import { BpfctlError } from '../../errors.ts';
import { DEAD_LETTER_KEY_BYTES } from '../../ir/chain-maps.ts';
import { type FunctionIR, loadPolicyFile, type PolicyIR, resolveHandler } from '../../ir/policy.ts';
import { buildCFunction } from '../c/build.ts';
import { type DeadLetter, type Hub, startDeadLetter, startHub } from '../hub.ts';
import { Pool, type PoolStats } from '../pool/index.ts';
import { functionEnv } from '../sdk/env.ts';
import { controlPath, serveControl } from './control.ts';
import { ChainStartError, ScaleError } from './errors.ts';
import { gatewayEnv } from './gateway-env.ts';
import { launchCFunction, launchGateway, launchTsFunction } from './launch.ts';
import { lockPolicy, type RunLock } from './lock.ts';
import { PortReserver } from './ports.ts';
import { Registry } from './registry.ts';
import { scaler } from './scale.ts';
import { createPool, freePort } from './setup.ts';
import { Slot, type SlotInfo } from './slot.ts';

export { ChainStartError, ScaleError };

export interface ChainOptions {
  /** HTTP port of the gateway (0, default: any free one). */
  port?: number;
  /** HTTP address (default 127.0.0.1). */
  host?: string;
  /** Pin root (default: BPFCTL_BPFFS or /sys/fs/bpf/bpfctl). */
  root?: string;
  /** Pool file name (default: the policy's name). */
  poolName?: string;
  /** The gateway's reply deadline per request (default: the gateway's, 5 s). */
  timeoutMs?: number;
  /** How long an instance may take to register before it is killed (default 30 s). */
  readyTimeoutMs?: number;
  /** SIGTERM to SIGKILL when stopping (default 3 s). */
  graceMs?: number;
  /** Serve `<run dir>/<policy>.sock` for `bpfctl scale` (default true). */
  control?: boolean;
  progress?: (text: string) => void;
  /** Instances' log lines (default: stderr). */
  log?: (line: string) => void;
  /**
   * Ctrl-C: aborts a start under way (everything made so far is removed); on a running chain it
   * stops restarts at once (the instances got the signal too), and the caller then calls stop().
   */
  signal?: AbortSignal;
}

export interface ChainRoute {
  name: string;
  url: string;
  functions: string[];
}

export interface Chain {
  readonly policy: PolicyIR;
  readonly policyFile: string;
  /** Gateway base URL, e.g. http://127.0.0.1:8080/ */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly routes: ChainRoute[];
  readonly hubPort: number;
  readonly poolName: string;
  readonly pinDir: string;
  readonly cgroup: string;
  /** Every gateway and function slot, with its current process. */
  instances(): SlotInfo[];
  /**
   * Runs `n` instances of a function (0..32): new ones are in `instances` once registered; removed
   * ones leave `instances` first and are stopped after in-flight requests had time to finish.
   * @throws ScaleError (unknown function, bad count), ChainStartError (a new instance died at start)
   */
  scale(fn: string, n: number): Promise<SlotInfo[]>;
  poolStats(): PoolStats;
  deadLetterStats(): ReturnType<DeadLetter['stats']>;
  /** Stops every process and removes pins, programs, pool file, cgroup and lock. Idempotent. */
  stop(): Promise<void>;
  /** Resolves once stop() has finished. */
  readonly stopped: Promise<void>;
}

/** Default HTTP address; also what URLs show for a wildcard bind. */
const LOOPBACK = '127.0.0.1';

/**
 * Loads the policy, creates the pool, starts hub, gateway(s) and every function instance, and
 * resolves once every instance is registered.
 * @throws PolicyLoadError/PolicyError (bad policy file), CompileError/VerifierError/LoaderError/
 * CgroupError (loading), PoolError, CFunctionBuildError, AlreadyRunningError (E_RUNNING),
 * ChainStartError (an instance died before registering, the pool name is taken, the start was
 * aborted). Whatever was set up before the failure is removed again.
 */
export async function startChain(policyFile: string, opts: ChainOptions = {}): Promise<Chain> {
  const progress = opts.progress ?? (() => {});
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const file = resolve(policyFile);
  const root = opts.root ?? pinRoot();
  const host = opts.host || LOOPBACK;
  const graceMs = opts.graceMs ?? 3000;
  const readyTimeout = opts.readyTimeoutMs ?? 30_000;

  progress(`reading ${file}`);
  const ir = await loadPolicyFile(file);
  const poolName = opts.poolName ?? ir.name;
  const cgroup = policyCgroup(ir.name);
  const slots: Slot[] = [];
  let lock: RunLock | null = null;
  let loaded = false;
  let pool: Pool | null = null;
  let maps: ChainMaps | null = null;
  let registry: Registry | null = null;
  let hub: Hub | null = null;
  let deadLetter: DeadLetter | null = null;
  let control: { close(): Promise<void> } | null = null;
  let stopping: Promise<void> | null = null;

  const teardown = async (): Promise<void> => {
    for (const s of slots) s.halt();
    await control?.close();
    // Gateways first: no new requests enter while functions go away.
    await Promise.all(slots.filter((s) => s.kind === 'gateway').map((s) => s.stop(graceMs)));
    await Promise.all(slots.filter((s) => s.kind === 'function').map((s) => s.stop(graceMs)));
    deadLetter?.close();
    await hub?.close();
    registry?.close();
    maps?.close();
    const errors: unknown[] = [];
    const attempt = (what: () => void) => {
      try {
        what();
      } catch (err) {
        errors.push(err);
      }
    };
    if (loaded) {
      progress(`removing pins under ${policyDir(ir.name, root)} and cgroup ${cgroup}`);
      attempt(() => unloadPolicy(ir.name, { root }));
    }
    if (pool) {
      const p = pool;
      p.close();
      attempt(() => Pool.remove(poolName));
    }
    lock?.release();
    if (errors.length) throw errors[0];
  };

  const aborted = () => {
    if (opts.signal?.aborted) throw new ChainStartError(`start of ${ir.name} aborted`);
  };

  try {
    lock = lockPolicy(ir.name);
    if (lock.stale) progress(`a previous supervisor of ${ir.name} died; cleaning up after it`);

    // C functions are built before anything is loaded: a compile error leaves nothing behind.
    const executables = new Map<string, string>();
    for (const f of ir.functions.filter((fn) => fn.language === 'c')) {
      progress(`building C function ${f.name}`);
      executables.set(f.name, await buildCFunction(resolveHandler(file, f)));
    }
    aborted();

    // loadPolicy removes what it made itself when it fails.
    loadPolicy(ir, { root, policyFile: file, progress });
    loaded = true;
    aborted();

    progress(`creating pool ${poolName} (${ir.pool.bufferCount} x ${ir.pool.bufferSize} B)`);
    pool = createPool(poolName, ir, lock.stale);
    const thePool = pool;
    maps = openChainMaps(ir.name, root);
    const theMaps = maps;
    const reg = new Registry(theMaps, thePool, new PortReserver(), log);
    registry = reg;

    hub = await startHub({ host: LOOPBACK });
    const hubPort = hub.port;
    // The kernel checks buffers against the pool as it was really laid out (huge pages round up).
    theMaps.config.set(0, { pool_size: thePool.size, data_off: thePool.dataOffset, buf_size: thePool.bufferSize, buf_count: thePool.bufferCount, hub_port: hubPort, pad: 0 });
    deadLetter = startDeadLetter({
      policy: ir,
      hubPort,
      register: (fd) => theMaps.socks.updateFd(DEAD_LETTER_KEY_BYTES, fd),
      log: (m) => log(`[dead-letter] ${m}`),
    });
    await deadLetter.ready;
    aborted();

    const fnSlot = (f: FunctionIR, inst: number): Slot => {
      const exe = executables.get(f.name);
      const launch = (regPort: number) => {
        const env = functionEnv(ir, { policyFile: file, functionName: f.name, instance: inst, hubPort, pool: thePool.path, regPort });
        return exe ? launchCFunction(cgroup, exe, env) : launchTsFunction(cgroup, env);
      };
      return new Slot('function', f.name, f.id, inst, launch, reg, readyTimeout);
    };
    for (const f of ir.functions) for (let inst = 0; inst < f.instances; inst++) slots.push(fnSlot(f, inst));

    // Chosen here, not by the first gateway's listen(0): cluster workers share a listening socket
    // only when they ask for the same address and port, and a gateway restarted after the last one
    // died must come back on the URL that was printed.
    const httpPort = opts.port || (await freePort(host));
    const instancesPin = `${policyDir(ir.name, root)}/maps/instances`;
    for (let gw = 0; gw < ir.gateway.instances; gw++) {
      const env = (regPort: number) =>
        gatewayEnv({ policyFile: file, pool: thePool.path, hubPort, regPort, cgroup, gwInst: gw, httpPort, httpHost: host, instancesPin, timeoutMs: opts.timeoutMs });
      slots.push(new Slot('gateway', 'gateway', 0, gw, (regPort) => launchGateway(env(regPort)), reg, readyTimeout));
    }

    const total = slots.length;
    const nGw = ir.gateway.instances;
    progress(`starting ${total - nGw} function instance${total - nGw === 1 ? '' : 's'} and ${nGw} gateway${nGw === 1 ? '' : 's'}`);
    const abortP = new Promise<never>((_, reject) => {
      const onAbort = () => {
        // A signal that stops the supervisor reached the instances as well: they are ending, not crashing.
        for (const s of slots) s.halt();
        reject(new ChainStartError(`start of ${ir.name} aborted`));
      };
      if (opts.signal?.aborted) onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
    abortP.catch(() => {});
    let readyCount = 0;
    const counted = (s: Slot) =>
      s.ready.then(() => {
        readyCount++;
        if (readyCount === total || readyCount % 4 === 0) progress(`${readyCount}/${total} instances registered`);
      });
    for (const s of slots) void s.start();
    await Promise.race([Promise.all(slots.map(counted)), abortP]);

    const scale = scaler({ ir, slots, newSlot: fnSlot, registry: reg, graceMs, stopping: () => stopping !== null, log });

    if (opts.control ?? true) {
      control = await serveControl(controlPath(ir.name), async (req) => {
        if (req.op === 'scale') return scale(req.function, req.instances);
        if (req.op === 'instances') return slots.map((s) => s.snapshot());
        throw new BpfctlError('E_CONTROL', `unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
      });
    }

    const shownHost = host === '0.0.0.0' || host === '::' ? LOOPBACK : host;
    const base = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${httpPort}`;
    let resolveStopped: () => void = () => {};
    const stopped = new Promise<void>((r) => {
      resolveStopped = r;
    });
    return {
      policy: ir,
      policyFile: file,
      url: `${base}/`,
      host,
      port: httpPort,
      routes: ir.routes.map((r) => ({ name: r.name, url: `${base}${r.name.startsWith('/') ? r.name : `/${r.name}`}`, functions: r.functions })),
      hubPort,
      poolName,
      pinDir: policyDir(ir.name, root),
      cgroup,
      instances: () => slots.map((s) => s.snapshot()),
      scale,
      poolStats: () => thePool.stats(),
      deadLetterStats: () => deadLetter!.stats(),
      stopped,
      stop: () => {
        stopping ??= teardown().finally(resolveStopped);
        return stopping;
      },
    };
  } catch (err) {
    try {
      await teardown();
    } catch (cleanupErr) {
      log(`cleanup after a failed start: ${(cleanupErr as Error).message}`);
    }
    if (err instanceof Error && !(err instanceof BpfctlError)) {
      throw new ChainStartError(`cannot start ${ir.name}: ${err.message.split('\n')[0]!.replace(/:$/, '')}`, { cause: err });
    }
    throw err;
  }
}
