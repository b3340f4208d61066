/**
 * The packet plane seen from TypeScript: the supervisor writes its tables (chains, functions and
 * their live instances, ports) and reads its counters; `status`, `top` and metrics read the
 * counters. The data path never runs here: pktio and the function instances move frames in C
 * (docs/packet-chains.md). Layout constants: src/schema/packet-layout.ts.
 *
 * Atomics work on the pool's koffi view as on a SharedArrayBuffer (see pool.ts): the seqlock and
 * ring indexes written here are seen by the C side in the order written.
 */

import { BpfctlError } from '../../errors.ts';
import * as L from '../../schema/packet-layout.ts';
import type { Pool } from '../pool/index.ts';

export class PacketPlaneError extends BpfctlError {}

/** What the plane needs to know of a policy's packet part (a projection of the IR's PacketIR). */
export interface PlaneSpec {
  readonly functions: readonly { readonly name: string }[];
  readonly chains: readonly {
    readonly name: string;
    readonly functions: readonly number[];
    readonly egress: { readonly kind: 'drop' } | { readonly kind: 'tx'; readonly port: number };
    readonly poll: boolean;
  }[];
  readonly ports: readonly { readonly interface: string; readonly ifindex: number }[];
}

export interface PortCounters {
  readonly interface: string;
  readonly ifindex: number;
  readonly nqueues: number;
  readonly bound: boolean;
  readonly zeroCopy: boolean;
  readonly rx: bigint;
  readonly tx: bigint;
  readonly txFail: bigint;
  readonly rxDropped: bigint;
  readonly rxFillEmpty: bigint;
  readonly posted: bigint;
  readonly noChain: bigint;
  readonly rxRingFull: bigint;
  readonly lost: bigint;
}

export interface InstanceCounters {
  readonly inst: number;
  readonly pid: number;
  readonly state: L.InstState;
  readonly queued: number;
  readonly rx: bigint;
  readonly passed: bigint;
  readonly dropped: bigint;
  readonly lost: bigint;
  readonly batches: bigint;
  readonly wakeups: bigint;
  readonly reclaimed: bigint;
}

export interface PlaneSnapshot {
  readonly pktioPid: number;
  readonly ports: PortCounters[];
  readonly chains: { readonly name: string; readonly in: bigint; readonly out: bigint; readonly dropped: bigint; readonly lost: bigint }[];
  readonly functions: { readonly name: string; readonly live: number[]; readonly instances: InstanceCounters[] }[];
  /** Descriptors waiting in ring 0 (to be transmitted). */
  readonly txQueued: number;
}

const STATE_NAMES = Object.fromEntries(Object.entries(L.INST_STATE).map(([k, v]) => [v, k])) as Record<number, L.InstState>;

export class PacketPlane {
  readonly #pool: Pool;
  readonly #base: number;
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;
  readonly slots: number;
  readonly ringCount: number;

  private constructor(pool: Pool) {
    if (pool.extSize < L.RINGS_OFF) throw new PacketPlaneError('E_PACKET_PLANE', `pool ${pool.path} has no packet plane (extension area of ${pool.extSize} bytes)`);
    const buf = pool.mapping();
    this.#pool = pool;
    this.#base = pool.extOffset;
    this.#u8 = new Uint8Array(buf, pool.extOffset, pool.extSize);
    this.#u16 = new Uint16Array(buf, pool.extOffset, pool.extSize >>> 1);
    this.#u32 = new Uint32Array(buf, pool.extOffset, pool.extSize >>> 2);
    this.#u64 = new BigUint64Array(buf, pool.extOffset, pool.extSize >>> 3);
    this.slots = this.#u32[L.HDR.ringSlots / 4]!;
    this.ringCount = this.#u32[L.HDR.ringCount / 4]!;
  }

  /** Extension bytes a pool needs for a plane with `nfns` functions. */
  static sizeFor(nfns: number, slots = L.RING_SLOTS): number {
    return L.planeSize(nfns, slots);
  }

