/**
 * The heart of a function instance, independent of sockets: takes descriptors in, runs the
 * handler on each, and queues the descriptor for the next hop. Bounds the handlers running at once
 * (sk_msg ingress has no backpressure, gotcha 5: the kernel never stops delivering, so the bound
 * is enforced here and excess work waits in a FIFO, then is shed with 503) and guarantees every
 * buffer a request touched is either sent on or freed, whatever the handler does.
 */
import { Buffer } from 'node:buffer';
import type { RouteIR } from '../../ir/policy.ts';
import { adopt, freeQuietly, isLive, type RuntimePool } from './pool-api.ts';
import { FunctionError, type Handler, type HandlerResult, type Request } from './types.ts';
import { Batcher, bounce, canBounce, DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, type Desc } from './wire.ts';

export interface DispatcherOptions {
  pool: RuntimePool;
  /** Capacity of one pool buffer (policy pool.bufferSize). */
  bufSize: number;
  handler: Handler;
  fnId: number;
  fnName: string;
  instance: number;
  /** Routes indexed by id (PolicyIR.routes). */
  routes: readonly RouteIR[];
  /** Owner recorded on buffers this instance allocates (its pid: reclaimed if it dies). */
  owner: number;
  /** Handlers running at once; more wait in the queue. */
  maxInFlight: number;
  /** Waiting requests beyond which new ones fail fast with 503. */
  maxQueue: number;
  /** Writes one batch; `descs` are what `bytes` encodes (for accounting on failure). */
  send(bytes: Buffer, descs: Desc[]): void;
  log(msg: string): void;
}

export interface DispatcherStats {
  received: number;
  completed: number;
  failed: number;
  shed: number;
  stale: number;
  /** Descriptors not meant for this function (unknown route, wrong hop, refused by the kernel). */
  misrouted: number;
  inFlight: number;
  queued: number;
  batches: number;
}

interface RouteInfo {
  name: string;
  len: number;
  hops: readonly number[];
}

const utf8 = new TextDecoder();

class Req implements Request {
  allocs: { view: Uint8Array; offset: number; gen: number }[] | null = null;
  private _body: Uint8Array | null = null;
  private _buffer: Uint8Array | null = null;

  constructor(
    private readonly rt: Dispatcher,
    readonly d: Desc,
    readonly routeInfo: RouteInfo,
  ) {}

  get id(): number {
    return this.d.reqId;
  }
  get route(): string {
    return this.routeInfo.name;
  }
  get routeId(): number {
    return this.d.route;
  }
  get hop(): number {
    return this.d.hop;
  }
  get functionName(): string {
    return this.rt.fnName;
  }
  get instance(): number {
    return this.rt.instance;
  }
  get body(): Uint8Array {
    if (!this._body) this._body = this.buffer.subarray(0, this.d.bufLen);
    return this._body;
  }
  get buffer(): Uint8Array {
    if (!this._buffer) this._buffer = this.rt.pool.bytes(this.d.bufOff, this.rt.bufSize);
    return this._buffer;
  }
  text(): string {
    return utf8.decode(this.body);
  }
  alloc(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0 || n > this.rt.bufSize) throw new FunctionError(413, `alloc(${n}): buffers hold at most ${this.rt.bufSize} bytes`);
    const b = this.rt.pool.alloc(this.rt.owner);
    if (!b) throw new FunctionError(503, 'pool exhausted');
    const view = this.rt.pool.bytes(b.offset, n);
    if (!this.allocs) this.allocs = [];
    this.allocs.push({ view, offset: b.offset, gen: b.gen });
    return view;
  }
}

export class Dispatcher {
  readonly pool: RuntimePool;
  readonly bufSize: number;
  readonly fnName: string;
  readonly instance: number;
  readonly owner: number;
  private readonly fnId: number;
  private readonly handler: Handler;
  private readonly routes: (RouteInfo | undefined)[];
  private readonly maxInFlight: number;
  private readonly maxQueue: number;
  private readonly sendBatch: (bytes: Buffer, descs: Desc[]) => void;
  private readonly log: (msg: string) => void;
  private readonly out = new Batcher();
  // A FIFO as an array plus a head index: shift() is O(n) on long queues.
  private queue: Desc[] = [];
  private qHead = 0;
  private inFlight = 0;
  private flushScheduled = false;
  private held = false;
  private closed = false;
  readonly counters = { received: 0, completed: 0, failed: 0, shed: 0, stale: 0, misrouted: 0, batches: 0 };

