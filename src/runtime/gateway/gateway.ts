/**
 * The HTTP gateway: function id 0 of the chain. It maps a request path to the route's current
 * version in the live route table, puts the body into a pool buffer, sends a descriptor (hop 0)
 * into the chain over its own registered socket and answers when the descriptor comes back.
 *
 * Statuses of its own: 404 unknown route, 405 method the route does not accept (with `Allow`),
 * 408 body not received within `bodyTimeoutMs`, 413 body larger than a buffer, 503 pool exhausted
 * / a function of the route has no live instance / too many requests in flight / chain socket
 * down / an instance holding the request died, 504 no answer within `timeoutMs`. Errors raised by
 * functions come back with the status they set.
 *
 * A body is collected from the socket first and copied into a pool buffer once complete (the copy
 * from the socket's buffer happens either way): a client that sends its body slowly, or never,
 * holds no pool buffer, so slow clients cannot starve the others of buffers.
 *
 * Buffers: the gateway allocates one per request and frees it when the reply arrives or the
 * request times out; a client that disconnects changes nothing (the reply is simply not written).
 * A reply flagged RESPONSE_NEW_BUF carries a buffer a function allocated (the original was freed by
 * that function): the gateway copies it out and frees it. Generations make every one of these
 * frees safe against replies that arrive after a timeout.
 */
import { Buffer } from 'node:buffer';
import http from 'node:http';
import type { Socket } from 'node:net';
import { ROUTE_METHODS } from '../../ir/chain-maps.ts';
import type { PolicyIR } from '../../ir/policy.ts';
import { Pool } from '../pool/index.ts';
import { type RouteEntry, type RouteView, staticRouteTable } from '../route-table.ts';
import { Link } from '../sdk/link.ts';
import { freeQuietly, isLive, type RuntimePool } from '../sdk/pool-api.ts';
import { Batcher, bounce, canBounce, DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, type Desc, FrameReader } from '../sdk/wire.ts';
import { type InstancesMap, LiveInstances } from './live-instances.ts';
import type { GatewayStatsSlot } from './stats-slot.ts';

export interface GatewayOptions {
  policy: PolicyIR;
  /** An open pool, or its name/path (default: the policy's name). */
  pool?: RuntimePool | string;
  hubPort: number;
  hubHost?: string;
  /** This gateway's instance id (the descriptor's gw_inst). Default 0. */
  gwInst?: number;
  /** Registration by the caller: insert `fd` into `socks` under key (0 << 16 | gwInst). */
  register?: (fd: number) => void | Promise<void>;
  /** Registration by the supervisor instead: the socket goes to it over the IPC channel. */
  mode?: 'callback' | 'ipc';
  /** The live routes (default: the policy's routes, fixed). */
  routes?: RouteView;
  /**
   * Live instance counts: the mapped `instances` map (`LiveInstanceCounts`), or the map itself
   * (looked up, cached for `instanceCacheMs`). Requests to a function without live instances get
   * 503. Without it, all are assumed live.
   */
  instances?: InstancesMap | InstanceCounts;
  /** HTTP port (0: any free one) and address (default 127.0.0.1). */
  port?: number;
  host?: string;
  /** Reply deadline per request; default 5000 ms. */
  timeoutMs?: number;
  /** Deadline for receiving a request's headers and body; default 10000 ms (then 408). */
  bodyTimeoutMs?: number;
  /** Connections one client address may hold at once; more are closed at once. Default 1024. */
  maxConnectionsPerClient?: number;
  /** Requests in the chain at once before new ones get 503; default: the pool's buffer count. */
  maxInFlight?: number;
  /** How long an `instances` count is trusted; default 20 ms. */
  instanceCacheMs?: number;
  log?: (msg: string) => void;
  /** This instance's slot of the shared statistics block (maps/gw_stats) that metrics readers sum. */
  metrics?: GatewayStatsSlot;
}

