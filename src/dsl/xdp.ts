/**
 * The user-facing types of a policy's `xdp` sections: MiddleNet's front door. Each section binds
 * one interface to an ordered list of rules; the first rule whose match holds decides the packet's
 * fate, and the section's `default` decides the rest. Named sets hold the long lists (prefixes,
 * addresses, ports, MACs) so they live in maps that change at runtime without a reload.
 *
 * Nothing here validates: `lowerXdpSections` (src/ir/xdp.ts) does, with a path to the bad node.
 */

/** Where a packet goes. `tx` bounces the frame out of the interface it came in on, unchanged. */
export type XdpVerdict = 'pass' | 'drop' | 'tx';

/**
 * `{ redirect: 'eth1' }` sends the frame out of another interface (a devmap slot, filled at
 * deploy; the frame is dropped if the slot is empty). `{ xsk: 'ids' }` hands it to the AF_XDP
 * socket that user space bound to the receiving queue in the xskmap named `xsk_ids` (the frame
 * goes to the kernel stack when no socket is bound there yet). `{ chain: 'tenant-nat' }` steers
 * it into one of the policy's packet chains (AF_XDP through xskmap `xsk_chains`; dropped, never
 * passed, while no socket is bound). `C` is the union of chain names a policy declares.
 */
export type XdpAction<C extends string = string> = XdpVerdict | { readonly redirect: string } | { readonly xsk: string } | { readonly chain: C };

/** A reference to one of the section's named sets. */
export interface XdpSetRef<S extends string = string> {
  readonly set: S;
}

export type XdpSetKind = 'ipv4-prefix' | 'ipv6-prefix' | 'ipv4' | 'ipv6' | 'port' | 'mac';

export interface XdpSetSpec {
  /**
   * Prefix sets become LPM tries (longest-prefix match), the others hashes (exact match).
   * Elements: `'10.0.0.0/8'`, `'2001:db8::/32'`, `'192.0.2.7'`, `'2001:db8::7'`, `443`,
   * `'02:00:00:00:00:01'`.
   */
  readonly type: XdpSetKind;
  /** Contents at deploy time; `bpfctl set add|del` changes them while the program runs. */
  readonly elements?: readonly (string | number)[];
  /** Capacity of the map (default 4096, at most 1048576). */
  readonly maxEntries?: number;
}

/** One port, an inclusive range (`[1024, 65535]` or `'1024-65535'`), or a port set. */
export type XdpPortMatch<S extends string = string> = number | readonly [number, number] | `${number}-${number}` | XdpSetRef<S>;

/** An IPv4/IPv6 address or prefix (`'10.0.0.0/8'`, `'2001:db8::/32'`), or an address/prefix set. */
export type XdpAddrMatch<S extends string = string> = string | XdpSetRef<S>;

/** A MAC address (`'02:00:00:00:00:01'`) or a MAC set. */
export type XdpMacMatch<S extends string = string> = string | XdpSetRef<S>;

export type XdpTcpFlag = 'fin' | 'syn' | 'rst' | 'psh' | 'ack' | 'urg' | 'ece' | 'cwr';

/**
 * TCP flags: `{ syn: true, ack: false }` requires SYN set and ACK clear, other flags are ignored.
 * The string form says the same: `'syn,!ack'`.
 */
export type XdpTcpFlagsMatch = { readonly [F in XdpTcpFlag]?: boolean } | string;

export type XdpIcmpTypeName =
  | 'echo-reply'
  | 'echo-request'
  | 'dest-unreachable'
  | 'time-exceeded'
  | 'packet-too-big'
  | 'neighbor-solicitation'
  | 'neighbor-advertisement'
  | 'router-solicitation'
  | 'router-advertisement';

/** Every field present must hold (AND); an empty match matches every packet. */
export interface XdpMatch<S extends string = string> {
  /** The EtherType after any VLAN tags: a name or a number (`0x88cc`). */
  readonly ethType?: 'ipv4' | 'ipv6' | 'arp' | number;
  /** VLAN id (0..4095) of the outer tag. */
  readonly vlan?: number;
  /** VLAN id of the inner tag of a double-tagged (QinQ) frame. */
  readonly innerVlan?: number;
  readonly srcMac?: XdpMacMatch<S>;
  readonly dstMac?: XdpMacMatch<S>;
  /** Source address or prefix; its family restricts the rule to IPv4 or IPv6. */
  readonly src?: XdpAddrMatch<S>;
  readonly dst?: XdpAddrMatch<S>;
  /** IP protocol (IPv6: the header after the extension headers). */
  readonly proto?: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | number;
  /** Differentiated Services code point (0..63). */
  readonly dscp?: number;
  /** TCP or UDP ports. Never match IP fragments other than the first (they carry no ports). */
  readonly sport?: XdpPortMatch<S>;
  readonly dport?: XdpPortMatch<S>;
  readonly tcpFlags?: XdpTcpFlagsMatch;
  /** ICMP (proto icmp) or ICMPv6 (proto icmpv6) message type; names are resolved per protocol. */
  readonly icmpType?: number | XdpIcmpTypeName;
  readonly icmpCode?: number;
}

