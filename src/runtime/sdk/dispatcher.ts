/**
 * The heart of a function instance, independent of sockets: takes descriptors in, runs the
 * handler on each, and queues the descriptor for the next hop. Bounds the handlers running at once
 * (sk_msg ingress has no backpressure, gotcha 5: the kernel never stops delivering, so the bound
 * is enforced here and excess work waits in a FIFO, then is shed with 503) and guarantees every
 * buffer a request touched is either sent on or freed, whatever the handler does.
 *
 * The per-descriptor path allocates nothing in the steady state: every hop of every request goes
 * through here, and at a few hundred thousand descriptors a second the garbage and the
 * megamorphic loads of one fresh object per descriptor cost more than the sk_msg redirect. So a
 * request record (the Request the handler sees, with the descriptor inside) is taken from a free
 * list when its descriptor is read and goes back once its descriptor has been encoded for the
 * next hop (or dropped); pool views come from a per-buffer cache (PoolAccess).
 */
import { Buffer } from 'node:buffer';
import { RouteEntry, type RouteView } from '../route-table.ts';
import { adopt, freeQuietly, PoolAccess, type RuntimePool } from './pool-api.ts';
import { FunctionError, type Handler, type HandlerResult, type Request } from './types.ts';
import { bounce, canBounce, DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF, DESC_SIZE, DescRecord, FrameCutter, readDescInto, writeDesc } from './wire.ts';

export interface DispatcherOptions {
  pool: RuntimePool;
  /** Capacity of one pool buffer (policy pool.bufferSize). */
  bufSize: number;
  handler: Handler;
  fnId: number;
  fnName: string;
  instance: number;
  /** The live routes: each descriptor's hop is checked against the version its slot holds. */
  routes: RouteView;
  /** Owner recorded on buffers this instance allocates (its pid: reclaimed if it dies). */
  owner: number;
  /** Handlers running at once; more wait in the queue. */
  maxInFlight: number;
  /** Waiting requests beyond which new ones fail fast with 503. */
  maxQueue: number;
  /**
   * Writes one batch of `count` descriptors. Returns true when `bytes` is no longer referenced
   * once it returns (written to the kernel synchronously, or dropped): the dispatcher then reuses
   * it for a later batch of the same size. Anything else leaves the buffer to the callee.
   */
  send(bytes: Buffer, count: number): boolean | undefined;
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

/** Placeholder for records not bound to a route (keeps the field's type a RouteEntry). */
const NO_ROUTE = new RouteEntry(0, '', 0, [], 0, 0);

class Alloc {
  constructor(
    readonly view: Uint8Array,
    readonly offset: number,
    readonly gen: number,
  ) {}
}

/** Largest batch (in descriptors) whose buffer is kept for reuse. */
const MAX_SPARE_BATCH = 64;

/** Free request records kept for reuse; beyond this (after a burst) they are left to the GC. */
const MAX_FREE_RECORDS = 4096;

const utf8 = new TextDecoder();
const utf8Out = new TextEncoder();

/**
 * One request at one hop, recycled: valid from the read of its descriptor until that descriptor
 * is encoded for the next hop, which happens only after the handler's result settled (the
 * Request contract: nothing of it may be used after that).
 */
class Req implements Request {
  readonly d = new DescRecord();
  routeInfo: RouteEntry = NO_ROUTE;
  allocs: Alloc[] | null = null;
  /** Pool index of `d.bufOff` (PoolAccess.indexOf), computed once per descriptor in accept. */
  idx = -1;
  /** Taken from the free list and not yet given back (guards against releasing twice). */
  busy = false;
  next: Req | null = null;
  // Made once per record, not once per async request: a record is given back only after its
  // handler's promise settled, and a native promise settles once, so a callback can never
  // reach a record that has been reused.
  readonly onSettled: (v: HandlerResult) => void;
  readonly onFailed: (err: unknown) => void;

