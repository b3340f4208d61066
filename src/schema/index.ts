/** Schemas: one description of a shared struct drives its C declaration and its TS codec. */
export { array } from './array.ts';
export { checkAgainstBtf, codecFromBtf, describeBtf, type BtfType } from './btf.ts';
export { bytes, cstring } from './bytes.ts';
export { cDeclarator, cDefinition, cStruct } from './c-decl.ts';
export * from './chain-maps.ts';
export type { ArrayCodec, BytesCodec, Codec, CStringCodec, Infer, IntCodec, IntKind, KnownCodec, StructCodec, StructField } from './codec.ts';
export { asKnown, isIntCodec } from './codec.ts';
export * from './descriptor.ts';
export * as poolLayout from './pool-layout.ts';
export { alignOf, decode, encode, encodeInto, sizeOf } from './encode.ts';
export { be16, be32, be64, i8, i16, i32, i64, intCodec, u8, u16, u32, u64 } from './ints.ts';
export { fromJson, parseHexBytes, parseLiteral } from './literal.ts';
export { SchemaError } from './schema-error.ts';
export { struct, structWithLayout, type StructOptions } from './struct.ts';
