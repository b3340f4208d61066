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
import { freeQuietly, PoolAccess, type RuntimePool } from '../sdk/pool-api.ts';
import {
  Batcher,
  bounce,
  canBounce,
  DESC_FLAG_DROPPED,
  DESC_FLAG_ERROR,
  DESC_FLAG_RESPONSE_NEW_BUF,
  DESC_SIZE,
  type Desc,
  DescRecord,
  FrameCutter,
  readDescInto,
  writeDesc,
} from '../sdk/wire.ts';
import { type InstancesMap, LiveInstances } from './live-instances.ts';
import { type PendingRequest, PendingTable } from './pending.ts';
import { PoolBuffers } from './pool-buffers.ts';
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

const TEXT = 'text/plain; charset=utf-8';
const METHOD_BITS = new Map<string, number>(ROUTE_METHODS.map((m, i) => [m, 1 << i]));
const BINARY = 'application/octet-stream';
/** Bodies up to this size are sent as latin1 strings (one write with the headers). */
const SMALL_BODY = 16 * 1024;
/** Largest request batch (in descriptors) whose buffer is kept for the next batch of that size. */
const MAX_SPARE_BATCH = 64;

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
  // The hot path's pool work without allocating: the stale check on 32-bit words, Buffer views
  // made once per pool buffer.
  const mem = new PoolAccess(pool);
  const bufs = new PoolBuffers(pool);

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

  const pending = new PendingTable(maxInFlight);
  const stats = { requests: 0, replies: 0, byStatus: {} as Record<number, number>, timeouts: 0, late: 0, misrouted: 0, clientGone: 0, refusedConnections: 0 };
  // Requests accepted in this turn of the event loop, sent as one write (arrays reused from flush
  // to flush): the record, its id when queued (a request failed meanwhile is not sent), and its
  // first hop (requests for one function are kept next to each other: the kernel judges runs).
  const outReqs: PendingRequest[] = [];
  const outIds: number[] = [];
  const outKeys: number[] = [];
  let outN = 0;
  const keyOrder: number[] = [];
  // Batch buffers the link gave back, by descriptor count (socket.write may keep one it could not
  // send at once; then it is not reused).
  const spare: (Buffer | null)[] = new Array<Buffer | null>(MAX_SPARE_BATCH + 1).fill(null);
  // Descriptors that pass through on their way to another gateway instance (rare): as they come.
  const forward = new Batcher();
  let flushScheduled = false;
  let timer: NodeJS.Timeout | null = null;
  let closing = false;

  // The 200 answer's headers, one object for every response: writeHead serializes it at once and
  // keeps no reference.
  const okHeaders = { 'content-type': BINARY, 'content-length': 0 };
  const respond = (res: http.ServerResponse, status: number, body: Uint8Array | string, type: string, close = false, latin1 = false, extra?: http.OutgoingHttpHeaders, head = false) => {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    metrics?.response(status);
    if (res.destroyed || res.writableEnded) {
      stats.clientGone++;
      return;
    }
    const len = typeof body === 'string' ? (latin1 ? body.length : Buffer.byteLength(body)) : body.byteLength;
    if (status === 200 && type === BINARY && !close && extra === undefined) {
      okHeaders['content-length'] = len;
      res.writeHead(200, okHeaders);
    } else {
      const headers: http.OutgoingHttpHeaders = { 'content-type': type, 'content-length': len, ...extra };
      if (close) headers.connection = 'close';
      res.writeHead(status, headers);
    }
    // HEAD: node:http sends no body itself, but the content-length must be the GET answer's.
    if (head) res.end();
    else if (latin1) res.end(body, 'latin1');
    else res.end(body);
  };

  const flush = () => {
    flushScheduled = false;
    const n = outN;
    outN = 0;
    let live = 0;
    for (let i = 0; i < n; i++) if (pending.get(outIds[i]!) === outReqs[i]) live++;
    if (live > 0) {
      let bytes = live <= MAX_SPARE_BATCH ? spare[live]! : null;
      if (bytes !== null) spare[live] = null;
      else bytes = Buffer.allocUnsafe(live * DESC_SIZE);
      const k0 = outKeys[0]!;
      let mixed = false;
      for (let i = 1; i < n; i++) {
        if (outKeys[i] !== k0) {
          mixed = true;
          break;
        }
      }
      let at = 0;
      if (!mixed) {
        for (let i = 0; i < n; i++) {
          const p = outReqs[i]!;
          if (pending.get(outIds[i]!) !== p) continue;
          writeDesc(bytes, at, p.d);
          at += DESC_SIZE;
        }
      } else {
        // Destinations in order of first appearance, each in arrival order. They are few (the
        // first functions of the routes in use), so a scan per destination beats a Map.
        keyOrder.length = 0;
        for (let i = 0; i < n; i++) if (!keyOrder.includes(outKeys[i]!)) keyOrder.push(outKeys[i]!);
        for (const k of keyOrder) {
          for (let i = 0; i < n; i++) {
            const p = outReqs[i]!;
            if (outKeys[i] !== k || pending.get(outIds[i]!) !== p) continue;
            writeDesc(bytes, at, p.d);
            at += DESC_SIZE;
          }
        }
      }
      if (!link.write(bytes)) {
        // The link fell between accepting and sending: those requests cannot reach the chain.
        for (let i = 0; i < n; i++) fail(outIds[i]!, 503, 'chain socket down');
      } else if (link.drained && live <= MAX_SPARE_BATCH) {
        spare[live] = bytes;
      }
    }
    const fwd = forward.take();
    if (fwd) link.write(fwd.bytes);
  };

  const scheduleFlush = () => {
    if (flushScheduled) return;
    flushScheduled = true;
    // One write for every request accepted in this turn of the event loop.
    setImmediate(flush);
  };

  /** Answers a pending request with an error of the gateway's own and frees its buffer. */
  const fail = (reqId: number, status: number, msg: string) => {
    const p = pending.get(reqId);
    if (!p) return;
    const res = p.res!;
    freeQuietly(pool, p.d.bufOff, p.d.bufGen);
    metrics?.latency(p.t0);
    pending.release(p);
    respond(res, status, `${msg}\n`, TEXT);
  };

  const armTimer = () => {
    const first = pending.first();
    if (timer || first === null) return;
    timer = setTimeout(expire, Math.max(1, first.deadline - Date.now()));
    timer.unref();
  };

  // Every request gets the same timeout, so the table's order is deadline order: expiry walks
  // from the oldest and stops at the first request still in time (no timer per request).
  const expire = () => {
    timer = null;
    const now = Date.now();
    for (let p = pending.first(); p !== null && p.deadline <= now; p = pending.first()) {
      const res = p.res!;
      stats.timeouts++;
      freeQuietly(pool, p.d.bufOff, p.d.bufGen);
      metrics?.latency(p.t0);
      pending.release(p);
      respond(res, 504, 'chain timed out\n', TEXT);
    }
    armTimer();
  };

  const routeLen = (slot: number) => routes.bySlot(slot)?.len;

  /** One descriptor from the chain, in `d` (a record reused for every descriptor: read it here). */
  const onReply = (d: DescRecord) => {
    if (d.flags & DESC_FLAG_DROPPED || d.gwInst !== gwInst) {
      // Not a reply: a descriptor the kernel refused (it rode along in a send with one for us), or
      // a reply for another gateway instance. Ours: fail it here; others: back through the chain.
      stats.misrouted++;
      if (d.gwInst === gwInst) {
        if (d.flags & DESC_FLAG_RESPONSE_NEW_BUF) freeQuietly(pool, d.bufOff, d.bufGen);
        fail(d.reqId, canBounce(d, routeLen(d.route)) ? 503 : 502, 'the chain refused the request');
      } else if (canBounce(d, routeLen(d.route)) || !(d.flags & DESC_FLAG_DROPPED)) {
        // A copy: `d` is reused for the next descriptor.
        const c: Desc = { ...d };
        if (c.flags & DESC_FLAG_DROPPED) bounce(c, routeLen(c.route)!);
        forward.add(c, 0x10000 + c.gwInst);
        scheduleFlush();
      }
      return;
    }
    const p = pending.get(d.reqId);
    const fresh = (d.flags & DESC_FLAG_RESPONSE_NEW_BUF) !== 0;
    if (!p) {
      // After a timeout: the original was freed then; a buffer a function allocated is ours to free.
      stats.late++;
      if (fresh && mem.isLive(d.bufOff, d.bufGen)) freeQuietly(pool, d.bufOff, d.bufGen);
      return;
    }
    const res = p.res!;
    const head = p.head;
    const off = p.d.bufOff;
    const gen = p.d.bufGen;
    stats.replies++;
    metrics?.reply(p.route.slot, p.route.version);
    metrics?.latency(p.t0);
    pending.release(p);
    const error = (d.flags & DESC_FLAG_ERROR) !== 0;
    let status = error ? d.status || 500 : 200;
    let body: Uint8Array | string;
    let binary = false;
    if (fresh ? mem.isLive(d.bufOff, d.bufGen) : d.bufOff === off && d.bufGen === gen) {
      const len = Math.min(d.bufLen, bufSize);
      if (len === 0 && error) {
        body = `${http.STATUS_CODES[status] ?? 'error'}\n`;
      } else {
        // A copy either way: the response may sit in the socket's queue after end() returns,
        // and the buffer is reused as soon as it is freed. Small bodies become a latin1 string
        // (byte for byte): node:http then sends headers and body in one write instead of a writev.
        const b = bufs.at(d.bufOff);
        body = len <= SMALL_BODY ? b.toString('latin1', 0, len) : Buffer.from(b.subarray(0, len));
        binary = true;
      }
      if (fresh) freeQuietly(pool, d.bufOff, d.bufGen);
      else freeQuietly(pool, off, gen);
    } else {
      // The descriptor lost track of its buffer (a bug in a function, or a stale hop): fail safe.
      if (!fresh) freeQuietly(pool, off, gen);
      status = 502;
      body = 'chain returned an invalid buffer\n';
    }
    respond(res, status, body, error || status === 502 ? TEXT : BINARY, false, binary, undefined, head);
  };

  // Replies are read into one record, not an object per descriptor.
  const replyRecord = new DescRecord();
  const reader = new FrameCutter((b, at) => {
    readDescInto(b, at, replyRecord);
    onReply(replyRecord);
  });
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

  /** Sends a request whose body is in the pool buffer `off`/`gen` (`len` bytes) into the chain. */
  const dispatch = (route: RouteEntry, res: http.ServerResponse, head: boolean, off: number, gen: number, len: number) => {
    const p = pending.take();
    if (p === null) {
      // More bodies completed than the in-flight bound had room for when they were accepted.
      freeQuietly(pool, off, gen);
      return respond(res, 503, 'too many requests in flight\n', TEXT);
    }
    p.res = res;
    p.head = head;
    p.deadline = Date.now() + timeoutMs;
    p.t0 = metrics ? performance.now() : 0;
    // The route is taken as it was when the request arrived; it may have changed since.
    p.route = route;
    const d = p.d;
    d.route = route.slot;
    d.hop = 0;
    d.flags = 0;
    d.gwInst = gwInst;
    d.status = 0;
    d.bufOff = off;
    d.bufLen = len;
    d.bufGen = gen;
    armTimer();
    outReqs[outN] = p;
    outIds[outN] = p.id;
    outKeys[outN] = route.hops[0]!;
    outN++;
    scheduleFlush();
  };

  /** Takes a pool buffer, copies the body into it (`one` chunk, or `parts`) and dispatches. */
  const toChain = (route: RouteEntry, res: http.ServerResponse, head: boolean, one: Buffer | null, parts: Buffer[] | null, len: number) => {
    const b = pool.alloc(owner);
    if (!b) return respond(res, 503, 'pool exhausted\n', TEXT);
    if (len > 0) {
      const view = bufs.at(b.offset);
      if (one !== null) one.copy(view, 0);
      else {
        let at = 0;
        for (const c of parts!) at += c.copy(view, at);
      }
    }
    dispatch(route, res, head, b.offset, b.gen, len);
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
    if (declaredLen === 0 || (declaredLen < 0 && req.headers['transfer-encoding'] === undefined)) return toChain(route, res, head, null, null, 0);
    // The body is collected first and copied into a pool buffer once complete: a client that
    // sends it slowly holds memory of its own (at most one buffer's worth), never a pool buffer;
    // one that goes away before it is complete leaves nothing behind (no listener for that is
    // needed). With a content-length the request goes on as soon as the last byte is in: 'end'
    // comes a tick later.
    let parts: Buffer[] | null = null;
    let at = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      if (at + chunk.length > bufSize) {
        done = true;
        respond(res, 413, `body larger than ${bufSize} bytes\n`, TEXT, true);
        return;
      }
      if (at === 0 && chunk.length === declaredLen) {
        // The whole body in one chunk (the usual case): copied straight from it.
        done = true;
        toChain(route, res, head, chunk, null, declaredLen);
        return;
      }
      if (parts === null) parts = [];
      parts.push(chunk);
      at += chunk.length;
      if (at === declaredLen) {
        done = true;
        toChain(route, res, head, null, parts, at);
      }
    });
    if (declaredLen < 0) {
      req.on('end', () => {
        if (done) return;
        done = true;
        toChain(route, res, head, null, parts, at);
      });
    }
  };

  const instanceDown = (fnId: number, inst: number, before: readonly number[]): number => {
    if (before.length === 0) return 0;
    let failed = 0;
    for (let p = pending.first(); p !== null; ) {
      const next = p.next;
      if (p.route.hops.includes(fnId) && before[p.id % before.length] === inst) {
        fail(p.id, 503, `instance ${inst} of ${fnNames.get(fnId) ?? `#${fnId}`} died`);
        failed++;
      }
      p = next;
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
      for (let p = pending.first(); p !== null; p = pending.first()) fail(p.id, 503, 'gateway closing');
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      link.close();
      mem.close();
      bufs.close();
      if (ownPool) (pool as Pool).close();
    },
  };
}