  constructor(private readonly rt: Dispatcher) {
    this.onSettled = (v) => rt.settled(this, v);
    this.onFailed = (err) => rt.failed(this, err);
  }

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
    return this.rt.mem.bodyAt(this.idx, this.d.bufOff, this.d.bufLen);
  }
  get buffer(): Uint8Array {
    return this.rt.mem.bufferAt(this.idx, this.d.bufOff);
  }
  text(): string {
    return utf8.decode(this.body);
  }
  alloc(n: number): Uint8Array {
    const rt = this.rt;
    if (!Number.isInteger(n) || n < 0 || n > rt.bufSize) throw new FunctionError(413, `alloc(${n}): buffers hold at most ${rt.bufSize} bytes`);
    const b = rt.pool.alloc(rt.owner);
    if (!b) throw new FunctionError(503, 'pool exhausted');
    // A view of its own (not the per-buffer cache): complete() recognises the returned view by it.
    const view = rt.pool.bytes(b.offset, n);
    if (!this.allocs) this.allocs = [];
    this.allocs.push(new Alloc(view, b.offset, b.gen));
    return view;
  }
}

export class Dispatcher {
  readonly pool: RuntimePool;
  /** Cached pool views and the allocation-free stale check. */
  readonly mem: PoolAccess;
  readonly bufSize: number;
  readonly fnName: string;
  readonly instance: number;
  readonly owner: number;
  private readonly fnId: number;
  private readonly handler: Handler;
  private readonly routes: RouteView;
  private readonly maxInFlight: number;
  private readonly maxQueue: number;
  private readonly sendBatch: (bytes: Buffer, count: number) => boolean | undefined;
  private readonly log: (msg: string) => void;
  private readonly frames: FrameCutter;
  private free: Req | null = null;
  private freeCount = 0;
  // The outgoing batch: records and their destinations, arrays reused from flush to flush.
  private outReqs: Req[] = [];
  private outKeys: number[] = [];
  private outN = 0;
  private readonly keyOrder: number[] = [];
  // Batch buffers the link gave back, by descriptor count: a fresh Buffer per write costs an
  // object, and every few hundred writes a new 8 KiB slab, which together showed as ~4% of a
  // function's CPU.
  private readonly spare: (Buffer | null)[] = new Array<Buffer | null>(MAX_SPARE_BATCH + 1).fill(null);
  // A FIFO as an array plus a head index: shift() is O(n) on long queues.
  private queue: Req[] = [];
  private qHead = 0;
  private inFlight = 0;
  private flushScheduled = false;
  private held = false;
  private closed = false;
  readonly counters = { received: 0, completed: 0, failed: 0, shed: 0, stale: 0, misrouted: 0, batches: 0 };

  constructor(o: DispatcherOptions) {
    this.pool = o.pool;
    this.mem = new PoolAccess(o.pool);
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
    this.routes = o.routes;
    this.frames = new FrameCutter(this.onFrame);
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
    // The pool is closed next: from now on views come from the pool, which refuses once closed.
    this.mem.close();
  }

  /** Bytes from the socket (`chunk` may be reused once this returns). Call `flush()` after a read. */
  push(chunk: Buffer, len: number): void {
    this.frames.push(chunk, len);
  }

  /** Forgets a partial descriptor (the connection it came from is gone). */
  resetFraming(): void {
    this.frames.reset();
  }

  private readonly onFrame = (b: Buffer, at: number): void => {
    let req = this.free;
    if (req !== null) {
      this.free = req.next;
      req.next = null;
      this.freeCount--;
    } else {
      req = new Req(this);
    }
    req.busy = true;
    readDescInto(b, at, req.d);
    this.accept(req);
  };

  private release(req: Req): void {
    if (!req.busy) return;
    req.busy = false;
    req.allocs = null;
    req.idx = -1;
    if (this.freeCount >= MAX_FREE_RECORDS) return;
    req.next = this.free;
    this.free = req;
    this.freeCount++;
  }

