/**
 * Money as integer minor units (cents): sums of converted prices must not drift the way sums of
 * binary floats do, and every hop must agree to the cent. Conversion uses fixed rates (a real
 * shop would refresh them; fixed rates keep the README's answers reproducible).
 */
import { FunctionError } from '../../../src/runtime/sdk/index.ts';

/** Units of a currency per 1 USD. */
export const RATES: Readonly<Record<string, number>> = {
  USD: 1,
  EUR: 0.92,
  GBP: 0.79,
  JPY: 149.5,
  CAD: 1.36,
  CHF: 0.88,
};

export const CURRENCIES = Object.keys(RATES);

export interface Money {
  currency: string;
  /** Minor units (cents; for JPY too, so one rule converts every currency). */
  cents: number;
}

/** The currency code upper-cased. @throws FunctionError 400 for a currency the shop does not sell in */
export function currencyCode(v: unknown): string {
  const code = typeof v === 'string' ? v.trim().toUpperCase() : '';
  if (!(code in RATES)) throw new FunctionError(400, `unsupported currency ${JSON.stringify(v)} (supported: ${CURRENCIES.join(', ')})`);
  return code;
}

/** Converts through USD and rounds to the cent (half away from zero, like a till). */
export function convert(m: Money, to: string): Money {
  if (m.currency === to) return { currency: to, cents: m.cents };
  const from = RATES[m.currency];
  const rate = RATES[to];
  if (from === undefined || rate === undefined) throw new FunctionError(400, `cannot convert ${m.currency} to ${to}`);
  const exact = (m.cents / from) * rate;
  return { currency: to, cents: Math.sign(exact) * Math.round(Math.abs(exact)) };
}

/** "18.39" for 1839 cents: what the shop's answers show next to the cents. */
export function format(m: Money): string {
  const sign = m.cents < 0 ? '-' : '';
  const abs = Math.abs(m.cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** A money value as the answers carry it: cents for programs, `amount` for people. */
export function money(m: Money): { currency: string; cents: number; amount: string } {
  return { currency: m.currency, cents: m.cents, amount: format(m) };
}

/** Reads a Money back from a document. @throws FunctionError 500 when a previous hop wrote something else */
export function asMoney(v: unknown, what: string): Money {
  const o = v as Partial<Money> | null;
  if (!o || typeof o.currency !== 'string' || typeof o.cents !== 'number' || !Number.isInteger(o.cents)) {
    throw new FunctionError(500, `${what}: expected money { currency, cents }`);
  }
  return { currency: o.currency, cents: o.cents };
}
