/**
 * startChain: a policy's whole function chain running on this machine, from policy.ts to URLs.
 *
 * Process layout: this process (the supervisor) loads the policy, owns the pool file, the hub
 * and the dead-letter socket, and writes the registration maps; it carries no request traffic.
 * Every gateway instance and every function instance is a process of its own, in the policy
 * cgroup, whose chain socket only the supervisor inserts into `socks` (slot.ts, registry.ts). The
 * registry keeps `instances` equal to the set of registered, living processes, so the sk_msg
 * program never picks a dead one; slots replace processes that die.
 *
 * Live state is the pinned maps and the manifest, never a copy in a process: route changes are
 * written there (src/deploy/routes.ts) and gateways and functions follow them; scaling and
 * `apply` go through the control socket, one change at a time, and are recorded in the manifest
 * so `status`, `diff` and `graph` show what runs.
 */
import { resolve } from 'node:path';
import { ensureCgroup } from '../../deploy/cgroup.ts';
import { hasChain } from '../../deploy/chain.ts';
import { type ChainMaps, openChainMaps } from '../../deploy/chain-maps.ts';
import { readManifest, writeManifest } from '../../deploy/manifest.ts';
import { pinRoot, policyCgroup, policyDir } from '../../deploy/paths.ts';
import { loadPolicy, unloadPolicy } from '../../deploy/policy.ts';
import { applyRouteChanges, DEFAULT_DRAIN_MS, type RouteChange } from '../../deploy/routes.ts';
import { ifindexOf } from '../../deploy/xdp.ts';
import { BpfctlError } from '../../errors.ts';
import { DEAD_LETTER_KEY_BYTES, sockKeyBytes } from '../../ir/chain-maps.ts';
import type { FunctionIR, PolicyIR } from '../../ir/policy.ts';
import { loadPolicyFile } from '../../load/index.ts';
import { buildFunctionCode } from '../function-code.ts';
import { buildNativeGateway } from '../gateway-native/build.ts';
import { nativeGatewayLauncher } from '../gateway-native/launch.ts';
import { type DeadLetter, type Hub, startDeadLetter, startHub } from '../hub.ts';
import type { PacketRuntimeOptions } from '../packet/runtime.ts';
import { type PacketRuntime, planeBytes, startPacketRuntime } from '../packet/runtime.ts';
import { Pool, type PoolStats } from '../pool/index.ts';
import { LiveRouteTable } from '../route-table.ts';
import { functionEnv } from '../sdk/env.ts';
import { type ApplyResult, applyPacketOnly, applyToChain, type FunctionCode } from './apply.ts';
import { controlPath, serveControl } from './control.ts';
import { ChainStartError, ScaleError } from './errors.ts';
import { gatewayEnv } from './gateway-env.ts';
import { launchCFunction, launchGateway, launchTsFunction } from './launch.ts';
import { lockPolicy, type RunLock } from './lock.ts';
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
  /** The gateway's deadline for receiving a request's headers and body (default 10 s). */
  bodyTimeoutMs?: number;
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
  /** `bpfctl unload` asked the running chain to stop (default: stop()). `bpfctl run` ends its run. */
  onStopRequest?: () => void;
  /**
   * `bpfctl apply --restart` of a change that cannot be made live (pool geometry, gateway count):
   * the owner of the chain stops it and starts `file` in its place. Without it, such an apply is
   * refused.
   */
  onRestartRequest?: (file: string) => void;
  /**
   * The part of the policy this machine runs (`bpfctl agent`, docs/multi-node.md): applied to the
   * policy file's IR at start and at every apply. Default: all of it.
   */
  localShare?: (ir: PolicyIR) => PolicyIR;
  /** First gateway instance id (default 0): nodes of one policy number their gateways apart. */
  gatewayBase?: number;
  /** Network namespace of the policy's interfaces (XDP, tc, packet chains): a name under /run/netns or a path. */
  netns?: string;
}

export interface ChainRoute {
  name: string;
  url: string;
  functions: string[];
}

