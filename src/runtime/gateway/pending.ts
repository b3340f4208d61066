/**
 * The gateway's requests in the chain, by request id: no Map and no object per request.
 *
 * Why not a Map: under load (bench/chain, c=16) a `Map<number, Pending>` with one set and one
 * delete per request kept the gateway's young generation from ever emptying: 2-2.5 MB promoted
 * at every scavenge (99% of what survived the one before), 6-13 ms scavenges where the same
 * server without it has 0.5 ms, and a mark-compact every few seconds; those pauses were the
 * gateway's p99. V8 replaces a map's hash table every few dozen deletes, and an obsolete table
 * keeps a pointer to its successor (for iterators) and the entries it held. Once one table is in
 * the old generation (any full GC promotes what is live), the scavenger keeps every successor,
 * and the requests and responses in it, alive through that pointer, and each promoted successor
 * does the same for the next. A plain script shows it: 16 live entries, set/delete per item, a table
 * in old space first: 4 MB promoted per scavenge and 17 ms pauses, against 8 KB and 0.3 ms for
 * an array indexed by id.
 *
 * Records are made once (lazily, at most one per slot) and recycled. A request id names its slot
 * (`id & mask`), so a lookup is one array load and an id compare, and a reply for a request that
 * was answered already (timeout, instance death) finds the slot free or holding another id. Ids
 * stay sequential, as the kernel picks an instance by `req_id % count` and clustered ids would
 * pile onto one instance; an id whose slot is still taken is skipped. Pending records are also
 * linked in the order they were taken: with one timeout for every request that is deadline order,
 * so expiry walks from the oldest and stops at the first still in time.
 */
import type http from 'node:http';
import { RouteEntry } from '../route-table.ts';
import { DescRecord } from '../sdk/wire.ts';

/** Route of a free record: keeps the field's type, and so the record's hidden class, fixed. */
const NO_ROUTE = new RouteEntry(0, '', 0, [], 0, 0);

export class PendingRequest {
  /** The request id (also `d.reqId`). */
  id = 0;
  busy = false;
  res: http.ServerResponse | null = null;
  /** HEAD: answered with the headers of the GET answer only. */
  head = false;
  /** Date.now() by which the reply must have come. */
  deadline = 0;
  /** performance.now() when it went into the chain (the latency histogram). */
  t0 = 0;
  /** The route version it was sent on (a later route change does not move it). */
  route: RouteEntry = NO_ROUTE;
  /** The descriptor as sent (hop 0): its buffer (bufOff, bufGen) is the request's. */
  readonly d = new DescRecord();
  prev: PendingRequest | null = null;
  next: PendingRequest | null = null;
}

export class PendingTable {
  private readonly slots: (PendingRequest | null)[];
  private readonly mask: number;
  private nextId = 1;
  private oldest: PendingRequest | null = null;
  private newest: PendingRequest | null = null;
  size = 0;

  /** Room for `maxInFlight` requests at once, in twice as many slots (a free id is always near). */
  constructor(readonly maxInFlight: number) {
    let n = 16;
    while (n < 2 * maxInFlight && n < 1 << 30) n *= 2;
    this.slots = new Array<PendingRequest | null>(n).fill(null);
    this.mask = n - 1;
  }

  /** A record with a fresh id, now the newest; null when maxInFlight requests are pending. */
  take(): PendingRequest | null {
    if (this.size >= this.maxInFlight) return null;
    let id = this.nextId;
    let r = this.slots[id & this.mask] ?? null;
    // Fewer than half of the slots are taken, so this ends within a few steps.
    while (r?.busy) {
      id = (id + 1) >>> 0;
      r = this.slots[id & this.mask] ?? null;
    }
    if (r === null) {
      r = new PendingRequest();
      this.slots[id & this.mask] = r;
    }
    this.nextId = (id + 1) >>> 0;
    r.id = id;
    r.d.reqId = id;
    r.busy = true;
    r.prev = this.newest;
    r.next = null;
    if (this.newest !== null) this.newest.next = r;
    else this.oldest = r;
    this.newest = r;
    this.size++;
    return r;
  }

  /** The pending request with this id, or null (answered already, or never sent). */
  get(id: number): PendingRequest | null {
    const r = this.slots[id & this.mask];
    return r?.busy && r.id === id ? r : null;
  }

  /** The oldest pending request (the first deadline), or null. */
  first(): PendingRequest | null {
    return this.oldest;
  }

  /** Gives the record back; it must not be used after this (it will carry another request). */
  release(r: PendingRequest): void {
    if (!r.busy) return;
    r.busy = false;
    r.res = null;
    r.route = NO_ROUTE;
    if (r.prev !== null) r.prev.next = r.next;
    else this.oldest = r.next;
    if (r.next !== null) r.next.prev = r.prev;
    else this.newest = r.prev;
    r.prev = null;
    r.next = null;
    this.size--;
  }
}
