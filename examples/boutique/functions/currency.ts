/**
 * currency: converts every money value in the document ({ currency, units } objects, wherever
 * they sit) into the currency the client asked for (`doc.currency`). Working on the document's
 * shape rather than on named fields lets one function serve listings, carts and orders alike.
 */
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Doc, readDoc, writeDoc } from '../lib/json.ts';
import { convert, currencyCode, type Money, money, rate } from '../lib/money.ts';

function isMoney(v: unknown): v is Money {
  return v !== null && typeof v === 'object' && typeof (v as Money).currency === 'string' && typeof (v as Money).units === 'number';
}

/** Replaces money values in place, depth first; returns how many it converted. */
function convertAll(v: unknown, to: string): number {
  let n = 0;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (isMoney(v[i])) {
        v[i] = money(convert(v[i], to));
        n++;
      } else n += convertAll(v[i], to);
    }
  } else if (v !== null && typeof v === 'object') {
    const o = v as Doc;
    for (const k of Object.keys(o)) {
      const x = o[k];
      if (isMoney(x)) {
        o[k] = money(convert(x, to));
        n++;
      } else n += convertAll(x, to);
    }
  }
  return n;
}

export default function currency(req: Request): string {
  const doc = readDoc(req);
  const to = currencyCode(doc.currency);
  if (req.route === '/currency') {
    if (typeof doc.units !== 'number' || typeof doc.from !== 'string') throw new FunctionError(500, 'currency: expected { units, from }');
    const from: Money = { currency: doc.from, units: doc.units };
    return writeDoc({ from: money(from), to: money(convert(from, to)), rate: rate(from.currency, to) });
  }
  convertAll(doc, to);
  return writeDoc(doc);
}
