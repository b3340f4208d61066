/**
 * The hub: the TCP listener every instance's chain socket connects to (`config.hub_port`). It
 * carries no traffic: the sk_msg program redirects descriptors between the instances' own sockets.
 * It exists because a sockhash only takes established sockets, and a socket stays in the map only
 * while its connection lives: the hub holds the peer ends open (gotcha 3) and never writes.
 *
 * Bytes that do reach the hub were sent by a socket that is not (yet) in `socks`: they are counted
 * as `strayBytes` and dropped, a sign of a registration that went wrong.
 *
 * When a peer goes away, the hub answers its FIN with a reset, so nothing lingers in TIME_WAIT.
 * Connecting to the hub gives a process nothing: only the supervisor puts sockets into `socks`.
 */
import net from 'node:net';
import { DESC_DROP_REASON_MASK, DESC_DROP_REASON_SHIFT, DROP_REASON_KEYS } from '../ir/chain-limits.ts';
import { Link } from './sdk/link.ts';
import { Batcher, bounce, canBounce, type Desc, FrameReader } from './sdk/wire.ts';
import { cut } from './socket-cut.ts';

export interface HubOptions {
  /** 0 (default): any free port. */
  port?: number;
  host?: string;
  /**
   * How long a connection may stay without its socket being registered (`registered()`) before
   * the hub resets it. Any local process can connect to the hub: without a window, connections
   * that never register pile up until the owner runs out of fds. Only for owners that call
   * `registered()` for every socket they insert (the supervisor passes 5000); default: none.
   */
  registerWithinMs?: number;
  /** With registerWithinMs: unregistered connections kept at once; beyond that the oldest is reset. Default 256. */
  maxUnregistered?: number;
}

export interface HubStats {
  accepted: number;
  peers: number;
  strayBytes: number;
  /** Connections reset because nobody registered them in time (or too many were waiting). */
  evicted: number;
  unregistered: number;
}

export interface Hub {
  readonly port: number;
  readonly host: string;
  stats(): HubStats;
  /** Local ports of the connected peers (the instances' side of each connection). */
  peerPorts(): number[];
  /** Resolves when a peer from `localPort` is connected (or after `timeoutMs`, false). */
  waitForPeer(localPort: number, timeoutMs?: number): Promise<boolean>;
  /** The supervisor registered the socket connected from `localPort`: keep its connection. */
  registered(localPort: number): void;
  close(): Promise<void>;
}

/** Starts a hub. @throws Error (EADDRINUSE, ...) when it cannot listen. */
export async function startHub(o: HubOptions = {}): Promise<Hub> {
  const host = o.host ?? '127.0.0.1';
  const registerWithinMs = o.registerWithinMs ?? 0;
  const maxUnregistered = o.maxUnregistered ?? 256;
  const peers = new Set<net.Socket>();
  const waiters = new Map<number, (() => void)[]>();
  const counters = { accepted: 0, strayBytes: 0, evicted: 0 };
  // Ports the supervisor registered a socket from, and connections nobody registered yet (in
  // arrival order: the oldest is evicted first). A registration may come before or after accept.
  const registeredPorts = new Set<number>();
  const unregistered = new Map<net.Socket, number>();
  let sweep: NodeJS.Timeout | null = null;
  const evict = (s: net.Socket) => {
    unregistered.delete(s);
    counters.evicted++;
    cut(s);
  };
  const armSweep = () => {
    if (sweep || unregistered.size === 0) return;
    const first = unregistered.values().next().value!;
    sweep = setTimeout(
      () => {
        sweep = null;
        const now = Date.now();
        for (const [s, at] of unregistered) {
          if (at + registerWithinMs > now) break;
          evict(s);
        }
        armSweep();
      },
      Math.max(1, first + registerWithinMs - Date.now()),
    );
    sweep.unref();
  };
  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (s) => {
    counters.accepted++;
    peers.add(s);
    const port = s.remotePort;
    s.on('data', (b) => {
      counters.strayBytes += b.length;
    });
    s.on('end', () => cut(s));
    s.on('error', () => s.destroy());
    s.on('close', () => {
      peers.delete(s);
      unregistered.delete(s);
      if (port !== undefined) registeredPorts.delete(port);
    });
    if (registerWithinMs > 0 && (port === undefined || !registeredPorts.has(port))) {
      unregistered.set(s, Date.now());
      if (unregistered.size > maxUnregistered) evict(unregistered.keys().next().value!);
      armSweep();
    }
    if (port !== undefined) {
      for (const w of waiters.get(port) ?? []) w();
      waiters.delete(port);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: o.port ?? 0, host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {});
  const addr = server.address() as net.AddressInfo;
  return {
    port: addr.port,
    host,
    stats: () => ({ ...counters, peers: peers.size, unregistered: unregistered.size }),
    registered: (localPort) => {
      registeredPorts.add(localPort);
      for (const [s] of unregistered) {
        if (s.remotePort === localPort) unregistered.delete(s);
      }
    },
    peerPorts: () => [...peers].map((s) => s.remotePort ?? 0),
    waitForPeer: (localPort, timeoutMs = 5000) => {
      for (const s of peers) if (s.remotePort === localPort) return Promise.resolve(true);
      return new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), timeoutMs);
        const list = waiters.get(localPort) ?? [];
        list.push(() => {
          clearTimeout(t);
          resolve(true);
        });
        waiters.set(localPort, list);
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (sweep) clearTimeout(sweep);
        for (const s of peers) cut(s);
        peers.clear();
        server.close(() => resolve());
      }),
  };
}

