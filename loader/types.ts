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
