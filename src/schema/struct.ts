import { alignUp, type Codec, type Infer, type StructCodec, type StructField } from './codec.ts';
import { SchemaError } from './schema-error.ts';
import { compileStruct } from './struct-compile.ts';

const C_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface StructOptions {
  /** `__attribute__((packed))`: no padding, alignment 1 (matches packed C structs). */
  packed?: boolean;
  /** `__attribute__((aligned(n)))`: raise the struct's alignment to n (a power of two). */
  align?: number;
}

/**
 * A C struct laid out by the C rules: each field at the next multiple of its alignment, the
 * struct aligned to its widest field and its size rounded up to that. Field order is the order
 * of the object literal's keys (which is why integer-like names are refused: JS reorders them).
 * Throws SchemaError for a bad name or alignment.
 */
export function struct<F extends Record<string, Codec<unknown>>>(
  name: string,
  fields: F,
  opts: StructOptions = {},
): StructCodec<{ [K in keyof F]: Infer<F[K]> }> {
  if (!C_IDENT.test(name)) throw new SchemaError(`struct name ${JSON.stringify(name)} is not a C identifier`);
  if (opts.align !== undefined && (!Number.isInteger(opts.align) || opts.align <= 0 || (opts.align & (opts.align - 1)) !== 0))
    throw new SchemaError(`struct ${name}: align must be a power of two, got ${opts.align}`);
  const packed = opts.packed ?? false;
  const laid: StructField[] = [];
  let cursor = 0;
  let align = 1;
  for (const [fname, codec] of Object.entries(fields)) {
    if (!C_IDENT.test(fname)) throw new SchemaError(`field name ${JSON.stringify(fname)} is not a C identifier`, `${name}`);
    const a = packed ? 1 : codec.align;
    cursor = alignUp(cursor, a);
    laid.push({ name: fname, codec, offset: cursor });
    cursor += codec.size;
    align = Math.max(align, a);
  }
  if (laid.length === 0) throw new SchemaError(`struct ${name} has no fields`);
  align = Math.max(align, opts.align ?? 1);
  return structWithLayout(name, laid, alignUp(cursor, align), align, packed) as StructCodec<{ [K in keyof F]: Infer<F[K]> }>;
}

/**
 * A struct with its layout given (from BTF, which records every offset); `cStruct` reproduces
 * it with explicit padding or `packed` where the natural rules would place fields differently.
 */
export function structWithLayout(
  name: string,
  fields: readonly StructField[],
  size: number,
  align: number,
  packed: boolean,
): StructCodec<Record<string, unknown>> {
  const frozen = Object.freeze(fields.map((f) => Object.freeze({ ...f })));
  const compiled = compileStruct(name, frozen);
  return Object.freeze({
    kind: 'struct' as const,
    name,
    size,
    align,
    packed,
    fields: frozen,
    encode: compiled.encode,
    decode: compiled.decode,
    cType: () => `struct ${name}`,
  });
}
