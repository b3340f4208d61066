/**
 * The user-facing types of a policy's `tc` sections: the rule language of `xdp` sections, attached
 * at tc (tcx) ingress or egress of an interface. XDP sees frames only as they arrive, before the
 * kernel has an skb; tc sees the skb, in both directions, so it is where egress policy goes (what
 * the host itself sends) and where an interface without XDP support still gets the same rules.
 *
 * The match fields, sets and builders are XDP's (src/dsl/xdp.ts). What differs is what a rule can
 * do: AF_XDP sockets take frames at XDP only, and at egress there is nothing to bounce back.
 * Nothing here validates: `lowerTc` (src/ir/xdp.ts) does, with a path to the bad node.
 */
import type { XdpAction, XdpRuleSpec, XdpSetSpec } from './xdp.ts';

/** ingress: frames the interface received, before the stack sees them; egress: frames it is about to send. */
export type TcDirection = 'ingress' | 'egress';

/**
 * What a rule of a tc ingress section can do: XDP's actions except AF_XDP (`{ xsk }`, and
 * `{ chain }`, which reaches a packet chain through AF_XDP).
 */
export type TcAction = Exclude<XdpAction, { readonly xsk: string } | { readonly chain: string }>;

/** At egress `tx` has no meaning (the frame is already leaving through this interface). */
export type TcEgressAction = Exclude<TcAction, 'tx'>;

interface TcSectionBase<S extends string> {
  /** Interface name; within a namespace when the deployer is told one. */
  readonly interface: string;
  /** What happens to a malformed packet: `drop` (default) or `pass`, counted as malformed either way. */
  readonly malformed?: 'drop' | 'pass';
  readonly sets?: { readonly [K in S]: XdpSetSpec };
}

export interface TcIngressSectionSpec<S extends string = string> extends TcSectionBase<S> {
  readonly direction: 'ingress';
  /** What happens to a packet no rule matched (default `pass`). */
  readonly default?: TcAction;
  readonly rules?: readonly XdpRuleSpec<NoInfer<S>, TcAction>[];
}

export interface TcEgressSectionSpec<S extends string = string> extends TcSectionBase<S> {
  readonly direction: 'egress';
  /** What happens to a packet no rule matched (default `pass`). */
  readonly default?: TcEgressAction;
  readonly rules?: readonly XdpRuleSpec<NoInfer<S>, TcEgressAction>[];
}

/**
 * One tc section: an interface, a direction, and the same `sets`, `rules`, `default` and
 * `malformed` as an xdp section. An interface may have an xdp section and a tc section per
 * direction at once; they are separate programs with separate counters and sets.
 */
export type TcSectionSpec<S extends string = string> = TcIngressSectionSpec<S> | TcEgressSectionSpec<S>;

/**
 * Declares one tc section with set names checked by the type checker (as `xdpSection` does) and
 * actions checked against the direction: `toXsk(...)` or `toChain(...)` anywhere, or
 * `bounce(...)` at egress, does not compile.
 */
export function tcSection<const S extends string = never>(spec: TcSectionSpec<S>): TcSectionSpec<S> {
  return spec;
}