export interface DeadLetterOptions {
  /** A route slot's length, from the live table (undefined: no such slot). */
  routeLen: (slot: number) => number | undefined;
  hubPort: number;
  hubHost?: string;
  /** Inserts the socket into `socks` under DEAD_LETTER_KEY (0xffffffff); the caller holds the maps. */
  register: (fd: number, localPort?: number) => void | Promise<void>;
  log?: (msg: string) => void;
}

export interface DeadLetter {
  readonly ready: Promise<void>;
  stats(): { received: number; bounced: number; discarded: number; byReason: Record<string, number> };
  close(): void;
}

/**
 * The dead-letter socket: where the sk_msg program sends the descriptors it refuses (marked
 * DROPPED with the reason) instead of failing the sender's socket. A refusal about the target
 * (no live instance, dead socket) goes back to the request's gateway as a 503 at once, through
 * this socket (which the program judges like any other); anything else is counted and discarded
 * (the gateway's timeout answers those requests). Never touches the pool: the gateway frees.
 */
export function startDeadLetter(o: DeadLetterOptions): DeadLetter {
  const counters = { received: 0, bounced: 0, discarded: 0, byReason: {} as Record<string, number> };
  const out = new Batcher();
  const onDesc = (d: Desc) => {
    counters.received++;
    const reason = DROP_REASON_KEYS[(d.flags & DESC_DROP_REASON_MASK) >> DESC_DROP_REASON_SHIFT] ?? 'unknown';
    counters.byReason[reason] = (counters.byReason[reason] ?? 0) + 1;
    const len = o.routeLen(d.route);
    if (len !== undefined && canBounce(d, len)) {
      bounce(d, len);
      out.add(d, d.gwInst);
      counters.bounced++;
    } else {
      counters.discarded++;
    }
  };
  const reader = new FrameReader(onDesc);
  let firstUp: () => void = () => {};
  const ready = new Promise<void>((r) => {
    firstUp = r;
  });
  const link = new Link({
    mode: 'callback',
    hubPort: o.hubPort,
    hubHost: o.hubHost,
    register: o.register,
    onData: (buf, len) => {
      reader.push(buf, len);
      const batch = out.take();
      if (batch) link.write(batch.bytes);
    },
    onUp: () => {
      reader.reset();
      firstUp();
    },
    onDown: () => reader.reset(),
    onFatal: () => {},
    log: o.log ?? ((m) => process.stderr.write(`[dead-letter] ${m}\n`)),
  });
  link.start();
  return {
    ready,
    stats: () => ({ ...counters, byReason: { ...counters.byReason } }),
    close: () => link.close(),
  };
}
