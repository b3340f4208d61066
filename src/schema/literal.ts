/**
 * Values from people: CLI arguments and JSON. Integers in decimal or 0x/0o/0b (negative for
 * signed kinds), byte strings in hex (`0a0b0c`, `0x0a0b`, `aa:bb:cc`), JSON objects for structs
 * and JSON arrays for arrays. Every failure is a SchemaError naming the field and what it needed.
 */
import { bytes } from './bytes.ts';
import { asKnown, type Codec, type IntCodec } from './codec.ts';
import { describeValue } from './ints.ts';
import { inField, SchemaError } from './schema-error.ts';

const INT_TEXT = /^([+-]?)(0x[0-9a-f]+|0o[0-7]+|0b[01]+|[0-9]+)$/i;

function intExample(c: IntCodec<number> | IntCodec<bigint>): string {
  return `an integer for ${c.kind}${c.signed ? '' : ' (decimal or 0x hex)'}`;
}

function parseIntText(c: IntCodec<number> | IntCodec<bigint>, text: string): number | bigint {
  const m = INT_TEXT.exec(text.trim().replaceAll('_', ''));
  if (!m) throw new SchemaError(`expected ${intExample(c)}, got ${describeValue(text)}`);
  const big = m[1] === '-' ? -BigInt(m[2]!) : BigInt(m[2]!);
  return checkedInt(c, big);
}

function checkedInt(c: IntCodec<number> | IntCodec<bigint>, big: bigint): number | bigint {
  // The codec's own encode holds the range rules; a scratch write reuses them.
  (c as IntCodec<bigint>).encode(big, scratch, 0);
  return c.size === 8 ? big : Number(big);
}

const scratch = new DataView(new ArrayBuffer(8));

/** Hex text to bytes: `0a0b0c`, `0x0a0b`, `aa:bb:cc:dd:ee:ff`, `de ad be ef`. */
export function parseHexBytes(text: string, n?: number): Uint8Array {
  const want = n === undefined ? 'hex bytes' : `${n} bytes as hex (e.g. ${'00'.repeat(Math.min(n, 4))}${n > 4 ? '...' : ''})`;
  let t = text.trim();
  if (/^0x/i.test(t)) t = t.slice(2);
  t = t.replace(/[\s:-]/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(t) || (n === undefined && t.length === 0))
    throw new SchemaError(`expected ${want}, got ${describeValue(text)}`);
  const out = Uint8Array.from(Buffer.from(t, 'hex'));
  if (n !== undefined && out.length !== n) throw new SchemaError(`expected ${want}, got ${out.length} bytes`);
  return out;
}

/**
 * Converts a parsed JSON value (or any plain JS value) to what `codec` encodes, strictly: a
 * struct needs exactly its fields, an array exactly its length. Big integers may be strings
 * (JSON numbers lose precision above 2^53).
 */
export function fromJson<T>(codec: Codec<T>, value: unknown): T {
  const c = asKnown(codec);
  switch (c.kind) {
    case 'bytes': {
      if (value instanceof Uint8Array) return checkLen(value, c.size) as T;
      if (typeof value === 'string') return parseHexBytes(value, c.size) as T;
      if (Array.isArray(value)) {
        const out = new Uint8Array(value.length);
        value.forEach((v, i) => {
          out[i] = inField(`[${i}]`, () => {
            if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) throw new SchemaError(`expected a byte (0..255), got ${describeValue(v)}`);
            return v;
          });
        });
        return checkLen(out, c.size) as T;
      }
      throw new SchemaError(`expected ${c.size} bytes as a hex string, got ${describeValue(value)}`);
    }
    case 'cstring':
      if (typeof value !== 'string') throw new SchemaError(`expected a string of at most ${c.size} bytes, got ${describeValue(value)}`);
      c.encode(value, new DataView(new ArrayBuffer(c.size)), 0);
      return value as T;
    case 'array': {
      if (!Array.isArray(value)) throw new SchemaError(`expected a JSON array of ${c.len}, got ${describeValue(value)}`);
      if (value.length !== c.len) throw new SchemaError(`expected an array of ${c.len}, got ${value.length} elements`);
      return value.map((v, i) => inField(`[${i}]`, () => fromJson(c.elem, v))) as T;
    }
    case 'struct': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new SchemaError(`expected a JSON object for struct ${c.name} {${c.fields.map((f) => f.name).join(', ')}}, got ${describeValue(value)}`);
      const obj = value as Record<string, unknown>;
      const names = new Set(c.fields.map((f) => f.name));
      for (const k of Object.keys(obj))
        if (!names.has(k)) throw new SchemaError(`unknown field (struct ${c.name} has ${[...names].join(', ')})`, k);
      const out: Record<string, unknown> = {};
      for (const f of c.fields) {
        if (!(f.name in obj)) throw new SchemaError(`missing (struct ${c.name} needs every field)`, f.name);
        out[f.name] = inField(f.name, () => fromJson(f.codec, obj[f.name]));
      }
      return out as T;
    }
    default: {
      if (typeof value === 'string') return parseIntText(c, value) as T;
      if (typeof value === 'bigint') return checkedInt(c, value) as T;
      if (typeof value === 'number') {
        if (Number.isInteger(value) && !Number.isSafeInteger(value))
          throw new SchemaError(`${value} is beyond exact JSON numbers; write it as a string ("${BigInt(value)}" is what JSON read)`);
        if (!Number.isInteger(value)) throw new SchemaError(`expected ${intExample(c)}, got ${value}`);
        return checkedInt(c, BigInt(value)) as T;
      }
      throw new SchemaError(`expected ${intExample(c)}, got ${describeValue(value)}`);
    }
  }
}

