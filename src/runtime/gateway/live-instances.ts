/**
 * How many live instances each function has, read from the `instances` map. A lookup is a
 * syscall (~2 us from Node); a route of three functions checked on every request would cost more
 * than the rest of the gateway's work, so counts are cached for a few milliseconds: a function
 * that loses its last instance is noticed within that window (requests caught in it time out in
 * the kernel's "no live instance" drop rather than getting a 503).
 */

export interface InstancesMap {
  lookup(key: Uint8Array): Uint8Array | null;
}

export class LiveInstances {
  private readonly counts: number[] = [];
  private readonly stamps: number[] = [];
  private readonly key = new Uint8Array(4);
  private readonly keyView = new DataView(this.key.buffer);

  constructor(
    private readonly map: InstancesMap | null,
    private readonly fallback: (fnId: number) => number,
    private readonly cacheMs: number,
  ) {}

  count(fnId: number, now: number): number {
    if (!this.map) return this.fallback(fnId);
    const stamp = this.stamps[fnId];
    if (stamp !== undefined && now - stamp < this.cacheMs) return this.counts[fnId]!;
    this.keyView.setUint32(0, fnId, true);
    let n = 0;
    try {
      const v = this.map.lookup(this.key);
      // struct bpfctl_instances { __u32 count; ... }
      if (v && v.byteLength >= 4) n = new DataView(v.buffer, v.byteOffset, 4).getUint32(0, true);
    } catch {
      n = 0;
    }
    this.counts[fnId] = n;
    this.stamps[fnId] = now;
    return n;
  }

  invalidate(): void {
    this.stamps.length = 0;
  }
}