export interface GatewayStats {
  requests: number;
  replies: number;
  byStatus: Record<number, number>;
  timeouts: number;
  late: number;
  /** Descriptors that were not replies to this gateway (kernel-refused, another gw_inst). */
  misrouted: number;
  inFlight: number;
  clientGone: number;
  /** Connections closed because their client address already held maxConnectionsPerClient. */
  refusedConnections: number;
  chainUp: boolean;
}

export interface Gateway {
  readonly port: number;
  /** Resolves once the chain socket is registered (requests before that get 503). */
  readonly ready: Promise<void>;
  stats(): GatewayStats;
  /**
   * An instance died: fails at once (503) the requests the kernel sent to it. `before` is the
   * function's live instance list just before the instance left it: a request went to
   * `before[req_id % before.length]` at that function. Returns how many requests were failed.
   */
  instanceDown(fnId: number, inst: number, before: readonly number[]): number;
  close(): Promise<void>;
}

export interface InstanceCounts {
  count(fnId: number): number;
}

interface Pending {
  res: http.ServerResponse;
  off: number;
  gen: number;
  deadline: number;
  route: RouteEntry;
  /** performance.now() when it went into the chain (the latency histogram). */
  t0: number;
}

const TEXT = 'text/plain; charset=utf-8';
const METHOD_BITS = new Map<string, number>(ROUTE_METHODS.map((m, i) => [m, 1 << i]));
const BINARY = 'application/octet-stream';
/** Bodies up to this size are sent as latin1 strings (one write with the headers). */
const SMALL_BODY = 16 * 1024;