function checkLen(b: Uint8Array, n: number): Uint8Array {
  if (b.length !== n) throw new SchemaError(`expected ${n} bytes, got ${b.length}`);
  return b;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new SchemaError(`expected ${what} in JSON, got ${describeValue(text)}`);
  }
}

/**
 * A value typed on the command line. Integers: `42`, `-1`, `0xff`; bytes: hex; cstring: the text
 * itself (or a JSON string); arrays: JSON (`[1,2,3]`, or just `1,2,3`); structs: a JSON object.
 * Throws SchemaError naming the field and the expected form.
 */
export function parseLiteral<T>(codec: Codec<T>, text: string): T {
  const c = asKnown(codec);
  switch (c.kind) {
    case 'bytes':
      return parseHexBytes(text, c.size) as T;
    case 'cstring': {
      const t = text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? parseJson(text, 'a string') : text;
      return fromJson(codec, t);
    }
    case 'array': {
      const t = text.trim();
      if (t.startsWith('[')) return fromJson(codec, parseJson(t, `an array of ${c.len}`));
      // A bare list of scalars, in the same spellings as a single value (so `0xff,1` works).
      const parts = t.split(',');
      if (parts.length !== c.len) throw new SchemaError(`expected an array of ${c.len}, got ${parts.length} elements`);
      return parts.map((p, i) => inField(`[${i}]`, () => parseLiteral(c.elem, p.trim()))) as T;
    }
    case 'struct':
      return fromJson(codec, parseJson(text, `an object for struct ${c.name} {${c.fields.map((f) => f.name).join(', ')}}`));
    default:
      return parseIntText(c, text) as T;
  }
}

const HEX_BYTE_TOKEN = /^(?:0x)?[0-9a-f]{1,2}$/i;

/**
 * Raw bytes of a map without BTF (or `--raw`), one rule for keys and values, matching what
 * `map dump` prints so its output pastes back:
 * - `05000000` (exactly 2 x size hex digits, digits only or not) and `0x05000000`: the bytes in
 *   memory order, as dump prints them;
 * - `05 00 00 00`, `0x05 0x00 0x00 0x00` (bpftool's `hex` form), `05:00:00:00`: one hex byte per token;
 * - `[5,0,0,0]`: a JSON array of bytes;
 * - any other decimal integer (`5`, `-1`, `+12345678`): that number in host (little-endian) order
 *   at the width of `size`; a leading sign forces decimal. (`0x...` is always bytes, never a number.)
 * Throws SchemaError naming the forms when none fits or the size is wrong.
 */
export function parseBytesLiteral(text: string, size: number): Uint8Array {
  const t = text.trim();
  const forms = `${size} bytes as ${'00'.repeat(Math.min(size, 4))}${size > 4 ? '...' : ''}, hex bytes separated by spaces, a JSON byte array or an integer`;
  if (t.startsWith('[')) return fromJson(bytes(size), parseJson(t, 'a byte array'));
  const tokens = t.split(/[\s:]+/).filter(Boolean);
  if (tokens.length > 1) {
    if (!tokens.every((x) => HEX_BYTE_TOKEN.test(x))) throw new SchemaError(`expected ${forms}, got ${describeValue(text)}`);
    if (tokens.length !== size) throw new SchemaError(`expected ${size} hex bytes, got ${tokens.length}`);
    return Uint8Array.from(tokens.map((x) => Number.parseInt(x.replace(/^0x/i, ''), 16)));
  }
  const hex = /^(0x)?([0-9a-f]+)$/i.exec(t);
  if (hex && hex[2]!.length === 2 * size) return Uint8Array.from(Buffer.from(hex[2]!, 'hex'));
  const int = hex?.[1] ? null : /^([+-]?)([0-9]+)$/.exec(t.replaceAll('_', ''));
  if (int && size <= 8) {
    const v = int[1] === '-' ? -BigInt(int[2]!) : BigInt(int[2]!);
    const bits = BigInt(size * 8);
    if (v < -(1n << (bits - 1n)) || v >= 1n << bits) throw new SchemaError(`${t} does not fit in ${size} byte${size === 1 ? '' : 's'}`);
    const out = new Uint8Array(size);
    let u = BigInt.asUintN(size * 8, v);
    for (let i = 0; i < size; i++, u >>= 8n) out[i] = Number(u & 0xffn);
    return out;
  }
  if (hex) throw new SchemaError(`expected ${size} bytes as hex (${2 * size} digits, e.g. ${'00'.repeat(Math.min(size, 4))}${size > 4 ? '...' : ''}), got ${hex[2]!.length} digits`);
  throw new SchemaError(`expected ${forms}, got ${describeValue(text)}`);
}

