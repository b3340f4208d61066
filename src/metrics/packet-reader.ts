/**
 * The packet plane of a policy's pool (docs/packet-chains.md): per chain, per packet function
 * instance and per AF_XDP port counters, read from the pool file at one moment. The pool is found
 * as pool-reader.ts finds it (by name) and unmapped after the reading. A pool without a plane (a
 * policy with request chains only) has no packet numbers.
 */
import { Pool } from '../runtime/pool/index.ts';
import { PacketPlane } from '../runtime/packet/plane.ts';

export interface PacketPortReading {
  interface: string;
  /** `zero-copy`, `copy`, or `unbound` (pktio has not bound its sockets yet, or is restarting). */
  mode: 'zero-copy' | 'copy' | 'unbound';
  queues: number;
  rx: number;
  tx: number;
  txFail: number;
  noChain: number;
  lost: number;
  /** The kernel's XDP_STATISTICS of the port's sockets, by reason. */
  kernelDrops: { reason: 'rx_dropped' | 'rx_ring_full' | 'rx_fill_empty'; count: number }[];
  posted: number;
}

export interface PacketInstanceReading {
  instance: number;
  /** In the function's live list: producers hand it new frames. */
  live: boolean;
  queued: number;
  rx: number;
  passed: number;
  dropped: number;
  lost: number;
  reclaimed: number;
  batches: number;
  wakeups: number;
}

export interface PacketReading {
  /** pktio runs: the plane names its pid and that process exists. */
  pktioUp: boolean;
  /** Descriptors waiting in ring 0 for pktio's transmit thread. */
  txQueued: number;
  chains: { name: string; in: number; out: number; dropped: number; lost: number }[];
  functions: { name: string; live: number; instances: PacketInstanceReading[] }[];
  ports: PacketPortReading[];
}

/** Whether `pid` names a process (EPERM: it exists, owned by someone else). */
function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The plane of pool `name`; null when the pool does not exist or has no plane, or while its plane
 * is being laid out (the magic is written last). @throws PoolError on a broken file,
 * PacketPlaneError for a plane of another layout version (a bpfctl of another version made it)
 */
export function readPacket(name: string): PacketReading | null {
  let pool: Pool;
  try {
    pool = Pool.open(name);
  } catch (err) {
    if ((err as { code?: string }).code === 'E_POOL_NOENT') return null;
    throw err;
  }
  try {
    if (pool.extSize === 0) return null;
    if (new Uint32Array(pool.mapping(), pool.extOffset, 1)[0] === 0) return null;
    const s = PacketPlane.open(pool).snapshot();
    const n = Number;
    return {
      pktioUp: alive(s.pktioPid),
      txQueued: s.txQueued,
      chains: s.chains.map((c) => ({ name: c.name, in: n(c.in), out: n(c.out), dropped: n(c.dropped), lost: n(c.lost) })),
      functions: s.functions.map((f) => ({
        name: f.name,
        live: f.live.length,
        instances: f.instances.map((i) => ({
          instance: i.inst,
          live: f.live.includes(i.inst),
          queued: i.queued,
          rx: n(i.rx),
          passed: n(i.passed),
          dropped: n(i.dropped),
          lost: n(i.lost),
          reclaimed: n(i.reclaimed),
          batches: n(i.batches),
          wakeups: n(i.wakeups),
        })),
      })),
      ports: s.ports.map((p) => ({
        interface: p.interface,
        mode: p.bound ? (p.zeroCopy ? 'zero-copy' : 'copy') : 'unbound',
        queues: p.nqueues,
        rx: n(p.rx),
        tx: n(p.tx),
        txFail: n(p.txFail),
        noChain: n(p.noChain),
        lost: n(p.lost),
        kernelDrops: [
          { reason: 'rx_dropped', count: n(p.rxDropped) },
          { reason: 'rx_ring_full', count: n(p.rxRingFull) },
          { reason: 'rx_fill_empty', count: n(p.rxFillEmpty) },
        ],
        posted: n(p.posted),
      })),
    };
  } finally {
    pool.close();
  }
}
