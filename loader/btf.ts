/**
 * Decode a map's key/value type from the kernel's copy of its BTF (btf__load_from_kernel_by_id),
 * into the small BtfType tree that src/schema checks codecs against. Typedefs and type
 * modifiers (const, volatile, restrict, type tags) are looked through: a `__u32` is an int.
 */
import { loaderError } from './errors.ts';
import { lastErrno, lib, viewOf } from './libbpf.ts';

export type BtfType =
  | { kind: 'int'; name: string; size: number; signed: boolean }
  | { kind: 'struct' | 'union'; name: string; size: number; members: { name: string; offsetBits: number; type: BtfType }[] }
  | { kind: 'array'; elem: BtfType; len: number; size: number }
  | { kind: 'enum'; name: string; size: number }
  | { kind: 'ptr' | 'other'; name: string; size: number };

const KIND = {
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FLOAT: 16,
  VAR: 14,
  DATASEC: 15,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;
const SKIP = new Set<number>([KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG]);
const BTF_INT_SIGNED = 1;

class Decoder {
  constructor(private readonly btf: bigint) {}

  private raw(id: number): DataView {
    const p = lib().btf__type_by_id(this.btf, id) as bigint | null;
    if (p === null) throw new Error(`BTF type id ${id} not found`);
    const head = new DataView(viewOf(p, 12).slice().buffer);
    const info = head.getUint32(4, true);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    let extra = 0;
    if (kind === KIND.INT) extra = 4;
    else if (kind === KIND.ARRAY) extra = 12;
    else if (kind === KIND.STRUCT || kind === KIND.UNION || kind === KIND.DATASEC) extra = 12 * vlen;
    else if (kind === KIND.VAR) extra = 4;
    return new DataView(viewOf(p, 12 + extra).slice().buffer);
  }

  /** The variables of a DATASEC, in offset order; static locals with compiler names (`fn.____fmt`) are left out. */
  datasecVars(t: DataView, vlen: number, depth = 0): { name: string; offset: number; size: number; type: BtfType; linkage: 'static' | 'global' | 'extern' }[] {
    const out = [];
    for (let i = 0; i < vlen; i++) {
      const off = 12 + i * 12;
      const varId = t.getUint32(off, true);
      const v = this.raw(varId);
      const name = this.name(v.getUint32(0, true));
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
      const linkage = (['static', 'global', 'extern'] as const)[v.getUint32(12, true)] ?? 'global';
      out.push({ name, offset: t.getUint32(off + 4, true), size: t.getUint32(off + 8, true), type: this.decode(v.getUint32(8, true), depth + 1), linkage });
    }
    return out.sort((a, b) => a.offset - b.offset);
  }

  /** The DATASEC called `section`, or undefined. */
  datasec(section: string): { size: number; vars: GlobalVar[] } | undefined {
    const id = lib().btf__find_by_name_kind(this.btf, section, KIND.DATASEC) as number;
    if (id <= 0) return undefined;
    const t = this.raw(id);
    const vlen = t.getUint32(4, true) & 0xffff;
    return { size: t.getUint32(8, true), vars: this.datasecVars(t, vlen).map((v) => ({ ...v, section })) };
  }

  private name(off: number): string {
    return off ? ((lib().btf__name_by_offset(this.btf, off) as string | null) ?? '') : '';
  }

  decode(id: number, depth = 0): BtfType {
    if (depth > 64) return { kind: 'other', name: '<too deep>', size: 0 };
    if (id === 0) return { kind: 'other', name: 'void', size: 0 };
    const t = this.raw(id);
    const info = t.getUint32(4, true);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const kindFlag = info >>> 31;
    const sizeOrType = t.getUint32(8, true);
    const name = this.name(t.getUint32(0, true));
    if (SKIP.has(kind)) {
      const inner = this.decode(sizeOrType, depth + 1);
      // Byte order exists in C only as a typedef name (__be16, __be32, __be64): keep that name on
      // the int it resolves to, so decoders read network-order fields as network order.
      if (kind === KIND.TYPEDEF && inner.kind === 'int' && /^__be(16|32|64)$/.test(name)) return { ...inner, name };
      return inner;
    }
    switch (kind) {
      case KIND.VAR:
        return this.decode(sizeOrType, depth + 1);
      case KIND.DATASEC:
        // A global-data section reads like a struct whose members are its variables (as bpftool
        // dumps it); its name (".bss", ".rodata", ...) says it is one.
        return { kind: 'struct', name, size: sizeOrType, members: this.datasecVars(t, vlen, depth).map((v) => ({ name: v.name, offsetBits: v.offset * 8, type: v.type })) };
      case KIND.INT:
        return { kind: 'int', name, size: sizeOrType, signed: ((t.getUint32(12, true) >>> 24) & 0xf & BTF_INT_SIGNED) !== 0 };
      case KIND.PTR:
        return { kind: 'ptr', name, size: 8 };
      case KIND.ARRAY: {
        const elem = this.decode(t.getUint32(12, true), depth + 1);
        const len = t.getUint32(20, true);
        return { kind: 'array', elem, len, size: elem.size * len };
      }
      case KIND.STRUCT:
      case KIND.UNION: {
        const members = [];
        for (let i = 0; i < vlen; i++) {
          const off = 12 + i * 12;
          const rawOffset = t.getUint32(off + 8, true);
          members.push({
            name: this.name(t.getUint32(off, true)),
            // With kind_flag the low 24 bits are the offset and the high 8 the bitfield size.
            offsetBits: kindFlag ? rawOffset & 0xffffff : rawOffset,
            type: this.decode(t.getUint32(off + 4, true), depth + 1),
          });
        }
        return { kind: kind === KIND.STRUCT ? 'struct' : 'union', name, size: sizeOrType, members };
      }
      case KIND.ENUM:
      case KIND.ENUM64:
        return { kind: 'enum', name, size: sizeOrType };
      case KIND.FLOAT:
        return { kind: 'other', name, size: sizeOrType };
      default: {
        const size = Number(lib().btf__resolve_size(this.btf, id));
        return { kind: 'other', name: name || `kind${kind}`, size: Math.max(size, 0) };
      }
    }
  }
}

/** One global variable of an object (`.bss`, `.data`, `.rodata`, ...) as its BTF describes it. */
export interface GlobalVar {
  name: string;
  /** The ELF section, e.g. '.rodata'. */
  section: string;
  /** Byte offset in the section's map value. */
  offset: number;
  size: number;
  type: BtfType;
  linkage: 'static' | 'global' | 'extern';
}

/** The variables of `section` in an open object's BTF (libbpf has finalised offsets at open). */
export function datasecOf(btf: bigint, section: string): { size: number; vars: GlobalVar[] } | undefined {
  return new Decoder(btf).datasec(section);
}

/**
 * The struct, union or typedef called `name` in the kernel's BTF object `btfId` (e.g. a ring
 * buffer's record type, found through a program that uses the map); undefined when absent.
 */
export function btfTypeByName(btfId: number, name: string): BtfType | undefined {
  const btf = lib().btf__load_from_kernel_by_id(btfId) as bigint | null;
  if (btf === null) throw loaderError(`btf__load_from_kernel_by_id(${btfId})`, lastErrno());
  try {
    for (const kind of [KIND.STRUCT, KIND.UNION, KIND.TYPEDEF]) {
      const id = lib().btf__find_by_name_kind(btf, name, kind) as number;
      if (id > 0) return new Decoder(btf).decode(id);
    }
    return undefined;
  } finally {
    lib().btf__free(btf);
  }
}

/** Decode type `id` of an open object's BTF. */
export function btfTypeOf(btf: bigint, id: number): BtfType {
  return new Decoder(btf).decode(id);
}

/** Whether a decoded map value type is a global-data section (a DATASEC, decoded as a struct named '.bss', ...). */
export function isDatasec(t: BtfType | undefined): t is Extract<BtfType, { kind: 'struct' | 'union' }> {
  return t !== undefined && t.kind === 'struct' && t.name.startsWith('.');
}

/** The key and value types of a map from its BTF in the kernel; undefined when it has none. */
export function mapBtf(btfId: number, keyTypeId: number, valueTypeId: number): { key: BtfType; value: BtfType } | undefined {
  if (!btfId || !valueTypeId) return undefined;
  const btf = lib().btf__load_from_kernel_by_id(btfId) as bigint | null;
  if (btf === null) throw loaderError(`btf__load_from_kernel_by_id(${btfId})`, lastErrno());
  try {
    const d = new Decoder(btf);
    return { key: d.decode(keyTypeId), value: d.decode(valueTypeId) };
  } finally {
    lib().btf__free(btf);
  }
}
