/**
 * The chain maps as BTF-defined maps. Names and layouts are the contract in docs/internals.md
 * (the loader, `bpfctl status` and the runtime open them by these names), so they are fixed here
 * and never derived from the policy. The names are the one table CHAIN_MAP_NAMES (deploy and the
 * runtime open pins by it): a map missing here, or one not in it, fails tsc.
 */
import type { ChainMapName } from '../../ir/chain-maps.ts';

interface MapDef {
  name: ChainMapName;
  why: string;
  type: string;
  maxEntries: string;
  key: string;
  value: string;
  /** BPF_F_MMAPABLE: processes follow the live table through a read-only mapping, no syscall per read. */
  mmapable?: boolean;
  /** A shared header (under bpf/include) that defines the value struct, for user-space C too. */
  header?: string;
}

const MAPS: { readonly [K in ChainMapName]: MapDef & { name: K } } = {
  routes: {
    name: 'routes',
    why: 'route slot (the descriptor\'s route id) -> one version of a route: functions in order',
    type: 'BPF_MAP_TYPE_ARRAY',
    maxEntries: 'MAX_ROUTE_SLOTS',
    key: '__u32',
    value: 'struct bpfctl_route',
    mmapable: true,
  },
  instances: { name: 'instances', why: 'function id -> live instance ids', type: 'BPF_MAP_TYPE_ARRAY', maxEntries: 'MAX_FUNCTIONS', key: '__u32', value: 'struct bpfctl_instances', mmapable: true },
  socks: {
    name: 'socks',
    why: 'fn << 16 | inst -> socket. A u64 value so user space reads socket cookies back (a u32 value only takes fds)',
    type: 'BPF_MAP_TYPE_SOCKHASH',
    maxEntries: 'MAX_SOCKS',
    key: '__u32',
    value: '__u64',
  },
  config: { name: 'config', why: 'pool geometry, hub port and route generation', type: 'BPF_MAP_TYPE_ARRAY', maxEntries: '1', key: '__u32', value: 'struct bpfctl_config', mmapable: true },
  fn_stats: { name: 'fn_stats', why: 'function id -> descriptors delivered to it / dropped on the way', type: 'BPF_MAP_TYPE_PERCPU_ARRAY', maxEntries: 'MAX_FUNCTIONS', key: '__u32', value: 'struct bpfctl_counters' },
  route_stats: { name: 'route_stats', why: 'route id -> descriptors routed on it / dropped', type: 'BPF_MAP_TYPE_PERCPU_ARRAY', maxEntries: 'MAX_ROUTE_SLOTS', key: '__u32', value: 'struct bpfctl_counters' },
  drop_reasons: { name: 'drop_reasons', why: 'enum bpfctl_drop_reason -> count', type: 'BPF_MAP_TYPE_PERCPU_ARRAY', maxEntries: 'DROP_REASONS_MAX', key: '__u32', value: '__u64' },
  gw_stats: {
    name: 'gw_stats',
    why: 'gateway instance -> its HTTP statistics, written by that gateway process through a mapping (the program never touches it)',
    type: 'BPF_MAP_TYPE_ARRAY',
    maxEntries: 'BPFCTL_GW_STATS_SLOTS',
    key: '__u32',
    value: 'struct bpfctl_gw_stats',
    mmapable: true,
    header: 'bpfctl/gateway_stats.h',
  },
};
/** In declaration order. */
export const CHAIN_MAPS: readonly MapDef[] = Object.values(MAPS);

export function mapDefinitions(): string {
  return CHAIN_MAPS.map((m) =>
    [
      ...(m.header ? [`#include <${m.header}>`, ''] : []),
      `/* ${m.why} */`,
      'struct {',
      `\t__uint(type, ${m.type});`,
      `\t__uint(max_entries, ${m.maxEntries});`,
      ...(m.mmapable ? ['\t__uint(map_flags, BPF_F_MMAPABLE);'] : []),
      `\t__type(key, ${m.key});`,
      `\t__type(value, ${m.value});`,
      `} ${m.name} SEC(".maps");`,
    ].join('\n'),
  ).join('\n\n');
}
