/**
 * Per-second change between two readings of a value, for watching counters: integers give a
 * rate, structs and arrays give the rates of their integer parts, and what cannot change at a
 * rate (bytes, strings) is left out. `undefined` means nothing in the value is numeric.
 */
import { asKnown, type Codec } from '../schema/index.ts';

export type Rate = number | { [field: string]: Rate } | Rate[];

export function rateOf(codec: Codec<unknown>, prev: unknown, cur: unknown, seconds: number): Rate | undefined {
  const c = asKnown(codec);
  switch (c.kind) {
    case 'struct': {
      const out: Record<string, Rate> = {};
      for (const f of c.fields) {
        const r = rateOf(f.codec, (prev as Record<string, unknown>)[f.name], (cur as Record<string, unknown>)[f.name], seconds);
        if (r !== undefined) out[f.name] = r;
      }
      return Object.keys(out).length ? out : undefined;
    }
    case 'array': {
      const rates = (cur as unknown[]).map((v, i) => rateOf(c.elem, (prev as unknown[])[i], v, seconds));
      return rates.every((r) => r !== undefined) ? (rates as Rate[]) : undefined;
    }
    case 'bytes':
    case 'cstring':
      return undefined;
    default: {
      if (!(seconds > 0)) return 0;
      const d = typeof cur === 'bigint' ? Number((cur as bigint) - (prev as bigint)) : (cur as number) - (prev as number);
      return Math.round((d / seconds) * 100) / 100;
    }
  }
}

/** Whether any part of the codec is an integer (so a watch has rates to show). */
export function hasNumbers(codec: Codec<unknown>): boolean {
  const c = asKnown(codec);
  if (c.kind === 'struct') return c.fields.some((f) => hasNumbers(f.codec));
  if (c.kind === 'array') return hasNumbers(c.elem);
  return c.kind !== 'bytes' && c.kind !== 'cstring';
}
