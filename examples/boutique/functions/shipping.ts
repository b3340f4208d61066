/**
 * shipping: a quote for the order's destination and size, in USD (the currency hop after it
 * converts). Zones, per-item surcharges and free shipping above a threshold stand in for a
 * carrier's rate table.
 */
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Doc, readDoc, writeDoc } from '../lib/json.ts';
import { money } from '../lib/money.ts';

const NEAR = new Set(['CA', 'GB', 'CH', 'DE', 'FR', 'IT', 'ES', 'NL', 'BE', 'AT', 'IE', 'PT', 'FI', 'SE', 'DK', 'NO', 'PL', 'CZ', 'LU']);
/** USD units. */
const FREE_FROM = 15000;
const PER_EXTRA_ITEM = 50;

export function quote(country: string, quantity: number, subtotalUsd: number): { units: number; carrier: string; days: number } {
  const zone = country === 'US' ? { base: 599, carrier: 'USPS', days: 3 } : NEAR.has(country) ? { base: 1299, carrier: 'DHL', days: 5 } : { base: 1999, carrier: 'DHL', days: 10 };
  const units = subtotalUsd >= FREE_FROM ? 0 : zone.base + PER_EXTRA_ITEM * Math.max(0, quantity - 1);
  return { units, carrier: zone.carrier, days: zone.days };
}

export default function shipping(req: Request): string {
  const doc = readDoc(req);
  const items = doc.items as { quantity: number; unitPrice: { units: number; currency: string } }[] | undefined;
  const country = (doc.address as Doc | undefined)?.country;
  if (!Array.isArray(items) || typeof country !== 'string') throw new FunctionError(500, 'shipping: expected priced items and an address');
  let quantity = 0;
  let subtotal = 0;
  for (const it of items) {
    // The catalog hop priced these in USD; the quote's thresholds are in USD too.
    if (it.unitPrice.currency !== 'USD') throw new FunctionError(500, 'shipping: item prices must still be in USD');
    quantity += it.quantity;
    subtotal += it.unitPrice.units * it.quantity;
  }
  const q = quote(country, quantity, subtotal);
  doc.shipping = { cost: money({ currency: 'USD', units: q.units }), carrier: q.carrier, days: q.days };
  return writeDoc(doc);
}