  /** One descriptor read into `req.d`. */
  private accept(req: Req): void {
    this.counters.received++;
    const d = req.d;
    const r = this.routes.bySlot(d.route);
    if (d.flags & DESC_FLAG_DROPPED) {
      // Refused by the kernel and delivered here only because it shared a send with a
      // descriptor for us (no dead-letter socket registered): not ours to run.
      this.counters.misrouted++;
      if (r && canBounce(d, r.len)) {
        bounce(d, r.len);
        this.addOut(req, d.gwInst);
        this.scheduleFlush();
      } else {
        this.release(req);
      }
      return;
    }
    if (!r) {
      // The kernel routed it by a slot that no longer holds a route: it was freed after its
      // drain time, so this request is long answered (504) by its gateway.
      this.counters.misrouted++;
      this.log(`descriptor for unknown route ${d.route} (req ${d.reqId}) dropped`);
      this.release(req);
      return;
    }
    req.routeInfo = r;
    if (d.hop >= r.len || r.hops[d.hop] !== this.fnId) {
      this.counters.misrouted++;
      this.toGateway(req, 500, null);
      return;
    }
    // A buffer a previous hop allocated becomes ours: if that process dies now, reclaiming its
    // buffers must not pull this one from under the handler. (transfer() validates as well.)
    const idx = this.mem.indexOf(d.bufOff);
    req.idx = idx;
    const live = d.flags & DESC_FLAG_RESPONSE_NEW_BUF ? adopt(this.pool, d.bufOff, d.bufGen, this.owner) : this.mem.isLiveAt(idx, d.bufOff, d.bufGen);
    if (d.bufLen > this.bufSize || !live) {
      // A stale descriptor (its buffer was freed, e.g. the gateway timed it out): touching the
      // buffer could corrupt another request, so it goes back untouched.
      this.counters.stale++;
      this.toGateway(req, 500, null);
      return;
    }
    if (this.inFlight < this.maxInFlight) {
      this.run(req);
    } else if (this.queue.length - this.qHead < this.maxQueue) {
      this.queue.push(req);
    } else {
      this.counters.shed++;
      this.toGateway(req, 503, `${this.fnName}: overloaded`);
    }
  }

  /** Writes everything finished so far as one batch. */
  flush = (): void => {
    this.flushScheduled = false;
    const n = this.outN;
    if (this.held || this.closed || n === 0) return;
    this.counters.batches++;
    const reqs = this.outReqs;
    const keys = this.outKeys;
    let bytes = n <= MAX_SPARE_BATCH ? this.spare[n]! : null;
    if (bytes !== null) this.spare[n] = null;
    else bytes = Buffer.allocUnsafe(n * DESC_SIZE);
    const k0 = keys[0]!;
    let mixed = false;
    for (let i = 1; i < n; i++) {
      if (keys[i] !== k0) {
        mixed = true;
        break;
      }
    }
    if (!mixed) {
      for (let i = 0; i < n; i++) writeDesc(bytes, i * DESC_SIZE, reqs[i]!.d);
    } else {
      // Descriptors for one destination next to each other (the kernel judges runs of them),
      // destinations in order of first appearance, each in arrival order. Destinations per
      // batch are few (next hops, gateway instances), so a scan per destination beats a Map.
      const order = this.keyOrder;
      order.length = 0;
      for (let i = 0; i < n; i++) if (!order.includes(keys[i]!)) order.push(keys[i]!);
      let at = 0;
      for (const k of order) {
        for (let i = 0; i < n; i++) {
          if (keys[i] !== k) continue;
          writeDesc(bytes, at, reqs[i]!.d);
          at += DESC_SIZE;
        }
      }
    }
    this.outN = 0;
    for (let i = 0; i < n; i++) this.release(reqs[i]!);
    // Unless the link says the write is done with it, socket.write may still hold on to it.
    if (this.sendBatch(bytes, n) === true && n <= MAX_SPARE_BATCH) this.spare[n] = bytes;
  };

  private addOut(req: Req, dest: number): void {
    const n = this.outN;
    if (n === this.outReqs.length) {
      this.outReqs.push(req);
      this.outKeys.push(dest);
    } else {
      this.outReqs[n] = req;
      this.outKeys[n] = dest;
    }
    this.outN = n + 1;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate: every handler that settles in this turn of the loop joins one write.
    setImmediate(this.flush);
  }