/**
 * One rule. `A` narrows the action: the builders below say which one they make, so a rule a hook
 * cannot carry out (AF_XDP in a tc section) is a type error where it is written.
 */
export interface XdpRuleSpec<S extends string = string, A extends XdpAction = XdpAction> {
  /** Shown by `bpfctl xdp status`; defaults to `rule<N>`. Letters, digits, '-', '_', '.'. */
  readonly name?: string;
  readonly match?: XdpMatch<S>;
  readonly action: A;
  /** Keep per-CPU packet and byte counters for this rule (default true). */
  readonly count?: boolean;
}

/**
 * One xdp section. `S` is the union of its set names, `C` the packet chain names its rules may
 * steer to (the policy's `packetChains` keys: definePolicy checks them).
 */
export interface XdpSectionSpec<S extends string = string, C extends string = string> {
  /** Interface name; within a namespace when the deployer is told one. */
  readonly interface: string;
  /** `auto` (default): native (driver) mode where the driver supports it, else generic. */
  readonly mode?: 'auto' | 'native' | 'generic';
  /** What happens to a packet no rule matched (default `pass`). */
  readonly default?: XdpAction<C>;
  /**
   * What happens to a malformed packet (truncated header, bad IHL, an IPv6 extension-header chain
   * longer than bpfctl inspects): `drop` (default) or `pass`. Either way it is counted as malformed
   * and no rule sees it.
   */
  readonly malformed?: 'drop' | 'pass';
  readonly sets?: { readonly [K in S]: XdpSetSpec };
  readonly rules?: readonly XdpRuleSpec<NoInfer<S>, XdpAction<C>>[];
}

/**
 * Declares one xdp section with set names checked by the type checker: a rule that refers to a set
 * the section does not declare does not compile. The chain names its rules steer to are kept in
 * the type, so definePolicy rejects one the policy does not declare.
 */
export function xdpSection<const S extends string = never, const C extends string = never>(spec: XdpSectionSpec<S, C>): XdpSectionSpec<S, C> {
  return spec;
}

/** `{ set: name }`: match against one of the section's named sets. */
export function set<const S extends string>(name: S): XdpSetRef<S> {
  return { set: name };
}

type RuleOpts = { readonly name?: string; readonly count?: boolean };

function rule<S extends string, A extends XdpAction>(action: A, match: XdpMatch<S> | undefined, opts: RuleOpts | undefined): XdpRuleSpec<S, A> {
  return { ...(opts?.name !== undefined ? { name: opts.name } : {}), ...(match ? { match } : {}), action, ...(opts?.count !== undefined ? { count: opts.count } : {}) };
}

/** A rule that hands matching packets to the kernel stack. */
export function pass<const S extends string = never>(match?: XdpMatch<S>, opts?: RuleOpts): XdpRuleSpec<NoInfer<S>, 'pass'> {
  return rule('pass', match, opts);
}

/** A rule that drops matching packets. */
export function drop<const S extends string = never>(match?: XdpMatch<S>, opts?: RuleOpts): XdpRuleSpec<NoInfer<S>, 'drop'> {
  return rule('drop', match, opts);
}

/** A rule that bounces matching packets out of the interface they arrived on. */
export function bounce<const S extends string = never>(match?: XdpMatch<S>, opts?: RuleOpts): XdpRuleSpec<NoInfer<S>, 'tx'> {
  return rule('tx', match, opts);
}

/** A rule that sends matching packets out of interface `ifname` (XDP redirect through a devmap). */
export function redirect<const S extends string = never>(ifname: string, match?: XdpMatch<S>, opts?: RuleOpts): XdpRuleSpec<NoInfer<S>, { readonly redirect: string }> {
  return rule({ redirect: ifname }, match, opts);
}

/** A rule that hands matching packets to the AF_XDP sockets of xskmap `xsk_<group>`. */
export function toXsk<const S extends string = never>(group: string, match?: XdpMatch<S>, opts?: RuleOpts): XdpRuleSpec<NoInfer<S>, { readonly xsk: string }> {
  return rule({ xsk: group }, match, opts);
}

/**
 * A rule that steers matching frames into packet chain `chain` (one of the policy's
 * `packetChains`): the classifier tags the frame with the chain's id and hands it to the packet
 * plane's AF_XDP socket on the receiving queue (xskmap `xsk_chains`). While no socket is bound
 * (the packet plane not started yet, or restarting) such frames are dropped, not passed.
 * XDP only: a tc section cannot take it.
 */
export function toChain<const C extends string, const S extends string = never>(chain: C, match?: XdpMatch<S>, opts?: RuleOpts): XdpRuleSpec<NoInfer<S>, { readonly chain: C }> {
  return rule({ chain }, match, opts);
}