  constructor(o: DispatcherOptions) {
    this.pool = o.pool;
    this.bufSize = o.bufSize;
    this.handler = o.handler;
    this.fnId = o.fnId;
    this.fnName = o.fnName;
    this.instance = o.instance;
    this.owner = o.owner;
    this.maxInFlight = Math.max(1, o.maxInFlight);
    this.maxQueue = Math.max(0, o.maxQueue);
    this.sendBatch = o.send;
    this.log = o.log;
    this.routes = [];
    for (const r of o.routes) this.routes[r.id] = { name: r.name, len: r.hops.length, hops: r.hops };
  }

  stats(): DispatcherStats {
    return { ...this.counters, inFlight: this.inFlight, queued: this.queue.length - this.qHead };
  }

  /** While held (no registered socket), finished descriptors wait instead of going to a dead socket. */
  hold(on: boolean): void {
    this.held = on;
    if (!on) this.flush();
  }

  close(): void {
    this.closed = true;
  }

  /** One descriptor from the socket. Call `flush()` after a read's worth of them. */
  onDesc = (d: Desc): void => {
    this.counters.received++;
    const r = this.routes[d.route];
    if (d.flags & DESC_FLAG_DROPPED) {
      // Refused by the kernel and delivered here only because it shared a send with a
      // descriptor for us (no dead-letter socket registered): not ours to run.
      this.counters.misrouted++;
      if (r && canBounce(d, r.len)) {
        bounce(d, r.len);
        this.out.add(d, d.gwInst);
        this.scheduleFlush();
      }
      return;
    }
    if (!r) {
      // Without the route we cannot even tell the gateway's hop: the kernel checks routes, so
      // this only happens when the policy changed under a running instance.
      this.counters.misrouted++;
      this.log(`descriptor for unknown route ${d.route} (req ${d.reqId}) dropped`);
      return;
    }
    if (d.hop >= r.len || r.hops[d.hop] !== this.fnId) {
      this.counters.misrouted++;
      this.toGateway(d, r, 500, null);
      return;
    }
    // A buffer a previous hop allocated becomes ours: if that process dies now, reclaiming its
    // buffers must not pull this one from under the handler. (transfer() validates as well.)
    const live = d.flags & DESC_FLAG_RESPONSE_NEW_BUF ? adopt(this.pool, d.bufOff, d.bufGen, this.owner) : isLive(this.pool, d.bufOff, d.bufGen);
    if (d.bufLen > this.bufSize || !live) {
      // A stale descriptor (its buffer was freed, e.g. the gateway timed it out): touching the
      // buffer could corrupt another request, so it goes back untouched.
      this.counters.stale++;
      this.toGateway(d, r, 500, null);
      return;
    }
    if (this.inFlight < this.maxInFlight) {
      this.run(d, r);
    } else if (this.queue.length - this.qHead < this.maxQueue) {
      this.queue.push(d);
    } else {
      this.counters.shed++;
      this.toGateway(d, r, 503, `${this.fnName}: overloaded`);
    }
  };

