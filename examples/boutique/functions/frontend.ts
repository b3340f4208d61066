/**
 * frontend: the first hop of every route. Checks and normalises what a client sent (types,
 * ranges, currency codes, card number formatting) so the hops behind it can trust the document,
 * and turns a bad request into a 400 before any other function spends work on it.
 */
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Doc, needObject, needString, optInt, readDoc, writeDoc } from '../lib/json.ts';
import { currencyCode, parseAmount } from '../lib/money.ts';

const USER = /^[A-Za-z0-9_.-]{1,64}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const COUNTRY = /^[A-Z]{2}$/;

function user(doc: Doc): string {
  const u = needString(doc, 'user');
  if (!USER.test(u)) throw new FunctionError(400, "'user' may hold letters, digits, '_', '.', '-' (at most 64)");
  return u;
}

function address(doc: Doc): Doc {
  const a = needObject(doc, 'address');
  const country = needString(a, 'country').toUpperCase();
  if (!COUNTRY.test(country)) throw new FunctionError(400, "'address.country' must be a two-letter country code");
  return { street: needString(a, 'street', 'address.street'), city: needString(a, 'city', 'address.city'), zip: needString(a, 'zip', 'address.zip'), country };
}

function card(doc: Doc): Doc {
  const c = needObject(doc, 'card');
  // People type card numbers with spaces or dashes; the payment hop wants digits only.
  const number = needString(c, 'number', 'card.number').replace(/[\s-]/g, '');
  if (!/^\d{12,19}$/.test(number)) throw new FunctionError(400, "'card.number' must have 12 to 19 digits");
  const expMonth = optInt(c, 'expMonth', 1, 12, 0);
  const expYear = optInt(c, 'expYear', 2000, 2100, 0);
  if (!expMonth || !expYear) throw new FunctionError(400, "'card.expMonth' (1-12) and 'card.expYear' are required");
  const cvv = needString(c, 'cvv', 'card.cvv');
  if (!/^\d{3,4}$/.test(cvv)) throw new FunctionError(400, "'card.cvv' must have 3 or 4 digits");
  return { number, expMonth, expYear, cvv };
}

export default function frontend(req: Request): string {
  const doc = readDoc(req);
  const currency = currencyCode(doc.currency ?? 'USD');
  switch (req.route) {
    case '/products': {
      const out: Doc = { currency };
      if (doc.category !== undefined) out.category = needString(doc, 'category').toLowerCase();
      return writeDoc(out);
    }
    case '/product':
      return writeDoc({ id: needString(doc, 'id').toUpperCase(), currency });
    case '/currency': {
      const from = currencyCode(doc.from ?? 'USD');
      return writeDoc({ units: parseAmount(doc.amount, from), from, currency: currencyCode(doc.to ?? doc.currency ?? 'USD') });
    }
    case '/cart/add':
      return writeDoc({ user: user(doc), id: needString(doc, 'id').toUpperCase(), quantity: optInt(doc, 'quantity', 1, 99, 1) });
    case '/cart':
    case '/cart/empty':
      return writeDoc({ user: user(doc), currency });
    case '/checkout': {
      const email = needString(doc, 'email');
      if (!EMAIL.test(email)) throw new FunctionError(400, "'email' is not an email address");
      return writeDoc({ user: user(doc), currency, email, address: address(doc), card: card(doc) });
    }
    default:
      throw new FunctionError(404, `frontend does not serve ${req.route}`);
  }
}
