/**
 * Money as integer minor units (cents; yen for JPY, which has none smaller): sums of converted
 * prices must not drift the way sums of binary floats do, and every hop must agree to the unit.
 * Conversion uses fixed rates (a real shop would refresh them; fixed rates keep the README's
 * answers reproducible).
 */
import { FunctionError } from 'bpfctl/runtime';

/** Units of a currency per 1 USD, and the digits after its decimal point. */
export const CURRENCY: Readonly<Record<string, { rate: number; decimals: number }>> = {
  USD: { rate: 1, decimals: 2 },
  EUR: { rate: 0.92, decimals: 2 },
  GBP: { rate: 0.79, decimals: 2 },
  JPY: { rate: 149.5, decimals: 0 },
  CAD: { rate: 1.36, decimals: 2 },
  CHF: { rate: 0.88, decimals: 2 },
};

export const CURRENCIES = Object.keys(CURRENCY);

export interface Money {
  currency: string;
  /** Minor units: 1839 is 18.39 EUR, 2989 is 2989 JPY. */
  units: number;
}

function info(code: string): { rate: number; decimals: number } {
  const c = CURRENCY[code];
  if (!c) throw new FunctionError(400, `unsupported currency ${JSON.stringify(code)} (supported: ${CURRENCIES.join(', ')})`);
  return c;
}

/** The currency code upper-cased. @throws FunctionError 400 for a currency the shop does not sell in */
export function currencyCode(v: unknown): string {
  const code = typeof v === 'string' ? v.trim().toUpperCase() : String(v);
  info(code);
  return code;
}

/** Converts through USD and rounds to the minor unit (half away from zero, like a till). */
export function convert(m: Money, to: string): Money {
  if (m.currency === to) return { currency: to, units: m.units };
  const a = info(m.currency);
  const b = info(to);
  const exact = (m.units / 10 ** a.decimals / a.rate) * b.rate * 10 ** b.decimals;
  // toFixed(6) first: 18.39 * 100 is 1838.9999999999998 in binary floating point.
  const rounded = Math.round(Number(Math.abs(exact).toFixed(6)));
  return { currency: to, units: exact < 0 ? -rounded : rounded };
}

/** Target units per source unit, as a rate board shows it. */
export function rate(from: string, to: string): number {
  return Number((info(to).rate / info(from).rate).toFixed(6));
}

/** Minor units from a decimal amount ("10", "10.5", 10.5). @throws FunctionError 400 */
export function parseAmount(v: unknown, currency: string): number {
  const d = info(currency).decimals;
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
  const m = /^(\d{1,12})(?:\.(\d+))?$/.exec(text);
  if (!m || (m[2] ?? '').length > d) {
    throw new FunctionError(400, `'amount' must be a non-negative ${currency} amount with at most ${d} decimals`);
  }
  return Number(m[1]) * 10 ** d + Number((m[2] ?? '').padEnd(d, '0') || '0');
}

/** "18.39" for 1839 EUR units, "2989" for 2989 JPY: what the shop's answers show people. */
export function format(m: Money): string {
  const d = CURRENCY[m.currency]?.decimals ?? 2;
  const sign = m.units < 0 ? '-' : '';
  const abs = Math.abs(m.units);
  if (d === 0) return `${sign}${abs}`;
  const scale = 10 ** d;
  return `${sign}${Math.floor(abs / scale)}.${String(abs % scale).padStart(d, '0')}`;
}

/** A money value as the answers carry it: units for programs, `amount` for people. */
export function money(m: Money): { currency: string; units: number; amount: string } {
  return { currency: m.currency, units: m.units, amount: format(m) };
}

/** Reads a Money back from a document. @throws FunctionError 500 when a previous hop wrote something else */
export function asMoney(v: unknown, what: string): Money {
  const o = v as Partial<Money> | null;
  if (!o || typeof o.currency !== 'string' || typeof o.units !== 'number' || !Number.isInteger(o.units)) {
    throw new FunctionError(500, `${what}: expected money { currency, units }`);
  }
  return { currency: o.currency, units: o.units };
}
