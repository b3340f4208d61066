/**
 * The policy DSL: what a user writes in `examples/<name>/policy.ts`. `definePolicy` only captures
 * the spec with precise types (function names flow into route checking); validation and id
 * assignment happen in `lowerPolicy` (src/ir/policy.ts), which also accepts plain objects from
 * JavaScript callers that the type checker never saw.
 */
import type { PacketChainSpec, PacketFunctionSpec } from './packet.ts';
import type { TcSectionSpec } from './tc.ts';
import type { XdpSectionSpec } from './xdp.ts';

/** Language of a function's handler: a TypeScript module run by the bpfctl runtime, or a C program. */
export type FunctionLanguage = 'ts' | 'c';

export interface FunctionSpec {
  /** Processes to run; traffic spreads across them (`inst[req_id % count]`). 1..32. */
  readonly instances: number;
  /** Handler module, relative to the policy file (e.g. `./functions/upper.ts`). */
  readonly handler: string;
  /** 'c' for a `.c` handler (built with the C runtime), else 'ts' (TypeScript or JavaScript). */
  readonly language?: FunctionLanguage;
  /** Requests one instance works on at once (1..65535, default 64); more wait in the instance's queue (4096), then get 503. */
  readonly maxInFlight?: number;
  /**
   * Which nodes run this function when the policy runs on several (`bpfctl agent`,
   * docs/multi-node.md): by name (the `instances` are spread over them, in list order) or by the
   * labels an agent was started with (every matching node runs `instances`). Without it every node
   * runs the function; a policy without placement runs on one machine exactly as before.
   */
  readonly placement?: PlacementSpec;
}

/** Where a function runs: `{ nodes: ['a', 'b'] }` or `{ labels: { zone: 'x' } }` (one of the two). */
export interface PlacementSpec {
  readonly nodes?: readonly string[];
  readonly labels?: { readonly [key: string]: string };
  /**
   * Whether requests may go to this function's instances on other nodes while its local ones are
   * overloaded (default true). Local instances are always preferred; see docs/multi-node.md.
   */
  readonly spill?: boolean;
}

/** HTTP methods a route can accept; GET implies HEAD. */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';

/** The long form of a route. */
export interface RouteSpec<F extends string = string> {
  readonly functions: readonly F[];
  /** Default `['POST']`: a route runs functions, and GET/HEAD are expected to be safe to repeat. */
  readonly methods?: readonly HttpMethod[];
}

export interface PoolSpec {
  /** Bytes per buffer: a power of two, 64 B .. 1 MiB. */
  readonly bufferSize: number;
  /** Buffers in the pool: 1 .. 65536 (and the pool at most 1 GiB). */
  readonly bufferCount: number;
}

export interface GatewaySpec {
  /**
   * Which HTTP gateway runs: 'native' (default), the C one (docs/gateway-native.md), or 'node'.
   * Same statuses, limits and live behaviour; `bpfctl run` builds the native one with the C
   * compiler (cached), linking libh2o-evloop for its HTTP parser.
   */
  readonly engine?: 'node' | 'native';
  /** Gateway processes (the descriptor's `gw_inst` names one). 1..32, default 1. */
  readonly processes?: number;
  /** The older name of `processes` (still accepted; give one of the two). */
  readonly instances?: number;
}

/**
 * A policy. `F` is the union of function names: a route that names anything else does not type
 * check (`NoInfer` keeps routes from widening `F`, so the error lands on the bad route entry).
 * `P` and `C` do the same for packet functions (named by packet chains) and packet chains (named
 * by xdp rules).
 */
export interface PolicySpec<F extends string = string, P extends string = string, C extends string = string> {
  /** Names the pin directory and generated files: lowercase letters, digits, '-', '_' (1..48). */
  readonly name: string;
  /** The chain's functions; a policy of XDP sections only leaves out functions, routes and pool. */
  readonly functions?: { readonly [K in F]: FunctionSpec };
  /**
   * Route name or HTTP-like path -> the functions a request visits, in order, before it returns
   * to the gateway; or `{ functions, methods }` to accept other HTTP methods than POST.
   */
  readonly routes?: { readonly [route: string]: readonly NoInfer<F>[] | RouteSpec<NoInfer<F>> };
  /** Default: 1024 buffers of 4 KiB. */
  readonly pool?: PoolSpec;
  readonly gateway?: GatewaySpec;
  // Each section carries its own set names (checked inside xdpSection); `any` keeps this
  // context from forcing them to `string` when TypeScript infers a section's type.
  // biome-ignore lint/suspicious/noExplicitAny: see above
  readonly xdp?: readonly XdpSectionSpec<any, NoInfer<C>>[];
  /** The same rule language at tc (tcx) ingress or egress: one section per interface and direction. */
  // biome-ignore lint/suspicious/noExplicitAny: as for xdp
  readonly tc?: readonly TcSectionSpec<any>[];
  /**
   * L2/L3 network functions for packet chains (docs/packet-chains.md): a C `handler` or a
   * prebuilt `command` each. Names share one namespace with `functions`.
   */
  readonly packetFunctions?: { readonly [K in P]: PacketFunctionSpec };
  /** Packet chains: the packet functions a frame visits, then its egress. xdp rules steer frames in with `toChain(name, match)`. */
  readonly packetChains?: { readonly [K in C]: PacketChainSpec<NoInfer<P>> };
}

/**
 * Declares a policy; the module's default export. Pure: nothing is checked at runtime here
 * (lowerPolicy does that, with paths to the bad entries), but the types already reject a route
 * naming an unknown function, a packet chain naming an unknown packet function, and an xdp rule
 * steering to an unknown packet chain.
 */
export function definePolicy<const F extends string, const P extends string, const C extends string>(spec: PolicySpec<F, P, C>): PolicySpec<F, P, C> {
  return spec;
}
