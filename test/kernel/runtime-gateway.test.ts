/**
 * The gateway over real HTTP, a real shared-memory pool and a real `instances` map, with the test
 * playing the chain: it accepts the gateway's chain connection (as the hub would), reads the
 * descriptors it sends and answers them over the same connection, the way replies arrive through
 * sk_msg. Each test scripts the chain's behaviour (compute, fail, stay silent, reply late).
 */
import http from 'node:http';
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../loader/index.ts';
import { DESC_DROP_REASON_SHIFT } from '../../src/ir/chain-limits.ts';
import { instancesValue, u32Key } from '../../src/ir/chain-maps.ts';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { type Gateway, startGateway } from '../../src/runtime/gateway/index.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import { DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF } from '../../src/runtime/sdk/wire.ts';
import { type Descriptor, descriptor } from '../../src/schema/descriptor.ts';
import { decode, encode } from '../../src/schema/encode.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { ownLeaks } from './runtime-fixtures/leaks.ts';

// Every resource is made in before(): uvu imports all test files before running any, so objects
// made at import time would appear inside other files' leak-check windows.
let before: Snapshot;
const BUF = 128;
const ir = lowerPolicy({
  name: 'gw-test',
  functions: { upper: { instances: 1, handler: './none.ts' }, other: { instances: 2, handler: './none.ts' } },
  routes: { '/up': ['upper'], '/both': ['upper', 'other'], named: ['other'] },
  pool: { bufferSize: BUF, bufferCount: 8 },
});
let pool: Pool;
let instances: BpfMap;
const setLive = (fn: number, count: number) =>
  instances.update(u32Key(fn), encode(instancesValue, { count, inst: Array.from({ length: 32 }, (_, i) => (i < count ? i : 0)) }));

type Script = (d: Descriptor, reply: (d: Descriptor) => void) => void;
let script: Script = () => {};
let chainPeer: net.Socket | null = null;
const chain = net.createServer((s) => {
  chainPeer = s;
  s.on('error', () => {});
  let carry = Buffer.alloc(0);
  s.on('data', (chunk) => {
    carry = Buffer.concat([carry, chunk]);
    while (carry.length >= 24) {
      const d = decode(descriptor, carry.subarray(0, 24));
      carry = carry.subarray(24);
      script(d, (r) => s.write(encode(descriptor, r)));
    }
  });
});
let registeredFd = -1;
let gw: Gateway;
// uvu loads tests as CommonJS (no top-level await): the async setup lives in before().
test.before(async () => {
  before = snapshot();
  pool = Pool.create({ name: `bpfctl-test-${process.pid}-gw`, bufferSize: BUF, bufferCount: 8, backing: 'shm' });
  instances = BpfMap.create({ type: 'array', name: 'gwt_inst', keySize: 4, valueSize: instancesValue.size, maxEntries: 64 });
  setLive(1, 1);
  setLive(2, 2);
  await new Promise<void>((r) => chain.listen(0, '127.0.0.1', r));
  gw = await startGateway({
    policy: ir,
    pool,
    hubPort: (chain.address() as net.AddressInfo).port,
    register: (fd) => {
      registeredFd = fd;
    },
    instances,
    instanceCacheMs: 0,
    timeoutMs: 300,
    // Above the pool's 8 buffers, so the pool runs dry before this bound is reached.
    maxInFlight: 64,
    log: () => {},
  });
  await gw.ready;
});