export interface Chain {
  readonly policy: PolicyIR;
  readonly policyFile: string;
  /** The packet chains' processes and plane (docs/packet-chains.md); null without packet chains. */
  readonly packet: PacketRuntime | null;
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
  /** Route changes, as one generation (the same as `bpfctl route set|del` on a running chain). */
  changeRoutes(changes: RouteChange[]): Promise<unknown>;
  /** Converges to a policy file (`bpfctl apply`). */
  apply(file: string): Promise<ApplyResult>;
  poolStats(): PoolStats;
  deadLetterStats(): ReturnType<DeadLetter['stats']>;
  /**
   * Puts a socket of this process (the agent's node-link) into `socks` under `fn << 16 | inst`,
   * connected to the hub from `localPort` (which the hub then keeps). For root's own code only.
   */
  registerSocket(fnId: number, inst: number, fd: number, localPort?: number): void;
  /**
   * Other nodes' instance ids (sockets registered with registerSocket) listed after this node's
   * live instances of a function, so the kernel sends them a share of its requests; [] to stop.
   */
  setRemoteInstances(fnId: number, ids: number[]): void;
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
  const ir = opts.localShare ? opts.localShare(await loadPolicyFile(file)) : await loadPolicyFile(file);
  const gwBase = opts.gatewayBase ?? 0;
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
  let routeTable: LiveRouteTable | null = null;
  let packet: PacketRuntime | null = null;
  let stopping: Promise<void> | null = null;