  /** Writes everything finished so far as one batch. */
  flush = (): void => {
    this.flushScheduled = false;
    if (this.held || this.closed) return;
    const batch = this.out.take();
    if (!batch) return;
    this.counters.batches++;
    this.sendBatch(batch.bytes, batch.descs);
  };

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate: every handler that settles in this turn of the loop joins one write.
    setImmediate(this.flush);
  }

  private run(d: Desc, r: RouteInfo): void {
    this.inFlight++;
    const req = new Req(this, d, r);
    let result: HandlerResult | Promise<HandlerResult>;
    try {
      result = this.handler(req);
    } catch (err) {
      this.fail(req, err);
      this.done();
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<HandlerResult>).then === 'function') {
      (result as Promise<HandlerResult>).then(
        (v) => {
          this.complete(req, v);
          this.done();
          this.scheduleFlush();
        },
        (err: unknown) => {
          this.fail(req, err);
          this.done();
          this.scheduleFlush();
        },
      );
      return;
    }
    this.complete(req, result as HandlerResult);
    this.done();
  }

  private done(): void {
    this.inFlight--;
    while (this.inFlight < this.maxInFlight && this.qHead < this.queue.length) {
      const d = this.queue[this.qHead]!;
      this.queue[this.qHead++] = undefined as unknown as Desc;
      if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.qHead);
        this.qHead = 0;
      }
      const r = this.routes[d.route]!;
      // The buffer may have been freed while the descriptor waited (gateway timeout).
      if (!isLive(this.pool, d.bufOff, d.bufGen)) {
        this.counters.stale++;
        this.toGateway(d, r, 500, null);
        continue;
      }
      this.run(d, r);
    }
    if (this.qHead === this.queue.length && this.qHead > 0) {
      this.queue = [];
      this.qHead = 0;
    }
  }

  private complete(req: Req, v: HandlerResult): void {
    const d = req.d;
    if (this.closed) {
      this.freeAllocs(req, null);
      return;
    }
    if (!isLive(this.pool, d.bufOff, d.bufGen)) {
      // The gateway gave up on the request while the handler ran (timeout) and freed its buffer,
      // which may already carry another request: write nothing, send nothing.
      this.counters.stale++;
      this.freeAllocs(req, null);
      return;
    }
    let len: number;
    let fresh: { offset: number; gen: number } | null = null;
    try {
      if (v === undefined || v === null) {
        len = d.bufLen;
      } else if (typeof v === 'number') {
        if (!Number.isInteger(v) || v < 0 || v > this.bufSize) throw new Error(`handler returned length ${v} (buffer holds ${this.bufSize})`);
        len = v;
      } else if (typeof v === 'string') {
        const buf = req.buffer;
        const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
        // write() truncates silently: check first so a too-long reply is an error, not a cut one.
        const need = Buffer.byteLength(v, 'utf8');
        if (need > this.bufSize) throw new FunctionError(500, `response of ${need} bytes exceeds the ${this.bufSize}-byte buffer`);
        len = b.write(v, 0, 'utf8');
      } else if (v instanceof Uint8Array) {
        const own = req.allocs?.find((a) => a.view.buffer === v.buffer && a.view.byteOffset === v.byteOffset);
        if (own) {
          fresh = own;
          len = v.byteLength;
        } else {
          const buf = req.buffer;
          if (!(v.buffer === buf.buffer && v.byteOffset === buf.byteOffset)) {
            if (v.byteLength > this.bufSize) throw new FunctionError(500, `response of ${v.byteLength} bytes exceeds the ${this.bufSize}-byte buffer`);
            buf.set(v);
          }
          len = v.byteLength;
        }
      } else {
        throw new Error(`handler returned ${typeof v}; expected a length, bytes, a string or nothing`);
      }
    } catch (err) {
      this.fail(req, err);
      return;
    }
    this.freeAllocs(req, fresh);
    if (fresh) {
      // The request's buffer is done with; from here on the descriptor names the new one, and the
      // flag (kept to the end of the route) tells the gateway its original is already free.
      freeQuietly(this.pool, d.bufOff, d.bufGen);
      d.bufOff = fresh.offset;
      d.bufGen = fresh.gen;
      d.flags |= DESC_FLAG_RESPONSE_NEW_BUF;
    }
    d.bufLen = len;
    d.hop++;
    this.counters.completed++;
    const r = req.routeInfo;
    this.out.add(d, d.hop >= r.len ? d.gwInst : 0x10000 + (r.hops[d.hop]! << 8) + d.route);
  }

  private fail(req: Req, err: unknown): void {
    this.counters.failed++;
    this.freeAllocs(req, null);
    const status = err instanceof FunctionError ? err.status : 500;
    const msg = err instanceof Error ? err.message : String(err);
    if (!(err instanceof FunctionError)) this.log(`handler failed on ${req.route} (req ${req.id}): ${err instanceof Error ? (err.stack ?? msg) : msg}`);
    if (this.closed) return;
    this.toGateway(req.d, req.routeInfo, status, `${this.fnName}: ${msg}`);
  }

  /** Sends the descriptor straight back to the gateway as an error; `message` becomes the body. */
  private toGateway(d: Desc, r: RouteInfo, status: number, message: string | null): void {
    d.flags |= DESC_FLAG_ERROR;
    d.status = status;
    d.hop = r.len;
    if (message !== null && d.bufLen <= this.bufSize && isLive(this.pool, d.bufOff, d.bufGen)) {
      const view = this.pool.bytes(d.bufOff, this.bufSize);
      d.bufLen = Buffer.from(view.buffer, view.byteOffset, view.byteLength).write(message, 0, 'utf8');
    }
    this.out.add(d, d.gwInst);
    // A failure outside a read (async handler) must still go out.
    this.scheduleFlush();
  }

  private freeAllocs(req: Req, keep: { offset: number } | null): void {
    if (!req.allocs) return;
    for (const a of req.allocs) if (a !== keep) freeQuietly(this.pool, a.offset, a.gen);
    req.allocs = null;
  }
}
