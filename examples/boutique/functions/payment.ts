/**
 * payment: validates the card and "charges" the order total. Checks what a payment front end
 * checks before calling a processor: the Luhn checksum, the card network (the shop takes Visa
 * and Mastercard, like Online Boutique's payment service), and the expiry date. Declines are
 * 402 with the reason; nothing of the card but its network and last four digits goes on.
 */
import { randomUUID } from 'node:crypto';
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Doc, readDoc, writeDoc } from '../lib/json.ts';
import { asMoney, money } from '../lib/money.ts';

/** The Luhn (mod 10) checksum that every card number carries in its last digit. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

export function network(digits: string): string {
  if (digits.startsWith('4')) return 'visa';
  const two = Number(digits.slice(0, 2));
  const four = Number(digits.slice(0, 4));
  if ((two >= 51 && two <= 55) || (four >= 2221 && four <= 2720)) return 'mastercard';
  if (two === 34 || two === 37) return 'amex';
  return 'unknown';
}

export default function payment(req: Request): string {
  const doc = readDoc(req);
  const card = doc.card as { number: string; expMonth: number; expYear: number } | undefined;
  const order = doc.order as Doc | undefined;
  if (!card || !order) throw new FunctionError(500, 'payment: expected a card and an order');
  if (!luhnValid(card.number)) throw new FunctionError(402, 'card number is invalid (Luhn check failed)');
  const type = network(card.number);
  if (type !== 'visa' && type !== 'mastercard') throw new FunctionError(402, `${type} cards are not accepted (Visa and Mastercard only)`);
  const now = new Date();
  // A card is valid through the last day of its expiry month.
  if (card.expYear < now.getUTCFullYear() || (card.expYear === now.getUTCFullYear() && card.expMonth < now.getUTCMonth() + 1)) {
    throw new FunctionError(402, `card expired ${String(card.expMonth).padStart(2, '0')}/${card.expYear}`);
  }
  const amount = asMoney(order.total, 'order.total');
  order.payment = { transactionId: randomUUID(), card: { type, last4: card.number.slice(-4) }, amount: money(amount) };
  return writeDoc({ user: doc.user, order });
}
