/**
 * Set elements <-> map keys. The kind of a pinned set map is read back from its type and key
 * size (each kind has a distinct pair), so `bpfctl set` works on a pinned map without the policy.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { XdpSetKind } from '../dsl/xdp.ts';
import { canonicalSetElement, formatIpv6, formatMac, parseIpv4, parseIpv6, parseMac } from '../ir/xdp.ts';
import { SET_KEY, setMapName, setOfMapName } from '../codegen/xdp/index.ts';
import { BpfctlError } from '../errors.ts';
import { BpfMap, LoaderError } from '../../loader/index.ts';

const EEXIST = 17;

/** A set element that does not fit the set (bad prefix, wrong family, port out of range...). */
export class SetElementError extends BpfctlError {
  readonly set: string;
  readonly element: string;
  constructor(set: string, element: string, message: string) {
    super('E_SET_ELEMENT', `set ${set}: ${message}`);
    this.set = set;
    this.element = element;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), set: this.set, element: this.element };
  }
}

/** The map value of every set element: presence is what matters. */
export const SET_VALUE = Uint8Array.of(1);

export function kindOfMap(map: { type: string; keySize: number }): XdpSetKind | null {
  const lpm = map.type === 'lpm_trie';
  if (!lpm && map.type !== 'hash') return null;
  for (const [kind, k] of Object.entries(SET_KEY) as [XdpSetKind, (typeof SET_KEY)[XdpSetKind]][]) {
    if (k.lpm === lpm && k.size === map.keySize) return kind;
  }
  return null;
}

/** Validates `element` for a set of `kind` and encodes it as the map key. @throws SetElementError */
export function encodeSetKey(set: string, kind: XdpSetKind, element: string | number): Uint8Array {
  const c = canonicalSetElement(kind, element);
  if ('error' in c) throw new SetElementError(set, String(element), c.error);
  const text = c.text;
  switch (kind) {
    case 'ipv4-prefix':
    case 'ipv6-prefix': {
      const [addr, len] = text.split('/') as [string, string];
      const bytes = kind === 'ipv4-prefix' ? parseIpv4(addr)! : parseIpv6(addr)!;
      const key = new Uint8Array(4 + bytes.length);
      new DataView(key.buffer).setUint32(0, Number(len), true);
      key.set(bytes, 4);
      return key;
    }
    case 'ipv4':
      return Uint8Array.from(parseIpv4(text)!);
    case 'ipv6':
      return Uint8Array.from(parseIpv6(text)!);
    case 'port': {
      // The program looks ports up in host order (little-endian here).
      const key = new Uint8Array(2);
      new DataView(key.buffer).setUint16(0, Number(text), true);
      return key;
    }
    case 'mac':
      return Uint8Array.from(parseMac(text)!);
  }
}

export function decodeSetKey(kind: XdpSetKind, key: Uint8Array): string {
  const v = new DataView(key.buffer, key.byteOffset, key.byteLength);
  switch (kind) {
    case 'ipv4-prefix':
      return `${[...key.subarray(4, 8)].join('.')}/${v.getUint32(0, true)}`;
    case 'ipv6-prefix':
      return `${formatIpv6([...key.subarray(4, 20)])}/${v.getUint32(0, true)}`;
    case 'ipv4':
      return [...key].join('.');
    case 'ipv6':
      return formatIpv6([...key]);
    case 'port':
      return String(v.getUint16(0, true));
    case 'mac':
      return formatMac([...key]);
  }
}

/** Numeric order for ports, text order otherwise: what `bpfctl set ls` prints. */
export function sortElements(kind: XdpSetKind, elements: string[]): string[] {
  return kind === 'port' ? elements.sort((a, b) => Number(a) - Number(b)) : elements.sort();
}

/** The pinned map of set `set` in a section directory (`<pinDir>/xdp/<ifname>`). */
export function setMapPath(sectionDir: string, set: string): string {
  return join(sectionDir, 'maps', setMapName(set));
}

/** Names of the sets pinned in a section directory. */
export function listSetNames(sectionDir: string): string[] {
  const dir = join(sectionDir, 'maps');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map(setOfMapName)
    .filter((n): n is string => n !== null)
    .sort();
}

function openSet(sectionDir: string, set: string): { map: BpfMap; kind: XdpSetKind } {
  const path = setMapPath(sectionDir, set);
  if (!existsSync(path)) {
    const known = listSetNames(sectionDir);
    throw new SetElementError(set, '', `no set '${set}' here${known.length ? ` (sets: ${known.join(', ')})` : ''}`);
  }
  const map = BpfMap.openPinned(path);
  const kind = kindOfMap(map);
  if (!kind) {
    map.close();
    throw new SetElementError(set, '', `${path} is not a bpfctl set (a ${map.type} map with ${map.keySize}-byte keys)`);
  }
  return { map, kind };
}

/**
 * Adds or removes elements of a live set; the running program sees the change at its next
 * packet. All elements are validated before the map is touched. Returns how many changed.
 * @throws SetElementError (bad element, unknown set), LoaderError (map full: E2BIG/ENOSPC)
 */
export function changeSet(sectionDir: string, set: string, op: 'add' | 'del', elements: readonly (string | number)[]): { kind: XdpSetKind; changed: number } {
  const { map, kind } = openSet(sectionDir, set);
  try {
    const keys = elements.map((e) => encodeSetKey(set, kind, e));
    let changed = 0;
    for (const k of keys) {
      if (op === 'add') {
        // 'noexist' tells new from present exactly (a lookup in an LPM trie would match covering prefixes).
        try {
          map.update(k, SET_VALUE, 'noexist');
          changed++;
        } catch (err) {
          if (!(err instanceof LoaderError && err.errno === EEXIST)) throw err;
        }
      } else if (map.delete(k)) changed++;
    }
    return { kind, changed };
  } finally {
    map.close();
  }
}

/** The elements of a live set, sorted. */
export function readSet(sectionDir: string, set: string): { kind: XdpSetKind; elements: string[]; maxEntries: number } {
  const { map, kind } = openSet(sectionDir, set);
  try {
    const out: string[] = [];
    for (let k = map.nextKey(null); k; k = map.nextKey(k)) out.push(decodeSetKey(kind, k));
    return { kind, elements: sortElements(kind, out), maxEntries: map.maxEntries };
  } finally {
    map.close();
  }
}
