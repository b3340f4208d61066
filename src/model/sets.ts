/**
 * A section's sets as the model looks them up: prefix sets as the kernel's LPM tries answer
 * (the longest stored prefix covering the address), the others as exact hashes. Contents are
 * canonical element texts: the IR's (a policy file) or those read back from the pinned maps
 * (a loaded policy, `bpfctl set` changes included).
 */
import type { XdpSetKind } from '../dsl/xdp.ts';
import { BpfctlError } from '../errors.ts';
import { canonicalSetElement, parseIpv4, parseIpv6, parseMac, type ClassifierSectionIR } from '../ir/xdp.ts';

/** Set name -> elements (`'10.0.0.0/8'`, `'192.0.2.1'`, `'443'`, `'02:00:00:00:00:01'`). */
export type SetContents = Readonly<Record<string, readonly (string | number)[]>>;

/** A set element the model cannot read (what `bpfctl set add` would refuse). */
export class ModelSetError extends BpfctlError {
  constructor(set: string, message: string) {
    super('E_MODEL_SET', `set ${set}: ${message}`);
  }
}

/** One compiled set. `lookup` returns the element that matched (for prefix sets: the longest), or null. */
export interface ModelSet {
  readonly name: string;
  readonly kind: XdpSetKind;
  readonly size: number;
  /** IPv4 sets: the address as a number; IPv6 sets and MACs: the bytes; ports: the number. */
  lookup4(addr: number): string | null;
  lookupBytes(bytes: Uint8Array): string | null;
  lookupPort(port: number): string | null;
}

const hexOf = (b: ArrayLike<number>, n = b.length) => {
  let s = '';
  for (let i = 0; i < n; i++) s += (b[i]! | 0x100).toString(16).slice(1);
  return s;
};

const mask4 = (len: number) => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);

function maskedHex(bytes: ArrayLike<number>, len: number): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    s += ((bytes[i]! & ((0xff << (8 - bits)) & 0xff)) | 0x100).toString(16).slice(1);
  }
  return s;
}

function compile(name: string, kind: XdpSetKind, elements: readonly (string | number)[]): ModelSet {
  const none = () => null;
  const texts = elements.map((e) => {
    const c = canonicalSetElement(kind, e);
    if ('error' in c) throw new ModelSetError(name, c.error);
    return c.text;
  });
  const base = { name, kind, size: new Set(texts).size, lookup4: none as ModelSet['lookup4'], lookupBytes: none as ModelSet['lookupBytes'], lookupPort: none as ModelSet['lookupPort'] };
  switch (kind) {
    case 'ipv4-prefix': {
      // Longest first: the trie's answer is the longest stored prefix that covers the address.
      const byLen = new Map<number, Map<number, string>>();
      for (const t of texts) {
        const [a, l] = t.split('/') as [string, string];
        const len = Number(l);
        const addr = parseIpv4(a)!.reduce((x, y) => x * 256 + y, 0);
        if (!byLen.has(len)) byLen.set(len, new Map());
        byLen.get(len)!.set((addr & mask4(len)) >>> 0, t);
      }
      const lens = [...byLen.keys()].sort((x, y) => y - x).map((len) => [mask4(len), byLen.get(len)!] as const);
      return {
        ...base,
        lookup4: (addr) => {
          for (const [m, keys] of lens) {
            const hit = keys.get((addr & m) >>> 0);
            if (hit !== undefined) return hit;
          }
          return null;
        },
      };
    }
    case 'ipv6-prefix': {
      const byLen = new Map<number, Map<string, string>>();
      for (const t of texts) {
        const slash = t.lastIndexOf('/');
        const len = Number(t.slice(slash + 1));
        if (!byLen.has(len)) byLen.set(len, new Map());
        byLen.get(len)!.set(maskedHex(parseIpv6(t.slice(0, slash))!, len), t);
      }
      const lens = [...byLen.keys()].sort((x, y) => y - x).map((len) => [len, byLen.get(len)!] as const);
      return {
        ...base,
        lookupBytes: (bytes) => {
          for (const [len, keys] of lens) {
            const hit = keys.get(maskedHex(bytes, len));
            if (hit !== undefined) return hit;
          }
          return null;
        },
      };
    }
    case 'ipv4': {
      const keys = new Map(texts.map((t) => [parseIpv4(t)!.reduce((x, y) => x * 256 + y, 0), t]));
      return { ...base, lookup4: (addr) => keys.get(addr) ?? null };
    }
    case 'ipv6': {
      const keys = new Map(texts.map((t) => [hexOf(parseIpv6(t)!), t]));
      return { ...base, lookupBytes: (bytes) => keys.get(hexOf(bytes, 16)) ?? null };
    }
    case 'mac': {
      const keys = new Map(texts.map((t) => [hexOf(parseMac(t)!), t]));
      return { ...base, lookupBytes: (bytes) => keys.get(hexOf(bytes, 6)) ?? null };
    }
    case 'port': {
      const keys = new Map(texts.map((t) => [Number(t), t]));
      return { ...base, lookupPort: (port) => keys.get(port) ?? null };
    }
  }
}

/**
 * The section's sets, filled from `contents` where it names them and from the IR's elements
 * otherwise (what deploy writes into a new program's maps).
 * @throws ModelSetError for an element that does not fit its set
 */
export function compileSets(section: ClassifierSectionIR, contents?: SetContents): ReadonlyMap<string, ModelSet> {
  const out = new Map<string, ModelSet>();
  for (const s of section.sets) out.set(s.name, compile(s.name, s.kind, contents?.[s.name] ?? s.elements));
  return out;
}
