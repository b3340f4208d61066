/**
 * Straight-line encode/decode for a struct, generated once per schema (as TypeGPU and
 * protobuf codecs do). A generic loop over fields makes every `codec.encode` call site
 * megamorphic and costs ~1 us per small struct; descriptors and map entries move at millions per
 * second, so integer fields are inlined as DataView calls with their range check, and only
 * other kinds call their codec. Field names are C identifiers (checked by `struct`) or BTF names,
 * embedded through JSON.stringify either way.
 */
import { asKnown, type Codec, type StructField } from './codec.ts';
import { SchemaError } from './schema-error.ts';

type Encode = (value: Record<string, unknown>, view: DataView, offset: number) => void;
type Decode = (view: DataView, offset: number) => Record<string, unknown>;

const ACCESSOR: Record<string, [string, boolean]> = {
  u8: ['Uint8', false],
  i8: ['Int8', false],
  u16: ['Uint16', true],
  i16: ['Int16', true],
  u32: ['Uint32', true],
  i32: ['Int32', true],
  u64: ['BigUint64', true],
  i64: ['BigInt64', true],
  be16: ['Uint16', false],
  be32: ['Uint32', false],
  be64: ['BigUint64', false],
};

export function compileStruct(name: string, fields: readonly StructField[]): { encode: Encode; decode: Decode } {
  const codecs: Codec<unknown>[] = fields.map((f) => f.codec);
  const enc: string[] = [];
  const dec: string[] = [];
  fields.forEach((f, i) => {
    const key = JSON.stringify(f.name);
    const c = asKnown(f.codec);
    const acc = ACCESSOR[c.kind];
    enc.push(`i = ${i}; x = v[${key}];`);
    enc.push('if (x === undefined) missing();');
    if (acc && (c.kind === 'u8' || c.kind === 'i8' || c.size < 8)) {
      const [min, max] = c.kind.startsWith('i') ? [-(2 ** (c.size * 8 - 1)), 2 ** (c.size * 8 - 1) - 1] : [0, 2 ** (c.size * 8) - 1];
      // Anything unusual (a bigint, a bad value) takes the codec's own path: same rules, same errors.
      enc.push(`if (typeof x === 'number' && x >= ${min} && x <= ${max} && Number.isInteger(x)) dv.set${acc[0]}(o + ${f.offset}, x${acc[1] ? ', true' : ''});`);
      enc.push(`else c[${i}].encode(x, dv, o + ${f.offset});`);
      dec.push(`${key}: dv.get${acc[0]}(o + ${f.offset}${acc[1] ? ', true' : ''})`);
    } else if (acc) {
      const [min, max] = c.kind.startsWith('i') ? [`-(2n ** 63n)`, `2n ** 63n - 1n`] : ['0n', '2n ** 64n - 1n'];
      enc.push(`if (typeof x === 'bigint' && x >= ${min} && x <= ${max}) dv.set${acc[0]}(o + ${f.offset}, x${acc[1] ? ', true' : ''});`);
      enc.push(`else c[${i}].encode(x, dv, o + ${f.offset});`);
      dec.push(`${key}: dv.get${acc[0]}(o + ${f.offset}${acc[1] ? ', true' : ''})`);
    } else {
      enc.push(`c[${i}].encode(x, dv, o + ${f.offset});`);
      dec.push(`${key}: c[${i}].decode(dv, o + ${f.offset})`);
    }
  });
  const wrap = (err: unknown, i: number): unknown => (err instanceof SchemaError ? err.within(fields[i]!.name) : err);
  // Thrown inside the try below, which adds the field name to the path.
  const missing = (): never => {
    throw new SchemaError(`missing (struct ${name} needs every field)`);
  };
  const notObject = (v: unknown): never => {
    const what = v === null ? 'null' : Array.isArray(v) ? `an array of ${v.length}` : v instanceof Uint8Array ? `${v.length} bytes` : String(v);
    throw new SchemaError(`expected struct ${name} (an object), got ${what}`);
  };
  const fn = name.replace(/\W/g, '_');
  const encodeSrc = `return function encode_${fn}(v, dv, o) {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) notObject(v);
  let i = 0, x;
  try {
    ${enc.join('\n    ')}
  } catch (err) {
    throw wrap(err, i);
  }
};`;
  const decodeSrc = `return function decode_${fn}(dv, o) {
  return { ${dec.join(', ')} };
};`;
  const encode = new Function('c', 'SchemaError', 'wrap', 'missing', 'notObject', encodeSrc)(codecs, SchemaError, wrap, missing, notObject) as Encode;
  const decode = new Function('c', decodeSrc)(codecs) as Decode;
  return { encode, decode };
}
