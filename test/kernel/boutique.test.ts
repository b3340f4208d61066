/**
 * The boutique example end to end: examples/boutique/policy.ts through `startChain` (seven
 * function processes and a gateway, each registered by the supervisor, sk_msg between them),
 * driven over HTTP.
 * Checks real answers of every route: prices converted at the fixed rates, cart state kept by the
 * cart function across requests, checkout totals with the shipping quote, Luhn and network
 * checks that decline with 402 and keep the cart, validation errors with their statuses (a
 * failing hop anywhere on an eight-hop route answers straight to the gateway), and that stop()
 * leaves nothing behind.
 */
import { existsSync, rmdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pidAlive } from '../../src/runtime/pool/index.ts';
import { type Chain, startChain } from '../../src/runtime/supervisor/index.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { CHAIN_PINNED, ownByKind, ownObjects, runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}-boutique`;
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
// Taken in before(), not at import: uvu imports every file first, and another file may set these
// at import time; restoring what was there when this file started leaves its values alone.
let saved: Record<string, string | undefined> = {};
const logs: string[] = [];

let before: Snapshot;
let chain: Chain;
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

// The answers are checked field by field against literals: a loose type keeps that readable.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Json = Record<string, any>;

function call(route: string, body?: unknown): Promise<{ status: number; text: string; json: Json }> {
  const url = chain.routes.find((r) => r.name === route)?.url;
  if (!url) throw new Error(`no route ${route}`);
  const data = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      // A connection reset mid-response rejects the call instead of crashing the run.
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: Json = {};
        try {
          json = JSON.parse(text) as Json;
        } catch {}
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function ok(route: string, body?: unknown): Promise<Json> {
  const r = await call(route, body);
  assert.is(r.status, 200, `${route}: ${r.text}`);
  return r.json;
}

const ADDRESS = { street: '1600 Amphitheatre Parkway', city: 'Mountain View', zip: '94043', country: 'US' };
// A Visa test number that passes the Luhn check; the "...455" one differs in its check digit.
const CARD = { number: '4432-8015-6152-0454', expMonth: 1, expYear: 2039, cvv: '672' };
const order = (user: string, extra: Json = {}) => ({ user, currency: 'EUR', email: `${user}@example.com`, address: ADDRESS, card: CARD, ...extra });

test.before(async () => {
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  chain = await startChain(join(repo, 'examples/boutique/policy.ts'), { poolName: ID, log: (l) => logs.push(l), timeoutMs: 5000 });
});

test.after(async () => {
  agent.destroy();
  await chain?.stop();
  rmSync(ENV.BPFCTL_RUN_DIR, { recursive: true, force: true });
  if (existsSync(ENV.BPFCTL_BPFFS)) rmdirSync(ENV.BPFCTL_BPFFS);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('runs every function of the shop as its own registered process', () => {
  const names = chain.instances().map((i) => `${i.name}#${i.instance}`);
  assert.equal(names.sort(), ['cart#0', 'catalog#0', 'checkout#0', 'currency#0', 'frontend#0', 'frontend#1', 'gateway#0', 'payment#0', 'shipping#0'].sort());
  assert.ok(chain.instances().every((i) => i.state === 'ready' && i.pid !== null && pidAlive(i.pid)));
  assert.equal(chain.routes.map((r) => r.name), ['/products', '/product', '/currency', '/cart/add', '/cart', '/cart/empty', '/checkout']);
});

test('/product and /products: catalog lookups with prices converted at the fixed rates', async () => {
  const p = await ok('/product', { id: 'OLJCESPC7Z', currency: 'EUR' });
  assert.equal(p.product.price, { currency: 'EUR', units: 1839, amount: '18.39' });
  assert.is(p.product.name, 'Sunglasses');
  const usd = await ok('/product', { id: 'olJcespc7z' });
  assert.equal(usd.product.price, { currency: 'USD', units: 1999, amount: '19.99' });
  // An empty body (curl without -d) lists everything in USD.
  const all = await ok('/products');
  assert.is(all.products.length, 9);
  const kitchen = await ok('/products', { currency: 'JPY', category: 'kitchen' });
  assert.equal(
    kitchen.products.map((x: Json) => [x.id, x.price.amount]),
    [
      ['LS4PSXUNUM', '2764'],
      ['9SIQT8TOJO', '821'],
      ['6E92ZMYYFZ', '1344'],
    ],
  );
});

test('/currency converts amounts, yen without decimals', async () => {
  const r = await ok('/currency', { amount: '10.00', from: 'USD', to: 'EUR' });
  assert.equal(r, { from: { currency: 'USD', units: 1000, amount: '10.00' }, to: { currency: 'EUR', units: 920, amount: '9.20' }, rate: 0.92 });
  const y = await ok('/currency', { amount: 2500, from: 'jpy', to: 'GBP' });
  assert.equal(y.to, { currency: 'GBP', units: 1321, amount: '13.21' });
});

test('the cart keeps state per user across requests', async () => {
  assert.equal(await ok('/cart/add', { user: 'alice', id: 'OLJCESPC7Z', quantity: 2 }), { user: 'alice', items: [{ id: 'OLJCESPC7Z', quantity: 2 }], count: 2 });
  await ok('/cart/add', { user: 'bob', id: '1YMWWN1N4O' });
  const a = await ok('/cart/add', { user: 'alice', id: '6E92ZMYYFZ' });
  assert.equal(a.items, [
    { id: 'OLJCESPC7Z', quantity: 2 },
    { id: '6E92ZMYYFZ', quantity: 1 },
  ]);
  const view = await ok('/cart', { user: 'alice', currency: 'EUR' });
  assert.equal(
    view.items.map((i: Json) => [i.name, i.quantity, i.unitPrice.amount, i.lineTotal.amount]),
    [
      ['Sunglasses', 2, '18.39', '36.78'],
      ['Mug', 1, '8.27', '8.27'],
    ],
  );
  assert.equal(view.subtotal, { currency: 'EUR', units: 4505, amount: '45.05' });
  assert.is(view.count, 3);
  const bob = await ok('/cart', { user: 'bob' });
  assert.equal(bob.subtotal, { currency: 'USD', units: 10999, amount: '109.99' });
});

test('a declined card is a 402 with the reason, and the cart is kept', async () => {
  const luhn = await call('/checkout', order('alice', { card: { ...CARD, number: '4432801561520455' } }));
  assert.is(luhn.status, 402);
  assert.match(luhn.text, /Luhn check failed/);
  // Passes Luhn, but the shop takes Visa and Mastercard only.
  const amex = await call('/checkout', order('alice', { card: { ...CARD, number: '378282246310005', cvv: '1234' } }));
  assert.is(amex.status, 402);
  assert.match(amex.text, /amex cards are not accepted/);
  const expired = await call('/checkout', order('alice', { card: { ...CARD, expYear: 2020 } }));
  assert.is(expired.status, 402);
  assert.match(expired.text, /card expired 01\/2020/);
  assert.is((await ok('/cart', { user: 'alice' })).count, 3);
});

test('checkout: totals with the shipping quote, a paid order, an empty cart after', async () => {
  const { order: o } = await ok('/checkout', order('alice'));
  assert.match(o.orderId, /^[0-9a-f-]{36}$/);
  assert.is(o.user, 'alice');
  assert.equal(o.address, ADDRESS);
  assert.equal(
    o.items.map((i: Json) => [i.id, i.quantity, i.lineTotal.units]),
    [
      ['OLJCESPC7Z', 2, 3678],
      ['6E92ZMYYFZ', 1, 827],
    ],
  );
  assert.equal(o.subtotal, { currency: 'EUR', units: 4505, amount: '45.05' });
  // US: 5.99 USD + 0.50 for each item after the first = 6.99 USD = 6.43 EUR.
  assert.equal(o.shipping, { cost: { currency: 'EUR', units: 643, amount: '6.43' }, carrier: 'USPS', days: 3 });
  assert.equal(o.total, { currency: 'EUR', units: 5148, amount: '51.48' });
  assert.match(o.payment.transactionId, /^[0-9a-f-]{36}$/);
  assert.equal(o.payment.card, { type: 'visa', last4: '0454' });
  assert.equal(o.payment.amount, o.total);
  assert.not.ok('card' in o, 'the card number never reaches the answer');
  assert.not.match(JSON.stringify(o), /4432/);
  assert.equal(await ok('/cart', { user: 'alice' }), { user: 'alice', currency: 'USD', items: [], count: 0, subtotal: { currency: 'USD', units: 0, amount: '0.00' } });
  const again = await call('/checkout', order('alice'));
  assert.is(again.status, 400);
  assert.match(again.text, /cart of alice is empty/);
});

test('free shipping above 150 USD, zone rates abroad', async () => {
  await ok('/cart/add', { user: 'carol', id: '1YMWWN1N4O', quantity: 2 });
  const { order: o } = await ok('/checkout', order('carol', { currency: 'CHF', address: { ...ADDRESS, country: 'ch' } }));
  assert.equal(o.shipping.cost, { currency: 'CHF', units: 0, amount: '0.00' });
  assert.equal(o.total, { currency: 'CHF', units: 2 * 9679, amount: '193.58' });
  await ok('/cart/add', { user: 'dave', id: '9SIQT8TOJO' });
  const { order: d } = await ok('/checkout', order('dave', { currency: 'USD', address: { ...ADDRESS, country: 'JP' } }));
  assert.equal([d.shipping.carrier, d.shipping.cost.amount, d.total.amount], ['DHL', '19.99', '25.48']);
});

test('bad requests fail at the hop that knows, with its status', async () => {
  const cases: [string, unknown, number, RegExp][] = [
    ['/product', { id: 'NOPE' }, 404, /catalog: no product "NOPE"/],
    ['/product', '{not json', 400, /frontend: body is not valid JSON/],
    ['/product', { id: 'OLJCESPC7Z', currency: 'XYZ' }, 400, /unsupported currency/],
    ['/cart/add', { user: 'eve', id: 'NOPE' }, 404, /no product/],
    ['/cart/add', { user: 'eve', id: 'OLJCESPC7Z', quantity: 0 }, 400, /'quantity' must be an integer from 1 to 99/],
    ['/currency', { amount: '1.234', to: 'EUR' }, 400, /at most 2 decimals/],
    ['/checkout', order('eve', { email: 'nobody' }), 400, /'email' is not an email address/],
    ['/checkout', order('eve', { card: { ...CARD, number: '12' } }), 400, /12 to 19 digits/],
  ];
  for (const [route, body, status, re] of cases) {
    const r = await call(route, body);
    assert.is(r.status, status, `${route} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
    assert.match(r.text, re);
  }
  // Nothing was added for eve on the way.
  assert.is((await ok('/cart', { user: 'eve' })).count, 0);
});

test('concurrent shoppers each get their own cart and order', async () => {
  const users = Array.from({ length: 24 }, (_, i) => `shopper${i}`);
  await Promise.all(users.map((u, i) => ok('/cart/add', { user: u, id: 'L9ECAV7KIM', quantity: 1 + (i % 3) })));
  const orders = await Promise.all(users.map((u) => ok('/checkout', order(u, { currency: 'USD' }))));
  for (const [i, { order: o }] of orders.entries()) {
    const q = 1 + (i % 3);
    assert.is(o.user, users[i]);
    assert.is(o.count, q);
    // 89.99 each; 150 USD and up ships free, else 5.99 + 0.50 per extra item.
    const sub = 8999 * q;
    assert.is(o.total.units, sub + (sub >= 15000 ? 0 : 599 + 50 * (q - 1)));
  }
  assert.is(new Set(orders.map((o) => o.order.orderId)).size, users.length);
});

test('stop() leaves nothing behind', async () => {
  const pids = chain.instances().map((i) => i.pid!);
  const own = ownObjects(ENV.BPFCTL_BPFFS);
  assert.equal(ownByKind(own), CHAIN_PINNED, `our pinned objects (${[...own].join(' ')})`);
  await chain.stop();
  for (const pid of pids) assert.not.ok(pidAlive(pid), `pid ${pid}`);
  assert.not.ok(existsSync(chain.pinDir));
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`));
  assert.equal(await runLeaks(before, own, [ENV.BPFCTL_BPFFS, ENV.BPFCTL_RUN_DIR]), []);
  assert.not.ok(
    logs.some((l) => /handler failed/.test(l)),
    logs.filter((l) => /handler failed/.test(l)).join('\n'),
  );
});

test.run();