const routeLen = (id: number) => ir.routes[id]!.hops.length;
/** The usual chain: upper-cases the payload in place and returns it. */
const upperChain: Script = (d, reply) => {
  const b = pool.bytes(d.buf_off, d.buf_len);
  for (let i = 0; i < b.length; i++) if (b[i]! >= 97 && b[i]! <= 122) b[i]! -= 32;
  reply({ ...d, hop: routeLen(d.route) });
};

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function call(path: string, o: { method?: string; body?: string | Buffer; chunked?: boolean } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, method: o.method ?? (o.body !== undefined ? 'POST' : 'GET'), agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (o.body !== undefined && !o.chunked) req.setHeader('content-length', Buffer.byteLength(o.body));
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
async function poolSettles(): Promise<number> {
  const end = Date.now() + 2000;
  while (pool.stats().inUse !== 0 && Date.now() < end) await sleep(10);
  return pool.stats().inUse;
}

test('registers its chain socket through the callback', () => {
  assert.ok(registeredFd > 2);
  assert.is(gw.stats().chainUp, true);
});

test('round trip: the route runs and the reply buffer becomes the response', async () => {
  script = upperChain;
  const r = await call('/up', { body: 'hello chain' });
  assert.is(r.status, 200);
  assert.is(r.body, 'HELLO CHAIN');
  const q = await call('/both?x=1', { body: 'query ignored' });
  assert.is(q.body, 'QUERY IGNORED');
  const named = await call('/named/', { body: 'named route' });
  assert.is(named.status, 200);
  assert.is(named.body, 'NAMED ROUTE');
  const empty = await call('/up');
  assert.is(empty.status, 200);
  assert.is(empty.body, '');
  const chunked = await call('/up', { body: 'chunked body', chunked: true });
  assert.is(chunked.body, 'CHUNKED BODY');
  assert.is(await poolSettles(), 0);
});

test('concurrent requests each get their own answer', async () => {
  script = (d, reply) => setTimeout(() => upperChain(d, reply), Math.random() * 5);
  // More requests than buffers (8): some meet an exhausted pool; every one gets an answer.
  const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => call('/both', { body: `req-${i}` })));
  const ok = rs.filter((r) => r.status === 200);
  assert.ok(ok.length >= 8, `${ok.length} succeeded`);
  for (const [i, r] of rs.entries()) {
    if (r.status === 200) assert.is(r.body, `REQ-${i}`);
    else assert.is(r.status, 503);
  }
  assert.is(await poolSettles(), 0);
});

test('404 unknown route, 413 body larger than a buffer', async () => {
  script = upperChain;
  assert.is((await call('/nope')).status, 404);
  assert.is((await call('/up', { body: 'x'.repeat(BUF + 1) })).status, 413);
  assert.is((await call('/up', { body: 'y'.repeat(BUF * 3), chunked: true })).status, 413);
  assert.is((await call('/up', { body: 'z'.repeat(BUF) })).body, 'Z'.repeat(BUF));
  assert.is(await poolSettles(), 0);
});

test('503: a function without live instances, and an exhausted pool', async () => {
  script = upperChain;
  setLive(2, 0);
  const r = await call('/both', { body: 'x' });
  assert.is(r.status, 503);
  assert.match(r.body, /other has no live instance/);
  assert.is((await call('/up', { body: 'only upper' })).status, 200);
  setLive(2, 2);
  assert.is((await call('/both', { body: 'x' })).status, 200);

  const held: { d: Descriptor; reply: (d: Descriptor) => void }[] = [];
  script = (d, reply) => held.push({ d, reply });
  const waiting = Array.from({ length: 8 }, () => call('/up', { body: 'hold' }));
  await until(() => held.length >= 8, '8 held requests');
  const r2 = await call('/up', { body: 'one too many' });
  assert.is(r2.status, 503);
  assert.match(r2.body, /pool exhausted/);
  for (const h of held) upperChain(h.d, h.reply);
  for (const w of await Promise.all(waiting)) assert.is(w.body, 'HOLD');
  assert.is(await poolSettles(), 0);
});

test('504 on timeout, the buffer is freed, and a late reply is harmless', async () => {
  const held: { d: Descriptor; reply: (d: Descriptor) => void }[] = [];
  script = (d, reply) => held.push({ d, reply });
  const t0 = Date.now();
  const r = await call('/up', { body: 'slow' });
  assert.is(r.status, 504);
  assert.ok(Date.now() - t0 >= 250, 'waited for the timeout');
  assert.is(pool.stats().inUse, 0);
  // A late reply naming the freed buffer, and one naming a buffer a function allocated.
  const late = held[0]!;
  const fresh = pool.alloc(12345)!;
  late.reply({ ...late.d, hop: 1 });
  late.reply({ ...late.d, hop: 1, flags: DESC_FLAG_RESPONSE_NEW_BUF, buf_off: fresh.offset, buf_gen: fresh.gen });
  await sleep(50);
  assert.is(pool.stats().inUse, 0, 'the late new buffer was freed');
  assert.ok(gw.stats().late >= 2);
});