/** Starts the gateway. @throws Error when the HTTP port cannot be bound; PoolError when the pool cannot be opened. */
export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const ir = o.policy;
  const log = o.log ?? ((m: string) => process.stderr.write(`[gateway pid ${process.pid}] ${m}\n`));
  const ownPool = o.pool === undefined || typeof o.pool === 'string';
  const pool: RuntimePool = ownPool ? Pool.open((o.pool as string | undefined) ?? ir.name) : (o.pool as RuntimePool);
  const bufSize = pool.bufferSize;
  const gwInst = o.gwInst ?? 0;
  const timeoutMs = o.timeoutMs ?? 5000;
  const maxInFlight = o.maxInFlight ?? (pool as Partial<Pool>).bufferCount ?? ir.pool.bufferCount;
  const owner = process.pid;
  const metrics = o.metrics;

  const bodyTimeoutMs = o.bodyTimeoutMs ?? 10_000;
  const maxPerClient = o.maxConnectionsPerClient ?? 1024;
  const routes = o.routes ?? staticRouteTable(ir);
  const declared = new Map<number, number>(ir.functions.map((f) => [f.id, f.instances]));
  const fnNames = new Map<number, string>(ir.functions.map((f) => [f.id, f.name]));
  const counts: InstanceCounts =
    o.instances && 'count' in o.instances
      ? o.instances
      : (() => {
          const li = new LiveInstances((o.instances as InstancesMap | undefined) ?? null, (id) => declared.get(id) ?? 0, o.instanceCacheMs ?? 20);
          return { count: (fn: number) => li.count(fn, Date.now()) };
        })();

  const pending = new Map<number, Pending>();
  let nextReq = 1;
  const stats = { requests: 0, replies: 0, byStatus: {} as Record<number, number>, timeouts: 0, late: 0, misrouted: 0, clientGone: 0, refusedConnections: 0 };
  const out = new Batcher();
  let flushScheduled = false;
  let timer: NodeJS.Timeout | null = null;
  let closing = false;

  // Responses to HEAD requests: headers only (node:http drops a body for HEAD itself, but the
  // content-length must still be the GET answer's).
  const headOnly = new WeakSet<http.ServerResponse>();
  const respond = (res: http.ServerResponse, status: number, body: Uint8Array | string, type: string, close = false, latin1 = false, extra?: http.OutgoingHttpHeaders) => {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    metrics?.response(status);
    if (res.destroyed || res.writableEnded) {
      stats.clientGone++;
      return;
    }
    const len = typeof body === 'string' ? (latin1 ? body.length : Buffer.byteLength(body)) : body.byteLength;
    const headers: http.OutgoingHttpHeaders = { 'content-type': type, 'content-length': len, ...extra };
    if (close) headers.connection = 'close';
    res.writeHead(status, headers);
    if (headOnly.has(res)) res.end();
    else if (latin1) res.end(body, 'latin1');
    else res.end(body);
  };

  const flush = () => {
    flushScheduled = false;
    const batch = out.take();
    if (batch && !link.write(batch.bytes)) {
      // The link fell between accepting and sending: those requests cannot reach the chain.
      for (const d of batch.descs) fail(d.reqId, 503, 'chain socket down');
    }
  };

  const scheduleFlush = () => {
    if (flushScheduled) return;
    flushScheduled = true;
    // One write for every request accepted in this turn of the event loop.
    setImmediate(flush);
  };

  const fail = (reqId: number, status: number, msg: string) => {
    const p = pending.get(reqId);
    if (!p) return;
    pending.delete(reqId);
    freeQuietly(pool, p.off, p.gen);
    metrics?.latency(p.t0);
    respond(p.res, status, `${msg}\n`, TEXT);
  };

  const armTimer = () => {
    if (timer || pending.size === 0) return;
    const first = pending.values().next().value as Pending;
    timer = setTimeout(expire, Math.max(1, first.deadline - Date.now()));
    timer.unref();
  };

  // Every request gets the same timeout, so the Map's insertion order is deadline order: expiry
  // walks from the front and stops at the first request still in time (no timer per request).
  const expire = () => {
    timer = null;
    const now = Date.now();
    for (const [id, p] of pending) {
      if (p.deadline > now) break;
      pending.delete(id);
      stats.timeouts++;
      freeQuietly(pool, p.off, p.gen);
      metrics?.latency(p.t0);
      respond(p.res, 504, 'chain timed out\n', TEXT);
    }
    armTimer();
  };

  const routeLen = (slot: number) => routes.bySlot(slot)?.len;

  const onReply = (d: Desc) => {
    if (d.flags & DESC_FLAG_DROPPED || d.gwInst !== gwInst) {
      // Not a reply: a descriptor the kernel refused (it rode along in a send with one for us), or
      // a reply for another gateway instance. Ours: fail it here; others: back through the chain.
      stats.misrouted++;
      if (d.gwInst === gwInst) {
        if (d.flags & DESC_FLAG_RESPONSE_NEW_BUF) freeQuietly(pool, d.bufOff, d.bufGen);
        fail(d.reqId, canBounce(d, routeLen(d.route)) ? 503 : 502, 'the chain refused the request');
      } else if (canBounce(d, routeLen(d.route)) || !(d.flags & DESC_FLAG_DROPPED)) {
        if (d.flags & DESC_FLAG_DROPPED) bounce(d, routeLen(d.route)!);
        out.add(d, 0x10000 + d.gwInst);
        scheduleFlush();
      }
      return;
    }
    const p = pending.get(d.reqId);
    const fresh = (d.flags & DESC_FLAG_RESPONSE_NEW_BUF) !== 0;
    if (!p) {
      // After a timeout: the original was freed then; a buffer a function allocated is ours to free.
      stats.late++;
      if (fresh && isLive(pool, d.bufOff, d.bufGen)) freeQuietly(pool, d.bufOff, d.bufGen);
      return;
    }
    pending.delete(d.reqId);
    stats.replies++;
    metrics?.reply(p.route.slot, p.route.version);
    metrics?.latency(p.t0);
    const error = (d.flags & DESC_FLAG_ERROR) !== 0;
    let status = error ? d.status || 500 : 200;
    let body: Uint8Array | string;
    let binary = false;
    if (fresh ? isLive(pool, d.bufOff, d.bufGen) : d.bufOff === p.off && d.bufGen === p.gen) {
      const len = Math.min(d.bufLen, bufSize);
      // A copy: the response may sit in the socket's queue after end() returns, and the buffer
      // is reused as soon as it is freed.
      if (len === 0 && error) {
        body = `${http.STATUS_CODES[status] ?? 'error'}\n`;
      } else {
        const v = pool.bytes(d.bufOff, len);
        const b = Buffer.from(v.buffer, v.byteOffset, len);
        // A copy either way: the response may sit in the socket's queue after end() returns,
        // and the buffer is reused as soon as it is freed. Small bodies become a latin1 string
        // (byte for byte): node:http then sends headers and body in one write instead of a writev.
        body = len <= SMALL_BODY ? b.toString('latin1', 0, len) : Buffer.from(b);
        binary = true;
      }
      if (fresh) freeQuietly(pool, d.bufOff, d.bufGen);
      else freeQuietly(pool, p.off, p.gen);
    } else {
      // The descriptor lost track of its buffer (a bug in a function, or a stale hop): fail safe.
      if (!fresh) freeQuietly(pool, p.off, p.gen);
      status = 502;
      body = 'chain returned an invalid buffer\n';
    }
    respond(p.res, status, body, error || status === 502 ? TEXT : BINARY, false, binary);
  };

  const reader = new FrameReader(onReply);
  let firstUp: () => void = () => {};
  const ready = new Promise<void>((r) => {
    firstUp = r;
  });
  const link = new Link({
    mode: o.mode ?? 'callback',
    hubPort: o.hubPort,
    hubHost: o.hubHost,
    register: o.register ?? (() => {}),
    identity: { gateway: gwInst },
    onData: (buf, len) => reader.push(buf, len),
    onUp: () => {
      reader.reset();
      firstUp();
    },
    onDown: () => reader.reset(),
    onFatal: (err) => log(err.message),
    log,
  });
  link.start();

  const dispatch = (route: RouteEntry, res: http.ServerResponse, off: number, gen: number, len: number) => {
    let reqId = nextReq;
    // u32 wrap; skip ids still pending (a request older than 4G requests would need it).
    while (pending.has(reqId)) reqId = (reqId + 1) >>> 0;
    nextReq = (reqId + 1) >>> 0;
    pending.set(reqId, { res, off, gen, deadline: Date.now() + timeoutMs, route, t0: performance.now() });
    armTimer();
    out.add({ route: route.slot, hop: 0, flags: 0, gwInst, status: 0, reqId, bufOff: off, bufLen: len, bufGen: gen }, route.hops[0]!);
    scheduleFlush();
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    stats.requests++;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const route = routes.byPath(q < 0 ? url : url.slice(0, q));
    if (!route) return respond(res, 404, 'no such route\n', TEXT);
    const m = METHOD_BITS.get(req.method ?? '') ?? 0;
    if ((route.methods & m) === 0) {
      const allow = ROUTE_METHODS.filter((_, i) => route.methods & (1 << i)).join(', ');
      return respond(res, 405, `${route.name} accepts ${allow}\n`, TEXT, false, false, { allow });
    }
    const cl = req.headers['content-length'];
    const declaredLen = cl === undefined ? -1 : Number(cl);
    if (declaredLen > bufSize) return respond(res, 413, `body larger than ${bufSize} bytes\n`, TEXT, true);
    if (closing || !link.isUp) return respond(res, 503, 'chain not connected\n', TEXT);
    if (pending.size >= maxInFlight) return respond(res, 503, 'too many requests in flight\n', TEXT);
    for (const fn of route.hops) {
      if (counts.count(fn) === 0) return respond(res, 503, `function ${fnNames.get(fn) ?? `#${fn}`} has no live instance\n`, TEXT);
    }
    const head = req.method === 'HEAD';
    if (head) headOnly.add(res);
    if (declaredLen === 0 || (declaredLen < 0 && req.headers['transfer-encoding'] === undefined)) {
      const b = pool.alloc(owner);
      if (!b) return respond(res, 503, 'pool exhausted\n', TEXT);
      return dispatch(route, res, b.offset, b.gen, 0);
    }
    // The body is collected first and copied into a pool buffer once complete: a client that
    // sends it slowly holds memory of its own (at most one buffer's worth), never a pool buffer.
    let chunks: Buffer[] | null = [];
    let at = 0;
    req.on('data', (chunk: Buffer) => {
      if (chunks === null) return;
      if (at + chunk.length > bufSize) {
        chunks = null;
        respond(res, 413, `body larger than ${bufSize} bytes\n`, TEXT, true);
        return;
      }
      chunks.push(chunk);
      at += chunk.length;
    });
    req.on('end', () => {
      if (chunks === null) return;
      const parts = chunks;
      chunks = null;
      const b = pool.alloc(owner);
      if (!b) return respond(res, 503, 'pool exhausted\n', TEXT);
      const view = pool.bytes(b.offset, bufSize);
      let off = 0;
      for (const c of parts) {
        view.set(c, off);
        off += c.length;
      }
      // The route is taken as it was when the request arrived; it may have changed since.
      dispatch(route, res, b.offset, b.gen, at);
    });
    // A client gone before the body ended: nothing was allocated, nothing to give back.
    req.on('close', () => {
      chunks = null;
    });
    req.on('error', () => {
      chunks = null;
    });
  };

  const instanceDown = (fnId: number, inst: number, before: readonly number[]): number => {
    if (before.length === 0) return 0;
    let failed = 0;
    for (const [id, p] of pending) {
      if (!p.route.hops.includes(fnId) || before[id % before.length] !== inst) continue;
      fail(id, 503, `instance ${inst} of ${fnNames.get(fnId) ?? `#${fnId}`} died`);
      failed++;
    }
    return failed;
  };

  // requestTimeout bounds headers and body together (408, connection closed); the check runs once
  // a second, so a slow or silent client is cut off within bodyTimeoutMs + 1 s.
  const server = http.createServer(
    { keepAlive: true, noDelay: true, requestTimeout: bodyTimeoutMs, headersTimeout: bodyTimeoutMs, connectionsCheckingInterval: 1000 },
    onRequest,
  );
  server.keepAliveTimeout = 60_000;
  // One client address may hold at most maxConnectionsPerClient connections: the process has a
  // bounded number of fds, and a client that opens them all (slowly or idly) would starve every
  // other client of connections. Beyond that, new connections from it are closed at once.
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress ?? '';
    const n = (perClient.get(addr) ?? 0) + 1;
    if (n > maxPerClient) {
      stats.refusedConnections++;
      socket.destroy();
      return;
    }
    perClient.set(addr, n);
    socket.once('close', () => {
      const left = (perClient.get(addr) ?? 1) - 1;
      if (left <= 0) perClient.delete(addr);
      else perClient.set(addr, left);
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // A request not received within bodyTimeoutMs is a timeout (408), not a malformed one.
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) {
      metrics?.response(status.startsWith('408') ? 408 : 400);
      socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    } else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: o.port ?? 0, host: o.host ?? '127.0.0.1' }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;

  return {
    port,
    ready,
    stats: () => ({ ...stats, byStatus: { ...stats.byStatus }, inFlight: pending.size, chainUp: link.isUp }),
    instanceDown,
    close: async () => {
      closing = true;
      if (timer) clearTimeout(timer);
      timer = null;
      for (const [id] of pending) fail(id, 503, 'gateway closing');
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      link.close();
      if (ownPool) (pool as Pool).close();
    },
  };
}
