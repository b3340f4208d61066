/**
 * catalog: product lookups. Fills in names and USD prices for whatever the document names (one
 * product, a listing, or the items of a cart) and refuses unknown product ids with 404, so no
 * later hop has to know the catalog.
 */
import { FunctionError, type Request } from 'bpfctl/runtime';
import { type Product, PRODUCTS } from '../lib/catalog-data.ts';
import { type Doc, readDoc, writeDoc } from '../lib/json.ts';
import { money } from '../lib/money.ts';

const byId = new Map(PRODUCTS.map((p) => [p.id, p]));

function find(id: unknown): Product {
  const p = typeof id === 'string' ? byId.get(id) : undefined;
  if (!p) throw new FunctionError(404, `no product ${JSON.stringify(id)}`);
  return p;
}

function view(p: Product): Doc {
  return { id: p.id, name: p.name, description: p.description, categories: p.categories, price: money({ currency: 'USD', units: p.priceUsd }) };
}

/** Cart lines get the name and the unit price; quantities come from the cart hop. */
function priceItems(items: unknown): Doc[] {
  if (!Array.isArray(items)) throw new FunctionError(500, 'catalog: expected the cart items');
  return items.map((it: Doc) => {
    const p = find(it.id);
    return { id: p.id, name: p.name, quantity: it.quantity, unitPrice: money({ currency: 'USD', units: p.priceUsd }) };
  });
}

export default function catalog(req: Request): string {
  const doc = readDoc(req);
  switch (req.route) {
    case '/products': {
      const cat = doc.category as string | undefined;
      const list = cat === undefined ? PRODUCTS : PRODUCTS.filter((p) => p.categories.includes(cat));
      return writeDoc({ currency: doc.currency, products: list.map(view) });
    }
    case '/product':
      return writeDoc({ currency: doc.currency, product: view(find(doc.id)) });
    case '/cart/add':
      // Only the check matters here: the cart stores ids, and prices are looked up when shown.
      find(doc.id);
      return writeDoc(doc);
    case '/cart':
    case '/checkout':
      doc.items = priceItems(doc.items);
      return writeDoc(doc);
    default:
      throw new FunctionError(404, `catalog does not serve ${req.route}`);
  }
}
