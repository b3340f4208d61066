// An online shop as a function chain, after Google's Online Boutique (the application SPRIGHT
// evaluated): seven functions, each request a JSON document that every hop reads, extends and
// hands on through the shared pool. Run it with `bpfctl run examples/boutique/policy.ts`;
// README.md has curl commands and their answers.
import { definePolicy } from 'bpfctl';

export default definePolicy({
  name: 'boutique',
  functions: {
    // Every route starts here: two instances share the validation work.
    frontend: { instances: 2, handler: './functions/frontend.ts' },
    catalog: { instances: 1, handler: './functions/catalog.ts' },
    currency: { instances: 1, handler: './functions/currency.ts' },
    // Carts live in this process's memory, and requests spread over instances by request id,
    // not by user: more than one instance would split every cart.
    cart: { instances: 1, handler: './functions/cart.ts' },
    shipping: { instances: 1, handler: './functions/shipping.ts' },
    checkout: { instances: 1, handler: './functions/checkout.ts' },
    payment: { instances: 1, handler: './functions/payment.ts' },
  },
  routes: {
    '/products': ['frontend', 'catalog', 'currency'],
    '/product': ['frontend', 'catalog', 'currency'],
    '/currency': ['frontend', 'currency'],
    '/cart/add': ['frontend', 'catalog', 'cart'],
    '/cart': ['frontend', 'cart', 'catalog', 'currency', 'checkout'],
    '/cart/empty': ['frontend', 'cart'],
    // Shipping quotes in USD before the currency hop converts every price of the order; the cart
    // comes back at the end to empty itself once payment has gone through.
    '/checkout': ['frontend', 'cart', 'catalog', 'shipping', 'currency', 'checkout', 'payment', 'cart'],
  },
  // The full product listing is the largest document (~2 KiB).
  pool: { bufferSize: 8192, bufferCount: 512 },
});
