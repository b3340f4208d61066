/**
 * The schema model: a codec knows its C layout (size, alignment, C type) and how to move a JS
 * value in and out of bytes. One codec drives the C declaration (`cStruct`), the runtime codec
 * (`encode`/`decode`), CLI parsing (`parseLiteral`) and the check against a map's BTF.
 */

export interface Codec<T> {
  /** 'u8' | ... | 'be64' | 'bytes' | 'cstring' | 'array' | 'struct'. */
  readonly kind: string;
  readonly size: number;
  readonly align: number;
  /** Writes `value` at `offset`; SchemaError (with the field path) if it does not fit. */
  encode(value: T, view: DataView, offset: number): void;
  decode(view: DataView, offset: number): T;
  /** The C type, e.g. '__u32', '__be16', 'struct bpfctl_desc', '__u16[16]' for arrays. */
  cType(): string;
}

/** The JS type a codec reads and writes. */
export type Infer<C> = C extends Codec<infer T> ? T : never;

export type IntKind = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'be16' | 'be32' | 'be64';

export interface IntCodec<T extends number | bigint> extends Codec<T> {
  readonly kind: IntKind;
  readonly signed: boolean;
  readonly bigEndian: boolean;
}

export interface BytesCodec extends Codec<Uint8Array> {
  readonly kind: 'bytes';
}

/** A C `char[n]`: decoded up to the first NUL, encoded as UTF-8 and NUL-padded. */
export interface CStringCodec extends Codec<string> {
  readonly kind: 'cstring';
}

export interface ArrayCodec<T> extends Codec<T[]> {
  readonly kind: 'array';
  readonly elem: Codec<T>;
  readonly len: number;
}

export interface StructField {
  readonly name: string;
  readonly codec: Codec<unknown>;
  readonly offset: number;
}

export interface StructCodec<T> extends Codec<T> {
  readonly kind: 'struct';
  readonly name: string;
  readonly fields: readonly StructField[];
  /** Laid out with `__attribute__((packed))`: fields at byte offsets regardless of alignment. */
  readonly packed: boolean;
}

/** Every concrete codec; `asKnown` narrows a `Codec<unknown>` to this union by its kind. */
export type KnownCodec =
  | IntCodec<number>
  | IntCodec<bigint>
  | BytesCodec
  | CStringCodec
  | ArrayCodec<unknown>
  | StructCodec<Record<string, unknown>>;

const KNOWN = new Set(['u8', 'u16', 'u32', 'u64', 'i8', 'i16', 'i32', 'i64', 'be16', 'be32', 'be64', 'bytes', 'cstring', 'array', 'struct']);

export function asKnown(codec: Codec<unknown>): KnownCodec {
  if (!KNOWN.has(codec.kind)) throw new TypeError(`not a bpfctl schema codec: kind ${codec.kind}`);
  return codec as KnownCodec;
}

export function isIntCodec(codec: Codec<unknown>): codec is IntCodec<number> | IntCodec<bigint> {
  const k = asKnown(codec).kind;
  return k !== 'bytes' && k !== 'cstring' && k !== 'array' && k !== 'struct';
}

export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}
