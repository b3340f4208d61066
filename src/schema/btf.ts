/**
 * Schemas and BTF: a map loaded with BTF describes its own key and value, so it can be decoded
 * without a hand-written schema (`codecFromBtf`), and a hand-written schema can be checked
 * against what the C compiler laid out (`checkAgainstBtf`) before a single value is written.
 */
import { array } from './array.ts';
import { bytes, cstring } from './bytes.ts';
import { asKnown, type Codec, type StructField } from './codec.ts';
import { be16, be32, be64, intCodec, u64 } from './ints.ts';
import { SchemaError } from './schema-error.ts';
import { structWithLayout } from './struct.ts';

/**
 * The resolved BTF type as `loader/` reports it (typedefs, const and volatile stripped). Declared
 * here structurally so the schema layer stays free of the loader: the loader's `BtfType` is
 * assignable to this one.
 */
export type BtfType =
  | { readonly kind: 'int'; readonly name: string; readonly size: number; readonly signed: boolean }
  | {
      readonly kind: 'struct' | 'union';
      readonly name: string;
      readonly size: number;
      readonly members: readonly { readonly name: string; readonly offsetBits: number; readonly type: BtfType }[];
    }
  | { readonly kind: 'array'; readonly elem: BtfType; readonly len: number; readonly size: number }
  | { readonly kind: 'enum'; readonly name: string; readonly size: number }
  | { readonly kind: 'ptr' | 'other'; readonly name: string; readonly size: number };

type BtfMember = Extract<BtfType, { kind: 'struct' | 'union' }>['members'][number];

const BE: Record<string, Codec<unknown>> = { __be16: be16, __be32: be32, __be64: be64 };

export function describeBtf(btf: BtfType): string {
  switch (btf.kind) {
    case 'int':
      return `${btf.name || 'int'} (${btf.signed ? 'signed' : 'unsigned'}, ${btf.size} byte${btf.size === 1 ? '' : 's'})`;
    case 'array':
      return `${describeBtf(btf.elem)}[${btf.len}]`;
    case 'struct':
    case 'union':
      return `${btf.kind} ${btf.name || '(anonymous)'} (${btf.size} bytes)`;
    default:
      return `${btf.kind} ${btf.name} (${btf.size} bytes)`;
  }
}

/**
 * Members with anonymous structs flattened into their parent, as C lets code name them; an
 * anonymous union stays one member (its fields overlap).
 */
function flatMembers(members: readonly BtfMember[], baseBits = 0): { name: string; offsetBits: number; type: BtfType }[] {
  const out: { name: string; offsetBits: number; type: BtfType }[] = [];
  for (const m of members) {
    if (!m.name && m.type.kind === 'struct') out.push(...flatMembers(m.type.members, baseBits + m.offsetBits));
    else out.push({ name: m.name || `__anon${(baseBits + m.offsetBits) / 8}`, offsetBits: baseBits + m.offsetBits, type: m.type });
  }
  return out;
}

function isChar(t: BtfType): boolean {
  return t.kind === 'int' && t.size === 1 && t.name === 'char';
}

/**
 * A codec that reads what the BTF describes: C integers by size and signedness (`__be*` typedefs
 * as network order when the loader keeps their name), `char[n]` as text, other byte arrays as
 * bytes, structs field by field. Unions, bitfields and anything else unrepresentable become raw
 * bytes of the same size, so decoding never fails. Throws SchemaError only for zero-sized types.
 */
