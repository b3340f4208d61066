/**
 * Enum names for program, map, attach and link types, taken from libbpf's own tables
 * (libbpf_bpf_*_type_str) so they match bpftool and libbpf section names: 'sk_msg', 'sockhash',
 * 'cgroup_sock_ops', ... Kernel enum values newer than libbpf 1.1 show up as 'unknown(N)'.
 */
import { lib } from './libbpf.ts';

type Kind = 'prog' | 'map' | 'attach' | 'link';

const FN = {
  prog: 'libbpf_bpf_prog_type_str',
  map: 'libbpf_bpf_map_type_str',
  attach: 'libbpf_bpf_attach_type_str',
  link: 'libbpf_bpf_link_type_str',
} as const;

/**
 * Kernel enum values newer than libbpf 1.1's tables (linux/bpf.h, up to 6.18), named as newer
 * libbpf/bpftool name them, so `link ls` says 'tcx' rather than 'unknown(11)'.
 */
const NEWER: Record<Kind, Record<number, string>> = {
  prog: { 32: 'netfilter' },
  map: { 33: 'arena' },
  attach: {
    44: 'struct_ops',
    45: 'netfilter',
    46: 'tcx_ingress',
    47: 'tcx_egress',
    48: 'trace_uprobe_multi',
    49: 'cgroup_unix_connect',
    50: 'cgroup_unix_sendmsg',
    51: 'cgroup_unix_recvmsg',
    52: 'cgroup_unix_getpeername',
    53: 'cgroup_unix_getsockname',
    54: 'netkit_primary',
    55: 'netkit_peer',
    56: 'trace_kprobe_session',
  },
  link: { 10: 'netfilter', 11: 'tcx', 12: 'uprobe_multi', 13: 'netkit', 14: 'sockmap' },
};

interface Table {
  byValue: Map<number, string>;
  byName: Map<string, number>;
}
const tables = new Map<Kind, Table>();

function table(kind: Kind): Table {
  let t = tables.get(kind);
  if (t) return t;
  t = { byValue: new Map(), byName: new Map() };
  const fn = lib()[FN[kind]];
  // The tables are dense from 0; a few gaps exist (removed types), so probe past a NULL.
  for (let i = 0, misses = 0; i < 256 && misses < 8; i++) {
    const name = fn(i) as string | null;
    if (name === null) {
      misses++;
      continue;
    }
    misses = 0;
    t.byValue.set(i, name);
    t.byName.set(name, i);
  }
  for (const [v, name] of Object.entries(NEWER[kind])) {
    if (t.byValue.has(Number(v)) || t.byName.has(name)) continue;
    t.byValue.set(Number(v), name);
    t.byName.set(name, Number(v));
  }
  tables.set(kind, t);
  return t;
}

export function typeName(kind: Kind, value: number): string {
  return table(kind).byValue.get(value) ?? `unknown(${value})`;
}

/** The enum value of a type name; undefined if libbpf does not know it. */
export function typeValue(kind: Kind, name: string): number | undefined {
  const m = /^unknown\((\d+)\)$/.exec(name);
  if (m) return Number(m[1]);
  return table(kind).byName.get(name);
}

export function typeNames(kind: Kind): string[] {
  return [...table(kind).byName.keys()];
}

export const progTypeName = (v: number): string => typeName('prog', v);
export const mapTypeName = (v: number): string => typeName('map', v);
export const attachTypeName = (v: number): string => typeName('attach', v);
export const linkTypeName = (v: number): string => typeName('link', v);