  private run(req: Req): void {
    this.inFlight++;
    let result: HandlerResult | Promise<HandlerResult>;
    try {
      result = this.handler(req);
    } catch (err) {
      this.fail(req, err);
      this.done();
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<HandlerResult>).then === 'function') {
      // Promise.resolve: a native promise as is; any other thenable wrapped in one, so the
      // record's callbacks run at most once whatever the thenable does.
      Promise.resolve(result as Promise<HandlerResult>).then(req.onSettled, req.onFailed);
      return;
    }
    this.complete(req, result as HandlerResult);
    this.done();
  }

  /** An async handler's result (Req.onSettled). */
  settled(req: Req, v: HandlerResult): void {
    this.complete(req, v);
    this.done();
    this.scheduleFlush();
  }

  /** An async handler's failure (Req.onFailed). */
  failed(req: Req, err: unknown): void {
    this.fail(req, err);
    this.done();
    this.scheduleFlush();
  }

  private done(): void {
    this.inFlight--;
    while (this.inFlight < this.maxInFlight && this.qHead < this.queue.length) {
      const req = this.queue[this.qHead]!;
      this.queue[this.qHead++] = undefined as unknown as Req;
      if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.qHead);
        this.qHead = 0;
      }
      const d = req.d;
      // The buffer may have been freed while the descriptor waited (gateway timeout).
      if (!this.mem.isLiveAt(req.idx, d.bufOff, d.bufGen)) {
        this.counters.stale++;
        this.toGateway(req, 500, null);
        continue;
      }
      this.run(req);
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
      this.release(req);
      return;
    }
    if (!this.mem.isLiveAt(req.idx, d.bufOff, d.bufGen)) {
      // The gateway gave up on the request while the handler ran (timeout) and freed its buffer,
      // which may already carry another request: write nothing, send nothing.
      this.counters.stale++;
      this.freeAllocs(req, null);
      this.release(req);
      return;
    }
    let len: number;
    let fresh: Alloc | null = null;
    try {
      if (v === undefined || v === null) {
        len = d.bufLen;
      } else if (typeof v === 'number') {
        if (!Number.isInteger(v) || v < 0 || v > this.bufSize) throw new Error(`handler returned length ${v} (buffer holds ${this.bufSize})`);
        len = v;
      } else if (typeof v === 'string') {
        // encodeInto stops silently at the end of the buffer: check first so a too-long reply
        // is an error, not a cut one.
        const need = Buffer.byteLength(v, 'utf8');
        if (need > this.bufSize) throw new FunctionError(500, `response of ${need} bytes exceeds the ${this.bufSize}-byte buffer`);
        len = utf8Out.encodeInto(v, this.mem.bufferAt(req.idx, d.bufOff)).written;
      } else if (v instanceof Uint8Array) {
        const allocs = req.allocs;
        if (allocs) {
          for (const a of allocs) {
            if (a.view.buffer === v.buffer && a.view.byteOffset === v.byteOffset) {
              fresh = a;
              break;
            }
          }
        }
        if (fresh) {
          len = v.byteLength;
        } else {
          const buf = this.mem.bufferAt(req.idx, d.bufOff);
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
    this.addOut(req, d.hop >= r.len ? d.gwInst : 0x10000 + (r.hops[d.hop]! << 8) + d.route);
  }

  private fail(req: Req, err: unknown): void {
    this.counters.failed++;
    this.freeAllocs(req, null);
    const status = err instanceof FunctionError ? err.status : 500;
    const msg = err instanceof Error ? err.message : String(err);
    if (!(err instanceof FunctionError)) this.log(`handler failed on ${req.route} (req ${req.id}): ${err instanceof Error ? (err.stack ?? msg) : msg}`);
    if (this.closed) {
      this.release(req);
      return;
    }
    this.toGateway(req, status, `${this.fnName}: ${msg}`);
  }

  /** Sends the descriptor straight back to the gateway as an error; `message` becomes the body. */
  private toGateway(req: Req, status: number, message: string | null): void {
    const d = req.d;
    d.flags |= DESC_FLAG_ERROR;
    d.status = status;
    d.hop = req.routeInfo.len;
    if (message !== null && d.bufLen <= this.bufSize && this.mem.isLive(d.bufOff, d.bufGen)) {
      const view = this.mem.buffer(d.bufOff);
      d.bufLen = Buffer.from(view.buffer, view.byteOffset, view.byteLength).write(message, 0, 'utf8');
    }
    this.addOut(req, d.gwInst);
    // A failure outside a read (async handler) must still go out.
    this.scheduleFlush();
  }

  private freeAllocs(req: Req, keep: Alloc | null): void {
    const allocs = req.allocs;
    if (!allocs) return;
    for (const a of allocs) if (a !== keep) freeQuietly(this.pool, a.offset, a.gen);
    req.allocs = null;
  }
}
