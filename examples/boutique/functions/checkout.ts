/**
 * checkout: the order's arithmetic, on prices already in the client's currency: line totals
 * (converted unit price times quantity, the way a till would show them), subtotal, shipping and
 * total. On /cart it only totals the cart; on /checkout it also opens the order (id, address,
 * contact) that the payment hop then charges.
 */
import { randomUUID } from 'node:crypto';
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Doc, readDoc, writeDoc } from '../lib/json.ts';
import { asMoney, type Money, money } from '../lib/money.ts';

interface Line {
  id: string;
  name: string;
  quantity: number;
  unitPrice: Money;
}

function lines(doc: Doc, currency: string): { items: Doc[]; count: number; subtotal: Money } {
  if (!Array.isArray(doc.items)) throw new FunctionError(500, 'checkout: expected the cart items');
  let count = 0;
  let units = 0;
  const items = (doc.items as Line[]).map((it) => {
    const unit = asMoney(it.unitPrice, 'unitPrice');
    if (unit.currency !== currency) throw new FunctionError(500, `checkout: item price in ${unit.currency}, order in ${currency}`);
    const line = unit.units * it.quantity;
    count += it.quantity;
    units += line;
    return { id: it.id, name: it.name, quantity: it.quantity, unitPrice: money(unit), lineTotal: money({ currency, units: line }) };
  });
  return { items, count, subtotal: { currency, units } };
}

export default function checkout(req: Request): string {
  const doc = readDoc(req);
  const currency = doc.currency as string;
  const { items, count, subtotal } = lines(doc, currency);
  if (req.route === '/cart') return writeDoc({ user: doc.user, currency, items, count, subtotal: money(subtotal) });
  if (req.route !== '/checkout') throw new FunctionError(404, `checkout does not serve ${req.route}`);
  const ship = doc.shipping as Doc;
  const cost = asMoney(ship.cost, 'shipping.cost');
  const total: Money = { currency, units: subtotal.units + cost.units };
  const order: Doc = {
    orderId: randomUUID(),
    user: doc.user,
    email: doc.email,
    address: doc.address,
    currency,
    items,
    count,
    subtotal: money(subtotal),
    shipping: { cost: money(cost), carrier: ship.carrier, days: ship.days },
    total: money(total),
  };
  // The card rides along to the payment hop only; the order itself never holds the number.
  return writeDoc({ user: doc.user, card: doc.card, order });
}