test('a client that disconnects mid-request leaks nothing', async () => {
  const held: { d: Descriptor; reply: (d: Descriptor) => void }[] = [];
  script = (d, reply) => held.push({ d, reply });
  // Gone while the chain works on it: the reply finds no one to write to.
  const sock = net.connect(gw.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbye!');
  await until(() => held.length >= 1, 'the request to reach the chain');
  sock.destroy();
  await sleep(20);
  upperChain(held[0]!.d, held[0]!.reply);
  // Gone before the body was complete: nothing reaches the chain at all.
  const half = net.connect(gw.port, '127.0.0.1');
  await new Promise((r) => half.once('connect', r));
  half.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\nonly part');
  await sleep(30);
  half.destroy();
  assert.is(await poolSettles(), 0);
  assert.is(held.length, 1);
  assert.ok(gw.stats().clientGone >= 1);
});

test('function errors and new buffers come back as the function set them', async () => {
  script = (d, reply) => {
    const text = Buffer.from(pool.bytes(d.buf_off, d.buf_len)).toString();
    if (text === 'teapot') {
      const msg = Buffer.from('upper: short and stout');
      pool.bytes(d.buf_off, msg.length).set(msg);
      return reply({ ...d, hop: routeLen(d.route), flags: DESC_FLAG_ERROR, status: 418, buf_len: msg.length });
    }
    if (text === 'bare') return reply({ ...d, hop: routeLen(d.route), flags: DESC_FLAG_ERROR, status: 500, buf_len: 0 });
    if (text === 'refused') return reply({ ...d, flags: DESC_FLAG_DROPPED | (4 << DESC_DROP_REASON_SHIFT) });
    if (text === 'garbage') return reply({ ...d, hop: routeLen(d.route), buf_gen: d.buf_gen + 1 });
    // A function that answers in a buffer of its own and frees the request's.
    const b = pool.alloc(999)!;
    const out = Buffer.from(`new:${text}`);
    pool.bytes(b.offset, out.length).set(out);
    pool.free({ offset: d.buf_off, gen: d.buf_gen });
    reply({ ...d, hop: routeLen(d.route), flags: DESC_FLAG_RESPONSE_NEW_BUF, buf_off: b.offset, buf_gen: b.gen, buf_len: out.length });
  };
  const teapot = await call('/up', { body: 'teapot' });
  assert.is(teapot.status, 418);
  assert.is(teapot.body, 'upper: short and stout');
  const bare = await call('/up', { body: 'bare' });
  assert.is(bare.status, 500);
  assert.is(bare.body, 'Internal Server Error\n');
  assert.is((await call('/up', { body: 'refused' })).status, 503);
  assert.is((await call('/up', { body: 'garbage' })).status, 502);
  const fresh = await call('/both', { body: 'abc' });
  assert.is(fresh.status, 200);
  assert.is(fresh.body, 'new:abc');
  assert.is(await poolSettles(), 0);
});

test('the chain connection failing: requests get 503 until the gateway has reconnected', async () => {
  script = upperChain;
  const first = chainPeer!;
  first.resetAndDestroy();
  await sleep(5);
  const during = await call('/up', { body: 'x' });
  assert.ok(during.status === 503 || during.status === 200, `status ${during.status}`);
  const end = Date.now() + 3000;
  while ((chainPeer === first || !gw.stats().chainUp) && Date.now() < end) await sleep(10);
  assert.is((await call('/up', { body: 'back' })).body, 'BACK');
  assert.is(await poolSettles(), 0);
});

test('teardown: nothing leaked', async () => {
  agent.destroy();
  await gw.close();
  chainPeer?.destroy();
  await new Promise<void>((r) => chain.close(() => r()));
  assert.is(pool.stats().inUse, 0);
  pool.close();
  Pool.remove(pool.path);
  instances.close();
  assert.equal(ownLeaks(before), []);
});

test.run();
