/**
 * Summing per-CPU values: each CPU counts on its own slot, and the total is what people ask for.
 * Integers add up (unwrapped: a sum of u32 counters may exceed 2^32), structs and arrays add up
 * element by element, and bytes/strings, which have no sum, take the first CPU's non-empty value.
 */
import { asKnown, type Codec } from '../schema/index.ts';

export function sumValues<V>(codec: Codec<V>, values: readonly V[]): V {
  const c = asKnown(codec);
  switch (c.kind) {
    case 'struct': {
      const out: Record<string, unknown> = {};
      for (const f of c.fields) out[f.name] = sumValues(f.codec, values.map((v) => (v as Record<string, unknown>)[f.name]));
      return out as V;
    }
    case 'array':
      return Array.from({ length: c.len }, (_, i) => sumValues(c.elem, values.map((v) => (v as unknown[])[i]))) as V;
    case 'bytes':
      return ((values as readonly Uint8Array[]).find((b) => b.some((x) => x !== 0)) ?? values[0] ?? new Uint8Array(c.size)) as V;
    case 'cstring':
      return ((values as readonly string[]).find((s) => s !== '') ?? '') as V;
    default:
      if (c.size === 8) return (values as readonly bigint[]).reduce((a, b) => a + b, 0n) as V;
      return (values as readonly number[]).reduce((a, b) => a + b, 0) as V;
  }
}