  const teardown = async (): Promise<void> => {
    for (const s of slots) s.halt();
    await control?.close();
    // Before the classifier goes: pktio's sockets are in its xskmaps.
    await packet?.stop();
    // Gateways first: no new requests enter while functions go away.
    await Promise.all(slots.filter((s) => s.kind === 'gateway').map((s) => s.stop(graceMs)));
    await Promise.all(slots.filter((s) => s.kind === 'function').map((s) => s.stop(graceMs)));
    deadLetter?.close();
    await hub?.close();
    registry?.close();
    maps?.close();
    routeTable?.close();
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

    // Functions are built before anything is loaded: a compile error leaves nothing behind.
    const code = new Map<string, FunctionCode>();
    for (const f of ir.functions) {
      progress(`building ${f.language === 'c' ? 'C' : 'TypeScript'} function ${f.name}`);
      code.set(f.name, await buildFunctionCode(file, f));
    }
    if (ir.gateway.engine === 'native') progress('building the native gateway');
    const nativeGateway = ir.gateway.engine === 'native' ? await buildNativeGateway() : null;
    aborted();

    // loadPolicy removes what it made itself when it fails.
    loadPolicy(ir, { root, policyFile: file, progress, ...(opts.netns ? { netns: opts.netns } : {}) });
    loaded = true;
    aborted();

    progress(`creating pool ${poolName} (${ir.pool.bufferCount} x ${ir.pool.bufferSize} B)`);
    pool = createPool(poolName, ir, lock.stale, planeBytes(ir));
    const thePool = pool;
    const pinDir = policyDir(ir.name, root);
    if (!hasChain(ir)) {
      // Packet chains (and XDP/tc sections) only: no gateway, hub or request functions to run.
      // Their processes still live in the policy cgroup (unloadPolicy removes it).
      if (planeBytes(ir) > 0) ensureCgroup(cgroup);
      if (planeBytes(ir) > 0) packet = await startPacketRuntime(packetOptions(ir, thePool, pinDir, cgroup, opts, readyTimeout, graceMs, log, progress));
      aborted();
      return await packetOnly(ir, file, poolName, pinDir, cgroup, packet, teardown, opts, progress);
    }
    maps = openChainMaps(ir.name, root);
    const theMaps = maps;
    const reg = new Registry(theMaps, thePool, log);
    registry = reg;
    routeTable = LiveRouteTable.open(pinDir);
    const table = routeTable;

    // Every socket the supervisor inserts is reported to the hub, which resets the rest.
    hub = await startHub({ host: LOOPBACK, registerWithinMs: 5000 });
    const theHub = hub;
    const hubPort = hub.port;
    reg.onRegistered = (port) => theHub.registered(port);
    // The kernel checks buffers against the pool as it was really laid out (huge pages round up).
    const cfg = theMaps.config.get(0);
    theMaps.config.set(0, {
      pool_size: thePool.size,
      data_off: thePool.dataOffset,
      buf_size: thePool.bufferSize,
      buf_count: thePool.bufferCount,
      hub_port: hubPort,
      routes_gen: cfg?.routes_gen ?? 1,
    });
    deadLetter = startDeadLetter({
      routeLen: (slot) => table.bySlot(slot)?.len,
      hubPort,
      register: (fd, localPort) => {
        theMaps.socks.updateFd(DEAD_LETTER_KEY_BYTES, fd);
        if (localPort) theHub.registered(localPort);
      },
      log: (m) => log(`[dead-letter] ${m}`),
    });
    await deadLetter.ready;
    aborted();

    if (planeBytes(ir) > 0) {
      packet = await startPacketRuntime(packetOptions(ir, thePool, pinDir, cgroup, opts, readyTimeout, graceMs, log, progress));
      aborted();
    }
    const thePacket = packet;

    // Instance ids are never reused while a chain runs: a replacement (apply) gets a new one, so
    // the old instance keeps its socket, and its sends their redirects, while it drains.
    const nextInst = new Map<number, number>();
    const takeInst = (fnId: number): number => {
      const n = nextInst.get(fnId) ?? 0;
      nextInst.set(fnId, n + 1);
      return n;
    };
    const fnSlot = (f: FunctionIR, inst: number): Slot => {
      const c = code.get(f.name)!;
      const launch = (slot: Slot) => {
        const env = functionEnv({
          functionName: f.name,
          fnId: f.id,
          instance: inst,
          hubPort,
          pool: thePool.path,
          pinDir,
          maxInFlight: c.maxInFlight,
          handler: c.exe ? undefined : c.handler,
          handlerSource: c.exe ? undefined : c.source,
        });
        return c.exe ? launchCFunction(cgroup, c.exe, env, hubPort, (fd, port) => reg.register(slot, fd, port)) : launchTsFunction(cgroup, env);
      };
      return new Slot('function', f.name, f.id, inst, launch, reg, readyTimeout);
    };
    for (const f of ir.functions) for (let i = 0; i < f.instances; i++) slots.push(fnSlot(f, takeInst(f.id)));

    // Chosen here, not by the first gateway's listen(0): cluster workers share a listening socket
    // only when they ask for the same address and port, and a gateway restarted after the last one
    // died must come back on the URL that was printed.
    const httpPort = opts.port || (await freePort(host));
    for (let gw = 0; gw < ir.gateway.instances; gw++) {
      const env = gatewayEnv({ pinDir, pool: thePool.path, hubPort, gwInst: gwBase + gw, httpPort, httpHost: host, timeoutMs: opts.timeoutMs, bodyTimeoutMs: opts.bodyTimeoutMs });
      const launch = nativeGateway
        ? (slot: Slot) =>
            nativeGatewayLauncher({ executable: nativeGateway, cgroup, env, pinDir, hubPort, poolBuffers: thePool.bufferCount, processes: ir.gateway.instances, register: (fd, port) => reg.register(slot, fd, port) })()
        : () => launchGateway(cgroup, env);
      slots.push(new Slot('gateway', 'gateway', 0, gwBase + gw, launch, reg, readyTimeout));
    }
    // A process that dies takes the requests it held with it: the gateways fail them now (503)
    // instead of letting them wait for the reply deadline.
    reg.onDeath = (d) => {
      for (const s of slots) if (s.kind === 'gateway') s.send({ type: 'bpfctl:instance-down', ...d });
    };

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

    // Every change to the running chain goes through one queue: they read and write the same
    // maps and manifest.
    let queue: Promise<unknown> = Promise.resolve();
    const serial = <T>(what: () => Promise<T>): Promise<T> => {
      const run = queue.then(what);
      queue = run.catch(() => {});
      return run;
    };
    const drainMs = Math.max(DEFAULT_DRAIN_MS, 2 * (opts.timeoutMs ?? 5000));
    const scaleNow = scaler({ policy: ir.name, functions: () => readManifest(pinDir).ir.functions, slots, newSlot: (f) => fnSlot(f, takeInst(f.id)), registry: reg, graceMs, stopping: () => stopping !== null, log });
    const recordInstances = (fnName: string, n: number) => {
      const m = readManifest(pinDir);
      writeManifest(pinDir, { ...m, ir: { ...m.ir, functions: m.ir.functions.map((f) => (f.name === fnName ? { ...f, instances: n } : f)) } });
    };
    const scale = (fnName: string, n: number) =>
      serial(async () => {
        const res = await scaleNow(fnName, n);
        recordInstances(fnName, n);
        return res;
      });
    const changeRoutes = (changes: RouteChange[]) =>
      serial(async () => {
        if (stopping) throw new ScaleError(`${ir.name} is stopping`);
        return applyRouteChanges(ir.name, changes, { root, drainMs, maps: theMaps });
      });
    const apply = (next: string) =>
      serial(() =>
        applyToChain({
          file: resolve(next),
          root,
          pinDir,
          slots,
          code,
          newSlot: (f) => fnSlot(f, takeInst(f.id)),
          registry: reg,
          scale: scaleNow,
          drainMs,
          graceMs,
          progress,
          log,
          localShare: opts.localShare,
          ...(thePacket ? { packetScale: (fn: string, n: number) => thePacket.scale(fn, n) } : {}),
        }),
      );

    let resolveStopped: () => void = () => {};
    const stopped = new Promise<void>((r) => {
      resolveStopped = r;
    });
    const stopChain = (): Promise<void> => {
      stopping ??= teardown().finally(resolveStopped);
      return stopping;
    };
    if (opts.control ?? true) {
      control = await serveControl(controlPath(ir.name), async (req) => {
        if (req.op === 'scale') {
          if (thePacket && ir.packet?.functions.some((f) => f.name === req.function)) {
            return serial(async () => {
              const res = await thePacket.scale(req.function, req.instances);
              recordPacketInstances(pinDir, req.function, req.instances);
              return res;
            });
          }
          return scale(req.function, req.instances);
        }
        if (req.op === 'instances') return [...slots.map((s) => s.snapshot()), ...(thePacket?.instances() ?? [])];
        if (req.op === 'packet') return thePacket ? jsonSafe(thePacket.snapshot()) : null;
        if (req.op === 'routes') return changeRoutes(req.changes);
        if (req.op === 'apply') return applyOrRestart(apply, req, opts);
        if (req.op === 'stop') {
          // Answered first: the control socket closes as the chain stops.
          setImmediate(() => (opts.onStopRequest ? opts.onStopRequest() : void stopChain()));
          return { stopping: true, pid: process.pid };
        }
        throw new BpfctlError('E_CONTROL', `unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
      });
    }

    const shownHost = host === '0.0.0.0' || host === '::' ? LOOPBACK : host;
    const base = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${httpPort}`;
    return {
      policy: ir,
      policyFile: file,
      packet: thePacket,
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
      changeRoutes,
      apply,
      poolStats: () => thePool.stats(),
      deadLetterStats: () => deadLetter!.stats(),
      registerSocket: (fnId, inst, fd, localPort) => {
        if (stopping) throw new ScaleError(`${ir.name} is stopping`);
        theMaps.socks.updateFd(sockKeyBytes(fnId, inst), fd);
        if (localPort) theHub.registered(localPort);
      },
      setRemoteInstances: (fnId, ids) => {
        if (!stopping) reg.setExtra(fnId, ids);
      },
      stopped,
      stop: stopChain,
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

/** Counters are bigints; the control socket speaks JSON. */
function jsonSafe(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? Number(x) : x)));
}

function packetOptions(
  ir: PolicyIR,
  pool: Pool,
  pinDir: string,
  cgroup: string,
  opts: ChainOptions,
  readyTimeoutMs: number,
  graceMs: number,
  log: (l: string) => void,
  progress: (t: string) => void,
): PacketRuntimeOptions {
  return { ir, pool, pinDir, cgroup, ...(opts.netns ? { netns: opts.netns } : {}), ifindexOf: (ifname) => ifindexOf(ifname, opts.netns), readyTimeoutMs, graceMs, log, progress };
}

/**
 * The Chain of a policy without request chains: its packet chains, XDP and tc sections run; the
 * control socket scales packet functions, reports the packet plane and stops.
 */
async function packetOnly(
  ir: PolicyIR,
  file: string,
  poolName: string,
  pinDir: string,
  cgroup: string,
  packet: PacketRuntime | null,
  teardown: () => Promise<void>,
  opts: ChainOptions,
  progress: (t: string) => void,
): Promise<Chain> {
  let stopping: Promise<void> | null = null;
  let resolveStopped: () => void = () => {};
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  let control: { close(): Promise<void> } | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await control?.close();
      await teardown();
    })().finally(resolveStopped);
    return stopping;
  };
  const noChain = (what: string) => new ScaleError(`${ir.name} has no request chain (functions and routes) to ${what}`);
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(what: () => Promise<T>): Promise<T> => {
    const run = queue.then(what);
    queue = run.catch(() => {});
    return run;
  };
  const scale = (fn: string, n: number) =>
    serial(async () => {
      if (stopping) throw new ScaleError(`${ir.name} is stopping`);
      if (!packet) throw new ScaleError(`${ir.name} has no function ${fn}`);
      const res = await packet.scale(fn, n);
      recordPacketInstances(pinDir, fn, n);
      return res;
    });
  const apply = (next: string) =>
    serial(() => {
      if (stopping) throw new ScaleError(`${ir.name} is stopping`);
      return applyPacketOnly({ file: resolve(next), pinDir, progress, ...(packet ? { packetScale: (fn: string, n: number) => packet.scale(fn, n) } : {}) });
    });
  if (opts.control ?? true) {
    control = await serveControl(controlPath(ir.name), async (req) => {
      if (req.op === 'scale') return scale(req.function, req.instances);
      if (req.op === 'instances') return packet?.instances() ?? [];
      if (req.op === 'apply') return applyOrRestart(apply, req, opts);
      if (req.op === 'packet') return packet ? jsonSafe(packet.snapshot()) : null;
      if (req.op === 'stop') {
        setImmediate(() => (opts.onStopRequest ? opts.onStopRequest() : void stop()));
        return { stopping: true, pid: process.pid };
      }
      if (req.op === 'routes') throw noChain('change routes of');
      throw new BpfctlError('E_CONTROL', `unknown request ${JSON.stringify((req as { op?: unknown }).op)}`);
    });
  }
  return {
    policy: ir,
    policyFile: file,
    packet,
    url: '',
    host: '',
    port: 0,
    routes: [],
    hubPort: 0,
    poolName,
    pinDir,
    cgroup,
    instances: () => packet?.instances() ?? [],
    scale,
    changeRoutes: async () => {
      throw noChain('change routes of');
    },
    apply,
    poolStats: () => {
      throw noChain('report pool statistics of');
    },
    deadLetterStats: () => ({ received: 0, dropped: 0 }) as unknown as ReturnType<DeadLetter['stats']>,
    registerSocket: () => {
      throw noChain('register sockets with');
    },
    setRemoteInstances: () => {
      throw noChain('list remote instances in');
    },
    stopped,
    stop,
  };
}

/** `status`, `diff` and `graph` read what runs from the manifest: a packet function's new count goes there. */
function recordPacketInstances(pinDir: string, fn: string, n: number): void {
  const m = readManifest(pinDir);
  const packet = m.ir.packet;
  if (!packet) return;
  writeManifest(pinDir, { ...m, ir: { ...m.ir, packet: { ...packet, functions: packet.functions.map((f) => (f.name === fn ? { ...f, instances: n } : f)) } } });
}

/**
 * `bpfctl apply [--restart]` through the control socket: the apply, or, when it cannot be live and
 * --restart was given, a restart with the file (answered first: the socket closes with the chain).
 */
async function applyOrRestart(apply: (file: string) => Promise<unknown>, req: { file: string; restart?: boolean }, opts: ChainOptions): Promise<unknown> {
  try {
    return await apply(req.file);
  } catch (err) {
    if (!req.restart || (err as { code?: string }).code !== 'E_APPLY_RESTART' || !opts.onRestartRequest) throw err;
    const restartTo = resolve(req.file);
    setImmediate(() => opts.onRestartRequest!(restartTo));
    return { restarting: true, reason: (err as Error).message };
  }
}
