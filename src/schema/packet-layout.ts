/**
 * The packet plane's layout: the extension area of a pool that carries packet chains
 * (docs/packet-chains.md). One contract with `bpf/include/bpfctl/packet.h`;
 * `test/unit/packet-layout.test.ts` compiles the header and compares every offset with these
 * constants, so change both sides together (and bump VERSION). Offsets are bytes from the start
 * of the plane (the pool header's ext_off), little-endian.
 */

/** "BPKT" in memory (little-endian u32). */
export const MAGIC = 0x544b5042;
export const VERSION = 1;

export const MAX_CHAINS = 64;
export const MAX_HOPS = 8;
export const MAX_FNS = 32;
export const MAX_INST = 32;
export const MAX_PORTS = 16;
export const NAME_LEN = 32;
export const IFNAME_LEN = 16;

/** Default slots per ring (a power of two). */
export const RING_SLOTS = 1024;

/** The word the XDP classifier writes in front of a steered frame: `META_TAG | chain id`. */
export const META_TAG = 0xbfc70000;

/** A buffer sitting in ring r is owned by `RING_OWNER | r` (never a pid: pids stay below 2^22). */
export const RING_OWNER = 0x80000000;

/** Descriptor: 16 bytes. */
export const DESC = { addr: 0, gen: 4, len: 8, hash: 10, chain: 12, hop: 13, port: 14, flags: 15 } as const;
export const DESC_SIZE = 16;

export const HDR = {
  magic: 0,
  version: 4,
  ringSlots: 8,
  ringCount: 12,
  ringOff: 16,
  ringStride: 20,
  nchains: 24,
  nfns: 28,
  nports: 32,
  pktioPid: 36,
  flags: 40,
  /** u64: frames the supervisor freed without knowing their chain (a dead instance's). */
  unattributedLost: 48,
} as const;
export const HEADER_SIZE = 256;

export const CHAINS_OFF = 256;
export const CHAIN_SIZE = 64;
export const CHAIN = { nhops: 0, egressKind: 1, egressPort: 2, flags: 3, hops: 4, name: 16 } as const;
export const EGRESS_DROP = 0;
export const EGRESS_TX = 1;
/** Chain flag: its functions busy-poll their rings. */
export const CHAIN_POLL = 1;

export const FNS_OFF = CHAINS_OFF + MAX_CHAINS * CHAIN_SIZE; // 4352
export const FN_SIZE = 512;
export const FN = { seq: 0, nlive: 4, flags: 8, name: 16, liveRing: 48, instPid: 112, instState: 240 } as const;
export const INST_STATE = { empty: 0, starting: 1, live: 2, draining: 3, restarting: 4 } as const;
export type InstState = keyof typeof INST_STATE;

export const PORTS_OFF = FNS_OFF + MAX_FNS * FN_SIZE; // 20736
export const PORT_SIZE = 256;
export const PORT = {
  ifindex: 0,
  nqueues: 4,
  flags: 8,
  ifname: 16,
  rx: 32,
  tx: 40,
  txFail: 48,
  rxDropped: 56,
  rxFillEmpty: 64,
  posted: 72,
  noChain: 80,
  rxRingFull: 88,
  lost: 96,
} as const;
export const PORT_BOUND = 1;
export const PORT_ZEROCOPY = 2;

export const INST_STATS_OFF = PORTS_OFF + MAX_PORTS * PORT_SIZE; // 24832
export const INST_STATS_SIZE = 64;
export const INST_STATS = { rx: 0, passed: 8, dropped: 16, lost: 24, batches: 32, wakeups: 40, reclaimed: 48 } as const;

export const CHAIN_STATS_OFF = INST_STATS_OFF + MAX_FNS * MAX_INST * INST_STATS_SIZE; // 90368
export const CHAIN_STATS_SIZE = 64;
export const CHAIN_STATS = { in: 0, out: 8, dropped: 16, lost: 24 } as const;

/** Ring 0 is at RINGS_OFF (page aligned, after the tables). */
export const RINGS_OFF = 98304;

export const RING = { tail: 0, head: 64, waiting: 128, wake: 132, consumerPid: 136 } as const;
export const RING_HEADER = 256;
export const SLOT_SIZE = 32;
export const SLOT = { seq: 0, desc: 8 } as const;

/** Ring of instance `inst` of function `fn`; ring 0 feeds pktio's transmit thread. */
export const ringOf = (fn: number, inst: number): number => 1 + fn * MAX_INST + inst;

export const ringStride = (slots: number): number => RING_HEADER + slots * SLOT_SIZE;

/** Bytes of the plane for `nfns` functions (every one gets MAX_INST rings, so scaling never moves a ring). */
export function planeSize(nfns: number, slots = RING_SLOTS): number {
  return RINGS_OFF + (1 + nfns * MAX_INST) * ringStride(slots);
}
