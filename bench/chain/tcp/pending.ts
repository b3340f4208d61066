/**
 * The tcp gateway's requests waiting for their reply, by request id: an array indexed by id, as
 * bpfctl's gateway keeps them (src/runtime/gateway/pending.ts says why not a Map: a Map with a
 * set and a delete per request can make every scavenge promote what its values hold, and the
 * pauses become the p99). The baseline gets the same care, so the two do not differ in that.
 *
 * Ids are sequential and share one timeout, so the oldest pending id has the first deadline:
 * expiry walks ids from the oldest and stops at the first still in time.
 */
export class PendingRing<T> {
  private readonly vals: (T | null)[];
  private readonly ids: number[];
  private readonly deadlines: number[];
  private readonly mask: number;
  private nextId = 1;
  /** No id below this one is pending. */
  private oldest = 1;
  size = 0;

  /** `slots` (a power of two) bounds the requests pending at once. */
  constructor(slots = 1 << 16) {
    this.vals = new Array<T | null>(slots).fill(null);
    this.ids = new Array<number>(slots).fill(0);
    this.deadlines = new Array<number>(slots).fill(0);
    this.mask = slots - 1;
  }

  /** A new id for `v`, or -1 when its slot is still taken (that many requests pending). */
  add(v: T, deadline: number): number {
    const id = this.nextId;
    const i = id & this.mask;
    if (this.vals[i] !== null) return -1;
    this.nextId = (id + 1) >>> 0 || 1;
    this.vals[i] = v;
    this.ids[i] = id;
    this.deadlines[i] = deadline;
    this.size++;
    return id;
  }

  /** Removes and returns the value pending under `id` (null: answered already, or unknown). */
  take(id: number): T | null {
    const i = id & this.mask;
    const v = this.vals[i]!;
    if (v === null || this.ids[i] !== id) return null;
    this.vals[i] = null;
    this.size--;
    return v;
  }

  /** Removes the values whose deadline passed, oldest first, and hands each to `f`. */
  expire(now: number, f: (v: T) => void): void {
    while (this.oldest !== this.nextId) {
      const i = this.oldest & this.mask;
      const v = this.vals[i]!;
      if (v !== null && this.ids[i] === this.oldest) {
        if (this.deadlines[i]! > now) return;
        this.vals[i] = null;
        this.size--;
        f(v);
      }
      this.oldest = (this.oldest + 1) >>> 0 || 1;
    }
  }
}