export function codecFromBtf(btf: BtfType): Codec<unknown> {
  if (!(btf.size > 0)) throw new SchemaError(`cannot decode ${describeBtf(btf)}: it has no size`);
  switch (btf.kind) {
    case 'int':
      return BE[btf.name] ?? intCodec(btf.size, btf.signed) ?? bytes(btf.size);
    case 'enum':
      return intCodec(btf.size, false) ?? bytes(btf.size);
    case 'ptr':
      return btf.size === 8 ? u64 : bytes(btf.size);
    case 'array': {
      if (btf.len <= 0 || btf.elem.size * btf.len !== btf.size) return bytes(btf.size);
      if (isChar(btf.elem)) return cstring(btf.len);
      if (btf.elem.kind === 'int' && btf.elem.size === 1 && !BE[btf.elem.name]) return bytes(btf.len);
      return array(codecFromBtf(btf.elem), btf.len);
    }
    case 'struct': {
      const fields: StructField[] = [];
      let end = 0;
      let align = 1;
      for (const m of flatMembers(btf.members)) {
        // Bitfields and overlaps have no byte-addressed codec: keep the struct opaque.
        if (m.offsetBits % 8 !== 0 || m.type.size <= 0) return bytes(btf.size);
        const offset = m.offsetBits / 8;
        if (offset < end || offset + m.type.size > btf.size) return bytes(btf.size);
        const codec = codecFromBtf(m.type);
        fields.push({ name: m.name, codec, offset });
        end = offset + codec.size;
        align = Math.max(align, codec.align);
      }
      if (fields.length === 0) return bytes(btf.size);
      const packed = fields.some((f) => f.offset % f.codec.align !== 0) || btf.size % align !== 0;
      return structWithLayout(btf.name || `anon_${btf.size}`, fields, btf.size, packed ? 1 : align, packed);
    }
    default:
      return bytes(btf.size);
  }
}

/**
 * Checks a hand-written schema against the map's BTF and throws SchemaError naming the first
 * field whose size, offset, signedness or shape differs. `bytes(n)` matches anything of n bytes
 * (it is the opaque escape hatch); `__pad*` fields in BTF that the schema lacks are ignored.
 */
export function checkAgainstBtf(codec: Codec<unknown>, btf: BtfType): void {
  const c = asKnown(codec);
  const mismatch = (what: string) =>
    new SchemaError(`${what}: the schema has ${c.kind === 'struct' ? `struct ${c.name}` : c.cType()} (${c.size} byte${c.size === 1 ? '' : 's'}), the BTF has ${describeBtf(btf)}`);
  if (c.size !== btf.size) throw mismatch('size differs');
  switch (c.kind) {
    case 'bytes':
      return;
    case 'cstring':
      if (btf.kind !== 'array' || btf.elem.size !== 1) throw mismatch('not a char array');
      return;
    case 'array': {
      if (btf.kind !== 'array') throw mismatch('not an array');
      if (btf.len !== c.len) throw mismatch(`length differs (${c.len} vs ${btf.len})`);
      try {
        checkAgainstBtf(c.elem, btf.elem);
      } catch (err) {
        throw err instanceof SchemaError ? err.within('[]') : err;
      }
      return;
    }
    case 'struct': {
      if (btf.kind !== 'struct') throw mismatch('not a struct');
      const members = new Map(flatMembers(btf.members).map((m) => [m.name, m]));
      for (const f of c.fields) {
        const m = members.get(f.name);
        if (!m) throw new SchemaError(`the BTF of ${describeBtf(btf)} has no field ${f.name}`, f.name);
        members.delete(f.name);
        if (m.offsetBits !== f.offset * 8)
          throw new SchemaError(`offset differs: ${f.offset} in the schema, ${m.offsetBits / 8} in the BTF`, f.name);
        try {
          checkAgainstBtf(f.codec, m.type);
        } catch (err) {
          throw err instanceof SchemaError ? err.within(f.name) : err;
        }
      }
      const missing = [...members.keys()].filter((n) => !n.startsWith('__pad'));
      if (missing.length) throw new SchemaError(`the BTF has field${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that the schema lacks`, missing[0]);
      return;
    }
    default: {
      if (btf.kind === 'int') {
        if (btf.signed !== c.signed)
          throw new SchemaError(`signedness differs: the schema has ${c.kind} (${c.signed ? 'signed' : 'unsigned'}), the BTF has ${describeBtf(btf)}`);
        const beName = BE[btf.name];
        if (beName && !c.bigEndian) throw mismatch('byte order differs (the BTF type is big-endian)');
        return;
      }
      if (btf.kind === 'enum' || (btf.kind === 'ptr' && c.size === 8 && !c.signed)) return;
      throw mismatch('not an integer');
    }
  }
}
