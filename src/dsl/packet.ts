/**
 * The user-facing types of a policy's packet chains (docs/packet-chains.md): L2/L3 network
 * functions that get whole Ethernet frames, received by AF_XDP straight into pool buffers and
 * handed from function to function as descriptors, then transmitted or dropped. The XDP
 * classifier chooses which frames go into which chain (`toChain`, src/dsl/xdp.ts).
 *
 * Nothing here validates: `lowerPacket` (src/ir/packet.ts) does, with a path to the bad node.
 */

interface PacketFunctionCommon {
  /** Processes to run; frames spread over them by their flow hash. 1..32, default 1. */
  readonly instances?: number;
  /**
   * Configuration handed to every instance as environment variables (e.g. `SNAT_ADDR`): names of
   * `A-Z`, `0-9` and `_` not starting with a digit (`BPFCTL_*` is bpfctl's own), string values.
   */
  readonly env?: { readonly [K: string]: string };
}

/**
 * A network function built by bpfctl: C against the packet SDK (bpf/include/bpfctl/packet.h), or
 * TypeScript against `bpfctl/packet` for slow paths (every batch crosses into Node and back).
 */
export interface PacketHandlerFunctionSpec extends PacketFunctionCommon {
  /** The `.c`, `.ts` or `.js` file, relative to the policy file (e.g. `./nf/snat.c`). */
  readonly handler: string;
  readonly command?: never;
}

/** A prebuilt program that speaks the packet SDK (a DPDK network function, say). */
export interface PacketCommandFunctionSpec extends PacketFunctionCommon {
  /**
   * argv: `argv[0]` is a path relative to the policy file when it holds a '/' (`./bin/nat`),
   * else a program found on PATH (`['my-nf', '--fast']`).
   */
  readonly command: readonly string[];
  readonly handler?: never;
}

/**
 * One packet (L2/L3) network function: a `handler` (C, or TypeScript for slow paths) or a
 * prebuilt `command`, exactly one of the two.
 */
export type PacketFunctionSpec = PacketHandlerFunctionSpec | PacketCommandFunctionSpec;

/** Where a chain's frames go after its last function: out of an interface, or nowhere. */
export type PacketEgressSpec = { readonly tx: string } | 'drop';

/**
 * A packet chain. `PF` is the union of the policy's packet function names: a chain naming any
 * other does not type check (as routes do with functions).
 */
export interface PacketChainSpec<PF extends string = string> {
  /** The functions a frame visits, in order (0..8; none: straight to the egress). */
  readonly functions: readonly PF[];
  /** `{ tx: 'eth1' }` transmits the frame on eth1 (the interface it came in on is fine: a reflector); `'drop'` frees it. */
  readonly egress: PacketEgressSpec;
  /** Busy-poll: the chain's functions spin on their rings instead of sleeping (lowest latency, one core each). Default false. */
  readonly poll?: boolean;
  /**
   * Wakeup coalescing (interrupt moderation, as a NIC's adaptive-rx): while traffic comes, the
   * chain's frames may wait up to `us` microseconds (1..10000) in pktio, so that several travel
   * the chain as one batch and each process on it wakes once per batch rather than once per frame.
   * Less CPU per frame at moderate rates for up to `us` more latency; a frame that comes after a
   * quiet spell (longer than `us`) is not held. Absent: every frame goes on at once. Not with `poll`.
   */
  readonly coalesce?: PacketCoalesceSpec;
}

/** How long a coalescing chain's frames may wait for each other (docs/packet-chains.md, "Coalescing"). */
export interface PacketCoalesceSpec {
  /** The longest a frame waits, in microseconds: 1..10000. */
  readonly us: number;
}
