/**
 * Map declarations of a generated XDP program. Names are fixed (deploy, `bpfctl xdp status` and
 * `bpfctl set` find maps by them): `rule_stats`, `xdp_stats`, `tx_ports`, `xsk_<group>` (packet
 * chains: `xsk_chains`), `set_<name>`.
 */
import { CHAIN_XSK_GROUP, type ClassifierSectionIR, type XdpSetIR } from '../../ir/xdp.ts';
import type { XdpSetKind } from '../../dsl/xdp.ts';

/** Slots of `xdp_stats`, in order. */
export const XDP_STATS = ['malformed', 'fragment'] as const;
/** xskmap capacity: one slot per receive queue. */
export const XSK_QUEUES = 64;

/**
 * The one table of XDP map names: codegen declares and uses these, deploy and the CLI open the
 * pins by them. Per-set and per-group maps are named by the functions below.
 */
export const XDP_MAPS = { ruleStats: 'rule_stats', xdpStats: 'xdp_stats', txPorts: 'tx_ports' } as const;
const SET_PREFIX = 'set_';
const XSK_PREFIX = 'xsk_';
export const setMapName = (set: string) => `${SET_PREFIX}${set}`;
export const xskMapName = (group: string) => `${XSK_PREFIX}${group}`;
/** The set a map name holds (`set_blocked` -> `blocked`), or null for other maps. */
export const setOfMapName = (map: string): string | null => (map.startsWith(SET_PREFIX) ? map.slice(SET_PREFIX.length) : null);

/** The C key type of each set kind; its size identifies the kind of a pinned set map. */
export const SET_KEY: Readonly<Record<XdpSetKind, { type: string; size: number; lpm: boolean }>> = {
  'ipv4-prefix': { type: 'struct bpfctl_lpm4_key', size: 8, lpm: true },
  'ipv6-prefix': { type: 'struct bpfctl_lpm6_key', size: 20, lpm: true },
  ipv4: { type: '__be32', size: 4, lpm: false },
  ipv6: { type: 'struct in6_addr', size: 16, lpm: false },
  port: { type: '__u16', size: 2, lpm: false },
  mac: { type: 'struct bpfctl_mac', size: 6, lpm: false },
};

export const COUNTER_STRUCT = `/* Per-CPU packet and byte counters; user space sums the CPUs. */
struct bpfctl_xdp_counter {
	__u64 packets;
	__u64 bytes;
};`;

const KEY_STRUCTS: Partial<Record<XdpSetKind, string>> = {
  'ipv4-prefix': `struct bpfctl_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};`,
  'ipv6-prefix': `struct bpfctl_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};`,
  mac: `struct bpfctl_mac {
	__u8 addr[6];
};`,
};

function mapDecl(name: string, fields: string[], comment: string): string {
  return `/* ${comment} */\nstruct {\n${fields.map((f) => `\t${f};`).join('\n')}\n} ${name} SEC(".maps");`;
}

function setDecl(s: XdpSetIR): string {
  const k = SET_KEY[s.kind];
  const fields = [
    `__uint(type, BPF_MAP_TYPE_${k.lpm ? 'LPM_TRIE' : 'HASH'})`,
    ...(k.lpm ? ['__uint(map_flags, BPF_F_NO_PREALLOC)'] : []),
    `__uint(max_entries, ${s.maxEntries})`,
    `__type(key, ${k.type})`,
    '__type(value, __u8)',
  ];
  const what = k.lpm ? 'longest-prefix match' : 'exact match';
  return mapDecl(setMapName(s.name), fields, `set "${s.name}" (${s.kind}, ${what}): bpfctl set add|del changes it live`);
}

/** Key structs the section's sets need, then every map. */
export function mapDecls(section: ClassifierSectionIR, hook: 'xdp' | 'tc' = 'xdp'): string {
  const kinds = [...new Set(section.sets.map((s) => s.kind))];
  const structs = (Object.keys(KEY_STRUCTS) as XdpSetKind[]).filter((k) => kinds.includes(k)).map((k) => KEY_STRUCTS[k]!);
  const maps = [
    mapDecl(
      XDP_MAPS.ruleStats,
      ['__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY)', `__uint(max_entries, ${section.rules.length + 1})`, '__type(key, __u32)', '__type(value, struct bpfctl_xdp_counter)'],
      `slot i counts rule i; slot ${section.rules.length} counts the default action`,
    ),
    mapDecl(
      XDP_MAPS.xdpStats,
      ['__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY)', `__uint(max_entries, ${XDP_STATS.length})`, '__type(key, __u32)', '__type(value, struct bpfctl_xdp_counter)'],
      XDP_STATS.map((s, i) => `${i} ${s}`).join(', '),
    ),
  ];
  if (section.redirects.length) {
    maps.push(
      mapDecl(
        XDP_MAPS.txPorts,
        [`__uint(type, BPF_MAP_TYPE_${hook === 'xdp' ? 'DEVMAP' : 'ARRAY'})`, `__uint(max_entries, ${section.redirects.length})`, '__type(key, __u32)', '__type(value, __u32)'],
        `redirect targets (ifindex, filled at deploy): ${section.redirects.map((r, i) => `${i} ${r}`).join(', ')}`,
      ),
    );
  }
  for (const g of hook === 'xdp' ? section.xskGroups : []) {
    maps.push(
      mapDecl(
        xskMapName(g),
        ['__uint(type, BPF_MAP_TYPE_XSKMAP)', `__uint(max_entries, ${XSK_QUEUES})`, '__type(key, __u32)', '__type(value, __u32)'],
        g === CHAIN_XSK_GROUP ? 'packet chains: pktio binds one AF_XDP socket per receive queue (the chain id is in the frame\'s metadata)' : `AF_XDP group "${g}": user space binds one socket per receive queue`,
      ),
    );
  }
  for (const s of section.sets) maps.push(setDecl(s));
  return [...structs, ...maps].join('\n\n');
}
