/**
 * cart: the shop's only state, the carts by user id, kept in this process's memory. That is why
 * the policy runs exactly one instance of it: the kernel spreads requests over instances by
 * request id, not by user, so two instances would each see half of every cart.
 *
 * It sits twice on /checkout: first it hands the cart's items to the order, and at the end of the
 * route, once payment has succeeded, it empties the cart. A failed payment skips the rest of the
 * route (the gateway answers with the error), so the cart is kept for another try.
 */
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Doc, readDoc, writeDoc } from '../lib/json.ts';

/** user -> product id -> quantity (a Map keeps the order items were first added in). */
const carts = new Map<string, Map<string, number>>();
const MAX_LINES = 50;
const MAX_QUANTITY = 999;

function items(user: string): { id: string; quantity: number }[] {
  return [...(carts.get(user) ?? [])].map(([id, quantity]) => ({ id, quantity }));
}

function summary(user: string): Doc {
  const list = items(user);
  return { user, items: list, count: list.reduce((n, i) => n + i.quantity, 0) };
}

export default function cart(req: Request): string | undefined {
  const doc = readDoc(req);
  const user = doc.user as string;
  if (typeof user !== 'string') throw new FunctionError(500, 'cart: expected a user');
  switch (req.route) {
    case '/cart/add': {
      const id = doc.id as string;
      let c = carts.get(user);
      if (!c) {
        c = new Map();
        carts.set(user, c);
      }
      if (!c.has(id) && c.size >= MAX_LINES) throw new FunctionError(409, `a cart holds at most ${MAX_LINES} different products`);
      c.set(id, Math.min(MAX_QUANTITY, (c.get(id) ?? 0) + (doc.quantity as number)));
      return writeDoc(summary(user));
    }
    case '/cart/empty':
      carts.delete(user);
      return writeDoc(summary(user));
    case '/cart':
      return writeDoc({ ...doc, items: items(user) });
    case '/checkout': {
      const order = doc.order as Doc | undefined;
      if (order && (order.payment as Doc | undefined)?.transactionId) {
        // Paid: the order leaves with the items it was charged for; the cart starts over.
        carts.delete(user);
        return writeDoc({ order });
      }
      const list = items(user);
      if (list.length === 0) throw new FunctionError(400, `the cart of ${user} is empty`);
      return writeDoc({ ...doc, items: list });
    }
    default:
      throw new FunctionError(404, `cart does not serve ${req.route}`);
  }
}
