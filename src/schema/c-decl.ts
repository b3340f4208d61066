/**
 * C declarations from schemas: the struct a `.bpf.c` file shares with TypeScript is generated
 * from the same codec that reads it, so the two cannot drift (a `_Static_assert` on the size
 * makes clang refuse a header that disagrees).
 */
import { alignUp, asKnown, type Codec, type StructCodec } from './codec.ts';
import { SchemaError } from './schema-error.ts';

/** `type name` in C declarator syntax: `__u16 fn[16]`, `char comm[16]`, `struct x hdr`. */
export function cDeclarator(codec: Codec<unknown>, name: string): string {
  const c = asKnown(codec);
  switch (c.kind) {
    case 'bytes':
      return `__u8 ${name}[${c.size}]`;
    case 'cstring':
      return `char ${name}[${c.size}]`;
    case 'array':
      return cDeclarator(c.elem, `${name}[${c.len}]`);
    default:
      return `${c.cType()} ${name}`;
  }
}

function nestedStructs(codec: Codec<unknown>, seen: Map<string, StructCodec<unknown>>, order: StructCodec<unknown>[]): void {
  const c = asKnown(codec);
  if (c.kind === 'array') {
    nestedStructs(c.elem, seen, order);
    return;
  }
  if (c.kind !== 'struct') return;
  const prev = seen.get(c.name);
  if (prev) {
    if (prev !== c && !sameLayout(prev, c)) throw new SchemaError(`two different structs are both named ${c.name}`);
    return;
  }
  seen.set(c.name, c);
  for (const f of c.fields) nestedStructs(f.codec, seen, order);
  order.push(c);
}

function sameLayout(a: StructCodec<unknown>, b: StructCodec<unknown>): boolean {
  return cDefinition(a) === cDefinition(b);
}

/** One struct's definition, without the structs it contains. */
export function cDefinition(s: StructCodec<unknown>): string {
  const lines: string[] = [];
  // A layout that natural alignment cannot produce (it came from BTF, or is packed) is spelled
  // out: packed with explicit padding, so C lands every field where the schema has it.
  const misaligned = s.fields.some((f) => f.offset % f.codec.align !== 0);
  const last = s.fields[s.fields.length - 1];
  const fieldAlign = Math.max(1, ...s.fields.map((f) => f.codec.align));
  const tooShort = last !== undefined && s.size < alignUp(last.offset + last.codec.size, fieldAlign);
  const packed = s.packed || misaligned || tooShort;
  let cursor = 0;
  let naturalAlign = 1;
  let pads = 0;
  for (const f of s.fields) {
    const a = packed ? 1 : f.codec.align;
    const natural = alignUp(cursor, a);
    if (f.offset < cursor) throw new SchemaError(`field overlaps the one before it`, `${s.name}.${f.name}`);
    if (f.offset > natural) lines.push(`\t__u8 __pad${pads++}[${f.offset - cursor}];`);
    else if (f.offset > cursor) lines.push(`\t/* ${f.offset - cursor} byte${f.offset - cursor > 1 ? 's' : ''} of padding */`);
    lines.push(`\t${cDeclarator(f.codec, f.name)};`);
    cursor = f.offset + f.codec.size;
    naturalAlign = Math.max(naturalAlign, a);
  }
  const attrs: string[] = [];
  if (packed) attrs.push('packed');
  if (s.align > naturalAlign) attrs.push(`aligned(${s.align})`);
  const end = alignUp(cursor, Math.max(naturalAlign, s.align));
  if (s.size > end || (s.size > cursor && packed)) lines.push(`\t__u8 __pad${pads++}[${s.size - cursor}];`);
  const attr = attrs.length ? ` __attribute__((${attrs.join(', ')}))` : '';
  return `struct ${s.name} {\n${lines.join('\n')}\n}${attr};`;
}

/**
 * The C declaration of a struct schema, preceded by the structs it contains (each once), with a
 * `_Static_assert` on every size. Throws SchemaError if the codec is not a struct or two
 * different nested structs share a name.
 */
export function cStruct(codec: Codec<unknown>, opts: { staticAssert?: boolean } = {}): string {
  const c = asKnown(codec);
  if (c.kind !== 'struct') throw new SchemaError(`cStruct needs a struct schema, got ${c.kind}`);
  const order: StructCodec<unknown>[] = [];
  nestedStructs(c, new Map(), order);
  const assert = opts.staticAssert ?? true;
  return order
    .map((s) => {
      const def = cDefinition(s);
      if (!assert) return def;
      return `${def}\n_Static_assert(sizeof(struct ${s.name}) == ${s.size}, "struct ${s.name} differs from its bpfctl schema");`;
    })
    .join('\n\n');
}
