/**
 * The handler work every variant of the chain bench does, byte for byte the same (the C
 * functions in ./c/ do it too): three small, in-place transformations of a 128-byte payload, so
 * the transport between functions, not the work, is what the variants differ in. The reply is
 * checked against `expected()` before anything is measured: a variant that computes something
 * else does not get a number.
 */

/** Hop 1: ASCII upper case, in place (`len` bytes from `off`); returns the new length. */
export function upper(b: Uint8Array, off: number, len: number): number {
  for (let i = off, end = off + len; i < end; i++) {
    const c = b[i]!;
    if (c >= 97 && c <= 122) b[i] = c - 32;
  }
  return len;
}

/** Hop 2: byte order reversed, in place. */
export function reverse(b: Uint8Array, off: number, len: number): number {
  for (let i = off, j = off + len - 1; i < j; i++, j--) {
    const t = b[i]!;
    b[i] = b[j]!;
    b[j] = t;
  }
  return len;
}

/** 32-bit FNV-1a: cheap, and any variant that loses or reorders a byte gets another stamp. */
export function fnv1a(b: Uint8Array, off: number, len: number): number {
  let h = 0x811c9dc5;
  for (let i = off, end = off + len; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

export const STAMP_BYTES = 11;
const HEX = '0123456789abcdef';

/** Hop 3: appends " #" + the payload's FNV-1a as 8 hex digits + "\n"; needs STAMP_BYTES of room. */
export function stamp(b: Uint8Array, off: number, len: number): number {
  const h = fnv1a(b, off, len);
  const e = off + len;
  b[e] = 32;
  b[e + 1] = 35;
  for (let i = 0; i < 8; i++) b[e + 2 + i] = HEX.charCodeAt((h >>> (28 - 4 * i)) & 15);
  b[e + 10] = 10;
  return len + STAMP_BYTES;
}

export const WORK = { upper, reverse, stamp } as const;
export type WorkName = keyof typeof WORK;
/** The chain's order: what each variant's route visits. */
export const CHAIN: readonly WorkName[] = ['upper', 'reverse', 'stamp'];

/** The request body every variant is sent (wrk's POST body, the loop drivers' payload). */
export const PAYLOAD = 'order=4711&user=alice&items=OLJCESPC7Z:2,6E92ZMYYFZ:1&currency=EUR&note=leave-at-the-door-please-thanks-xx&promo=SPRIGHT-2026-ok';

/** What the chain answers to `input`. */
export function expected(input: string = PAYLOAD): string {
  const b = new Uint8Array(input.length + STAMP_BYTES);
  b.set(new TextEncoder().encode(input));
  let len = input.length;
  for (const w of CHAIN) len = WORK[w](b, 0, len);
  return new TextDecoder().decode(b.subarray(0, len));
}