  /**
   * Lay out a fresh plane in `pool` (created with `extSize >= sizeFor(...)`) for `spec`: header,
   * tables, every ring empty. The magic is written last, so a reader that sees it sees the rest.
   */
  static init(pool: Pool, spec: PlaneSpec, slots = L.RING_SLOTS): PacketPlane {
    checkSpec(spec);
    if ((slots & (slots - 1)) !== 0 || slots < 64) throw new PacketPlaneError('E_PACKET_PLANE', `ring slots must be a power of two >= 64, got ${slots}`);
    const need = L.planeSize(spec.functions.length, slots);
    if (pool.extSize < need) throw new PacketPlaneError('E_PACKET_PLANE', `pool ${pool.path}: packet plane needs ${need} bytes, the extension area has ${pool.extSize}`);
    const u32 = new Uint32Array(pool.mapping(), pool.extOffset, need >>> 2);
    u32.fill(0);
    u32[L.HDR.version / 4] = L.VERSION;
    u32[L.HDR.ringSlots / 4] = slots;
    u32[L.HDR.ringCount / 4] = 1 + spec.functions.length * L.MAX_INST;
    u32[L.HDR.ringOff / 4] = L.RINGS_OFF;
    u32[L.HDR.ringStride / 4] = L.ringStride(slots);
    u32[L.HDR.nchains / 4] = spec.chains.length;
    u32[L.HDR.nfns / 4] = spec.functions.length;
    u32[L.HDR.nports / 4] = spec.ports.length;
    const plane = new PacketPlane(pool);
    plane.#initRings();
    spec.functions.forEach((f, i) => {
      plane.#putName(L.FNS_OFF + i * L.FN_SIZE + L.FN.name, f.name, L.NAME_LEN);
    });
    spec.chains.forEach((c, i) => {
      plane.#writeChain(i, c);
    });
    spec.ports.forEach((p, i) => {
      const o = L.PORTS_OFF + i * L.PORT_SIZE;
      plane.#u32[(o + L.PORT.ifindex) / 4] = p.ifindex;
      plane.#putName(o + L.PORT.ifname, p.interface, L.IFNAME_LEN);
    });
    Atomics.store(plane.#u32, L.HDR.magic / 4, L.MAGIC);
    return plane;
  }

  /** The plane of a pool another process initialised. E_PACKET_PLANE when there is none. */
  static open(pool: Pool): PacketPlane {
    const plane = new PacketPlane(pool);
    const magic = Atomics.load(plane.#u32, L.HDR.magic / 4);
    const version = plane.#u32[L.HDR.version / 4];
    if (magic !== L.MAGIC || version !== L.VERSION) {
      throw new PacketPlaneError('E_PACKET_PLANE', `pool ${pool.path}: no packet plane (magic 0x${magic.toString(16)}, version ${version}; this bpfctl speaks ${L.VERSION})`);
    }
    return plane;
  }

  get nfns(): number {
    return this.#u32[L.HDR.nfns / 4]!;
  }

  set pktioPid(pid: number) {
    Atomics.store(this.#u32, L.HDR.pktioPid / 4, pid);
  }

  /** Rewrite one chain (a live steering change that keeps its id). */
  writeChain(id: number, c: PlaneSpec['chains'][number]): void {
    this.#writeChain(id, c);
  }

  /**
   * Publish which instance rings of function `fn` take new frames, under the function's seqlock:
   * producers read the list once per batch and retry while `seq` is odd or moved.
   */
  setLive(fn: number, insts: readonly number[]): void {
    if (insts.length > L.MAX_INST) throw new PacketPlaneError('E_PACKET_PLANE', `function ${fn}: ${insts.length} live instances, at most ${L.MAX_INST}`);
    const o = L.FNS_OFF + fn * L.FN_SIZE;
    const seqIdx = (o + L.FN.seq) / 4;
    Atomics.add(this.#u32, seqIdx, 1); // odd: writing
    for (let i = 0; i < insts.length; i++) Atomics.store(this.#u16, (o + L.FN.liveRing) / 2 + i, L.ringOf(fn, insts[i]!));
    Atomics.store(this.#u32, (o + L.FN.nlive) / 4, insts.length);
    Atomics.add(this.#u32, seqIdx, 1); // even: done
  }

  /** Record an instance's pid and state (shown by status; the C side reads only live_ring). */
  setInstance(fn: number, inst: number, pid: number, state: L.InstState): void {
    const o = L.FNS_OFF + fn * L.FN_SIZE;
    Atomics.store(this.#u32, (o + L.FN.instPid) / 4 + inst, pid);
    Atomics.store(this.#u8, o + L.FN.instState + inst, L.INST_STATE[state]);
  }

  /** Count frames an instance held when it died (reclaimed from the pool by the supervisor). */
  addReclaimed(fn: number, inst: number, n: number): void {
    if (n <= 0) return;
    Atomics.add(this.#u64, this.#instStat(fn, inst, L.INST_STATS.reclaimed) / 8, BigInt(n));
    // Which chains they were on is not known: counted plane-wide, so in-flight sums stay right.
    Atomics.add(this.#u64, L.HDR.unattributedLost / 8, BigInt(n));
  }

  /** Descriptors waiting in `ring` (producers may be adding more). */
  queued(ring: number): number {
    const r = this.#ringOff(ring);
    return Number(Atomics.load(this.#u64, (r + L.RING.tail) / 8) - Atomics.load(this.#u64, (r + L.RING.head) / 8));
  }

  /**
   * Empty `ring` as its consumer would, freeing every frame in it to the pool; returns how many.
   * Only while nothing else consumes it (its instance is gone and will not come back on it).
   */
  drainRing(ring: number): number {
    const r = this.#ringOff(ring);
    const u64 = this.#u64;
    let head = Atomics.load(u64, (r + L.RING.head) / 8);
    let n = 0;
    for (;;) {
      const slot = this.#slotOff(r, head);
      if (Atomics.load(u64, (slot + L.SLOT.seq) / 8) !== head + 1n) break;
      const addr = this.#u32[(slot + L.SLOT.desc + L.DESC.addr) / 4]!;
      const gen = this.#u32[(slot + L.SLOT.desc + L.DESC.gen) / 4]!;
      const chain = this.#u8[slot + L.SLOT.desc + L.DESC.chain]!;
      Atomics.store(u64, (slot + L.SLOT.seq) / 8, head + BigInt(this.slots));
      head++;
      Atomics.store(u64, (r + L.RING.head) / 8, head);
      try {
        this.#pool.free({ offset: this.bufferOf(addr), gen });
        n++;
        // A frame that entered a chain and leaves it here is that chain's loss.
        if (chain < this.#u32[L.HDR.nchains / 4]!) Atomics.add(u64, (L.CHAIN_STATS_OFF + chain * L.CHAIN_STATS_SIZE + L.CHAIN_STATS.lost) / 8, 1n);
        else Atomics.add(u64, L.HDR.unattributedLost / 8, 1n);
      } catch {
        // Stale or foreign: someone freed it already (a reclaim). Nothing to give back.
      }
    }
    return n;
  }

  /**
   * Positions of `ring` a producer claimed but has not published (tail moved past them, their
   * slot still says free for this lap). Normal for a moment; for good once that producer died.
   */
  holes(ring: number): bigint[] {
    const r = this.#ringOff(ring);
    const u64 = this.#u64;
    const head = Atomics.load(u64, (r + L.RING.head) / 8);
    const tail = Atomics.load(u64, (r + L.RING.tail) / 8);
    const out: bigint[] = [];
    for (let pos = head; pos < tail && pos < head + BigInt(this.slots); pos++) {
      const slot = this.#slotOff(r, pos);
      if (Atomics.load(u64, (slot + L.SLOT.seq) / 8) === pos) out.push(pos);
    }
    return out;
  }

  /**
   * Publish an empty descriptor (addr 0, chain 0xff: consumers skip it and count it lost) at each
   * of `positions` still unpublished: the writer a dead producer never was. Call it only with
   * holes seen a while ago (holes()), after a producer died. Returns how many were filled.
   */
  fillHoles(ring: number, positions: readonly bigint[]): number {
    const r = this.#ringOff(ring);
    const u64 = this.#u64;
    let n = 0;
    for (const pos of positions) {
      const slot = this.#slotOff(r, pos);
      if (Atomics.load(u64, (slot + L.SLOT.seq) / 8) !== pos) continue;
      const d = slot + L.SLOT.desc;
      this.#u32[(d + L.DESC.addr) / 4] = 0;
      this.#u32[(d + L.DESC.gen) / 4] = 0;
      this.#u16[(d + L.DESC.len) / 2] = 0;
      this.#u16[(d + L.DESC.hash) / 2] = 0;
      this.#u8[d + L.DESC.chain] = 0xff;
      this.#u8[d + L.DESC.hop] = 0;
      this.#u8[d + L.DESC.port] = 0;
      this.#u8[d + L.DESC.flags] = 0;
      Atomics.store(u64, (slot + L.SLOT.seq) / 8, pos + 1n);
      n++;
    }
    return n;
  }

  /** The pool offset of the buffer holding the frame at `addr`. */
  bufferOf(addr: number): number {
    const p = this.#pool;
    return p.dataOffset + Math.floor((addr - p.dataOffset) / p.bufferSize) * p.bufferSize;
  }

  snapshot(): PlaneSnapshot {
    const u32 = this.#u32;
    const u64 = this.#u64;
    const q = (off: number) => Atomics.load(u64, off / 8);
    const nports = u32[L.HDR.nports / 4]!;
    const nchains = u32[L.HDR.nchains / 4]!;
    const ports: PortCounters[] = [];
    for (let i = 0; i < nports; i++) {
      const o = L.PORTS_OFF + i * L.PORT_SIZE;
      const flags = Atomics.load(u32, (o + L.PORT.flags) / 4);
      ports.push({
        interface: this.#getName(o + L.PORT.ifname, L.IFNAME_LEN),
        ifindex: u32[(o + L.PORT.ifindex) / 4]!,
        nqueues: Atomics.load(u32, (o + L.PORT.nqueues) / 4),
        bound: (flags & L.PORT_BOUND) !== 0,
        zeroCopy: (flags & L.PORT_ZEROCOPY) !== 0,
        rx: q(o + L.PORT.rx),
        tx: q(o + L.PORT.tx),
        txFail: q(o + L.PORT.txFail),
        rxDropped: q(o + L.PORT.rxDropped),
        rxFillEmpty: q(o + L.PORT.rxFillEmpty),
        posted: q(o + L.PORT.posted),
        noChain: q(o + L.PORT.noChain),
        rxRingFull: q(o + L.PORT.rxRingFull),
        lost: q(o + L.PORT.lost),
      });
    }
    const chains = [];
    for (let i = 0; i < nchains; i++) {
      const s = L.CHAIN_STATS_OFF + i * L.CHAIN_STATS_SIZE;
      chains.push({
        name: this.#getName(L.CHAINS_OFF + i * L.CHAIN_SIZE + L.CHAIN.name, L.NAME_LEN),
        in: q(s + L.CHAIN_STATS.in),
        out: q(s + L.CHAIN_STATS.out),
        dropped: q(s + L.CHAIN_STATS.dropped),
        lost: q(s + L.CHAIN_STATS.lost),
      });
    }
    const functions = [];
    for (let f = 0; f < this.nfns; f++) {
      const o = L.FNS_OFF + f * L.FN_SIZE;
      const nlive = Atomics.load(u32, (o + L.FN.nlive) / 4);
      const live: number[] = [];
      for (let i = 0; i < nlive; i++) live.push((Atomics.load(this.#u16, (o + L.FN.liveRing) / 2 + i) - 1 - f * L.MAX_INST) | 0);
      const instances: InstanceCounters[] = [];
      for (let i = 0; i < L.MAX_INST; i++) {
        const state = STATE_NAMES[Atomics.load(this.#u8, o + L.FN.instState + i)] ?? 'empty';
        const s = this.#instStat(f, i, 0);
        const rx = q(s + L.INST_STATS.rx);
        if (state === 'empty' && rx === 0n && q(s + L.INST_STATS.reclaimed) === 0n) continue;
        instances.push({
          inst: i,
          pid: Atomics.load(u32, (o + L.FN.instPid) / 4 + i),
          state,
          queued: this.queued(L.ringOf(f, i)),
          rx,
          passed: q(s + L.INST_STATS.passed),
          dropped: q(s + L.INST_STATS.dropped),
          lost: q(s + L.INST_STATS.lost),
          batches: q(s + L.INST_STATS.batches),
          wakeups: q(s + L.INST_STATS.wakeups),
          reclaimed: q(s + L.INST_STATS.reclaimed),
        });
      }
      functions.push({ name: this.#getName(o + L.FN.name, L.NAME_LEN), live, instances });
    }
    return { pktioPid: Atomics.load(u32, L.HDR.pktioPid / 4), ports, chains, functions, txQueued: this.queued(0) };
  }

  /** Absolute pool offset of the plane (for processes told where it is). */
  get offset(): number {
    return this.#base;
  }

  #writeChain(id: number, c: PlaneSpec['chains'][number]): void {
    const o = L.CHAINS_OFF + id * L.CHAIN_SIZE;
    const u8 = this.#u8;
    // A chain is rewritten only while nothing is steered to it or by a whole-byte store per field;
    // pktio and the instances read nhops first and never index past MAX_HOPS.
    for (let i = 0; i < c.functions.length; i++) Atomics.store(u8, o + L.CHAIN.hops + i, c.functions[i]!);
    Atomics.store(u8, o + L.CHAIN.egressKind, c.egress.kind === 'tx' ? L.EGRESS_TX : L.EGRESS_DROP);
    Atomics.store(u8, o + L.CHAIN.egressPort, c.egress.kind === 'tx' ? c.egress.port : 0);
    Atomics.store(u8, o + L.CHAIN.flags, c.poll ? L.CHAIN_POLL : 0);
    Atomics.store(u8, o + L.CHAIN.nhops, c.functions.length);
    this.#putName(o + L.CHAIN.name, c.name, L.NAME_LEN);
  }

  #initRings(): void {
    const u64 = this.#u64;
    const stride = L.ringStride(this.slots);
    for (let r = 0; r < this.ringCount; r++) {
      const base = (L.RINGS_OFF + r * stride + L.RING_HEADER) / 8;
      for (let i = 0; i < this.slots; i++) u64[base + i * (L.SLOT_SIZE / 8)] = BigInt(i);
    }
  }

  #ringOff(ring: number): number {
    if (!Number.isInteger(ring) || ring < 0 || ring >= this.ringCount) throw new PacketPlaneError('E_PACKET_PLANE', `no ring ${ring} (the plane has ${this.ringCount})`);
    return L.RINGS_OFF + ring * L.ringStride(this.slots);
  }

  /** Plane offset of the slot for position `pos` of the ring at plane offset `r`. */
  #slotOff(r: number, pos: bigint): number {
    return r + L.RING_HEADER + Number(pos & BigInt(this.slots - 1)) * L.SLOT_SIZE;
  }

  #instStat(fn: number, inst: number, field: number): number {
    return L.INST_STATS_OFF + (fn * L.MAX_INST + inst) * L.INST_STATS_SIZE + field;
  }

  #putName(off: number, name: string, len: number): void {
    const bytes = new TextEncoder().encode(name);
    this.#u8.fill(0, off, off + len);
    this.#u8.set(bytes.subarray(0, len - 1), off);
  }

  #getName(off: number, len: number): string {
    const b = this.#u8.subarray(off, off + len);
    const end = b.indexOf(0);
    return new TextDecoder().decode(b.subarray(0, end < 0 ? len : end));
  }
}

function checkSpec(spec: PlaneSpec): void {
  const bad = (why: string) => new PacketPlaneError('E_PACKET_PLANE', why);
  if (spec.functions.length > L.MAX_FNS) throw bad(`${spec.functions.length} packet functions, at most ${L.MAX_FNS}`);
  if (spec.chains.length > L.MAX_CHAINS) throw bad(`${spec.chains.length} packet chains, at most ${L.MAX_CHAINS}`);
  if (spec.ports.length > L.MAX_PORTS) throw bad(`${spec.ports.length} ports, at most ${L.MAX_PORTS}`);
  for (const c of spec.chains) {
    if (c.functions.length > L.MAX_HOPS) throw bad(`chain ${c.name}: ${c.functions.length} functions, at most ${L.MAX_HOPS}`);
    if (c.functions.some((f) => f < 0 || f >= spec.functions.length)) throw bad(`chain ${c.name}: function id out of range`);
    if (c.egress.kind === 'tx' && (c.egress.port < 0 || c.egress.port >= spec.ports.length)) throw bad(`chain ${c.name}: egress port out of range`);
  }
}
