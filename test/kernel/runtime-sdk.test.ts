/**
 * The function SDK over real TCP sockets and a real shared-memory pool, with the test playing the
 * chain: it accepts the instance's connection (as the hub would) and writes descriptors into it,
 * split and coalesced the way sk_msg delivers them; what the instance sends comes back over the
 * same connection because no sockmap is involved here. The kernel redirect is covered by
 * runtime-chain.test.ts.
 */
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lowerPolicy } from '../../src/ir/policy.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import { RouteEntry, type RouteView, staticRouteTable } from '../../src/runtime/route-table.ts';
import { runFunction, type FunctionInstance } from '../../src/runtime/sdk/run.ts';
import { FunctionError, type Handler } from '../../src/runtime/sdk/types.ts';
import { DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF } from '../../src/runtime/sdk/wire.ts';
import { DESC_DROP_REASON_SHIFT } from '../../src/ir/chain-limits.ts';
import { type Descriptor, descriptor } from '../../src/schema/descriptor.ts';
import { decode, encode } from '../../src/schema/encode.ts';
import { snapshot } from '../helpers/leaks.ts';
import { ownLeaks } from './runtime-fixtures/leaks.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any,
// so the pool is made then too (made at import, it would be left behind by a run that stops early).
let before = snapshot();
test.before(() => {
  before = snapshot();
  pool = Pool.create({ name: `bpfctl-test-${process.pid}-sdk`, bufferSize: 256, bufferCount: 64, backing: 'shm' });
});
const ir = lowerPolicy({
  name: 'sdk-test',
  functions: { upper: { instances: 1, handler: './none.ts' }, other: { instances: 1, handler: './none.ts' } },
  routes: { '/one': ['upper'], '/two': ['upper', 'other'], '/three': ['other', 'upper', 'other'] },
  pool: { bufferSize: 256, bufferCount: 64 },
});
let pool: Pool;
const utf8 = new TextDecoder();

const handler: Handler = (req) => {
  const t = req.text();
  if (t === 'throw') throw new Error('boom');
  if (t === 'teapot') throw new FunctionError(418, 'short and stout');
  if (t === 'new') {
    const v = req.alloc(3);
    v.set([65, 66, 67]);
    req.alloc(10); // not returned: must be freed
    return v;
  }
  if (t.startsWith('async')) return new Promise((r) => setTimeout(() => r(`${t}!`), Number(t.slice(5)) || 5));
  if (t === 'bytes') return new Uint8Array([1, 2, 3]);
  if (t === 'same') return undefined;
  const b = req.body;
  for (let i = 0; i < b.length; i++) if (b[i]! >= 97 && b[i]! <= 122) b[i]! -= 32;
  return b.length;
};

/** The chain's side of one instance: a listener standing in for the hub, and its accepted socket. */
interface Harness {
  inst: FunctionInstance;
  peer(): net.Socket;
  accepted: number;
  replies: Descriptor[];
  waitReplies(n: number, ms?: number): Promise<Descriptor[]>;
  close(): Promise<void>;
}

async function harness(o: { maxInFlight?: number; maxQueue?: number; routes?: RouteView } = {}): Promise<Harness> {
  let peer: net.Socket | null = null;
  let carry = Buffer.alloc(0);
  const replies: Descriptor[] = [];
  let waiter: (() => void) | null = null;
  const h = { accepted: 0 } as Harness;
  const server = net.createServer((s) => {
    h.accepted++;
    peer = s;
    s.on('error', () => {});
    s.on('data', (chunk) => {
      carry = Buffer.concat([carry, chunk]);
      while (carry.length >= 24) {
        replies.push(decode(descriptor, carry.subarray(0, 24)));
        carry = carry.subarray(24);
      }
      waiter?.();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const hubPort = (server.address() as net.AddressInfo).port;
  // With routes given, no policy: what the supervisor gives an instance (its id, its handler and
  // the live routes), since a policy file may have changed since the chain started.
  const inst = await runFunction({
    ...(o.routes ? { fnId: 1, routes: o.routes } : { policy: ir }),
    functionName: 'upper',
    instance: 3,
    handler,
    hubPort,
    register: () => {},
    pool,
    maxInFlight: o.maxInFlight,
    maxQueue: o.maxQueue,
    log: () => {},
  });
  await inst.ready;
  while (!peer) await new Promise((r) => setTimeout(r, 1));
  h.inst = inst;
  h.peer = () => peer!;
  h.replies = replies;
  h.waitReplies = async (n, ms = 2000) => {
    const end = Date.now() + ms;
    while (replies.length < n && Date.now() < end) {
      await new Promise<void>((r) => {
        waiter = r;
        setTimeout(r, 20);
      });
    }
    return replies.splice(0, replies.length);
  };
  h.close = async () => {
    inst.close();
    peer?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return h;
}

function request(text: string, over: Partial<Descriptor> = {}): Descriptor {
  const b = pool.alloc(process.pid)!;
  const bytes = new TextEncoder().encode(text);
  pool.bytes(b.offset, bytes.length).set(bytes);
  return { route: 0, hop: 0, flags: 0, gw_inst: 7, status: 0, req_id: b.index + 1000, buf_off: b.offset, buf_len: bytes.length, buf_gen: b.gen, ...over };
}

const wire = (ds: Descriptor[]) => Buffer.concat(ds.map((d) => encode(descriptor, d)));
const body = (d: Descriptor) => utf8.decode(pool.bytes(d.buf_off, d.buf_len));
const freeAll = (ds: Descriptor[]) => {
  for (const d of ds) pool.free({ offset: d.buf_off, gen: d.buf_gen });
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('coalesced: several descriptors in one write, each handled and sent on with hop + 1', async () => {
  const h = await harness();
  try {
    const reqs = ['abc', 'hello', 'x', 'chain', 'zzz'].map((t) => request(t, { route: 1 }));
    h.peer().write(wire(reqs));
    const got = await h.waitReplies(5);
    assert.is(got.length, 5);
    const byId = new Map(got.map((d) => [d.req_id, d]));
    for (const r of reqs) {
      const d = byId.get(r.req_id)!;
      assert.ok(d, `reply for ${r.req_id}`);
      assert.is(d.hop, 1);
      assert.is(d.flags, 0);
      assert.is(d.gw_inst, 7);
      assert.is(d.buf_off, r.buf_off);
      assert.is(d.buf_gen, r.buf_gen);
    }
    assert.equal(got.map(body).sort(), ['ABC', 'CHAIN', 'HELLO', 'X', 'ZZZ']);
    // Sent together: the instance batched its replies (one read in, one write out).
    assert.ok(h.inst.stats().batches <= 2, `batches ${h.inst.stats().batches}`);
    freeAll(got);
  } finally {
    await h.close();
  }
});

test('partial: descriptors split across reads are reassembled', async () => {
  const h = await harness();
  try {
    const [a, b, c] = ['one', 'two', 'six'].map((t) => request(t));
    const bytes = wire([a!, b!, c!]);
    // 10 bytes, then 14 (completes a), then 1.5 descriptors, then the rest.
    for (const [from, to] of [
      [0, 10],
      [10, 24],
      [24, 60],
      [60, 61],
      [61, 72],
    ] as const) {
      h.peer().write(bytes.subarray(from, to));
      await sleep(15);
    }
    const got = await h.waitReplies(3);
    assert.equal(got.map(body).sort(), ['ONE', 'SIX', 'TWO']);
    assert.equal(
      got.map((d) => d.hop),
      [1, 1, 1],
    );
    freeAll(got);
  } finally {
    await h.close();
  }
});

test('errors: a throwing handler answers the gateway (ERROR, status, hop = route length), no buffer leaks', async () => {
  const h = await harness();
  try {
    const inUse = pool.stats().inUse;
    const reqs = [request('throw', { route: 1 }), request('teapot', { route: 2, hop: 1 }), request('new', { route: 0 }), request('bytes'), request('same')];
    h.peer().write(wire(reqs));
    const got = new Map((await h.waitReplies(5)).map((d) => [d.req_id, d]));
    const thrown = got.get(reqs[0]!.req_id)!;
    assert.is(thrown.flags & DESC_FLAG_ERROR, DESC_FLAG_ERROR);
    assert.is(thrown.status, 500);
    assert.is(thrown.hop, 2);
    assert.is(body(thrown), 'upper: boom');
    const teapot = got.get(reqs[1]!.req_id)!;
    assert.is(teapot.status, 418);
    assert.is(teapot.hop, 3);
    assert.is(body(teapot), 'upper: short and stout');
    const fresh = got.get(reqs[2]!.req_id)!;
    assert.is(fresh.flags, DESC_FLAG_RESPONSE_NEW_BUF);
    assert.is.not(fresh.buf_off, reqs[2]!.buf_off);
    assert.is(body(fresh), 'ABC');
    assert.not.ok(pool.validate(reqs[2]!.buf_off, reqs[2]!.buf_gen), 'the request buffer was freed');
    assert.equal([...pool.bytes(got.get(reqs[3]!.req_id)!.buf_off, 3)], [1, 2, 3]);
    assert.is(body(got.get(reqs[4]!.req_id)!), 'same');
    freeAll([...got.values()]);
    // Every buffer is back: the unreturned alloc(10) as well.
    assert.is(pool.stats().inUse, inUse);
    assert.is(h.inst.stats().failed, 2);
  } finally {
    await h.close();
  }
});

test('stale or misrouted descriptors go back to the gateway untouched', async () => {
  const h = await harness();
  try {
    const stale = request('stale');
    const staleGen = stale.buf_gen;
    stale.buf_gen = staleGen + 5;
    const wrongHop = request('wrong', { route: 2, hop: 0 }); // hop 0 of /three is 'other'
    const dropped = request('dropped', { route: 1, hop: 1, flags: DESC_FLAG_DROPPED | (4 << DESC_DROP_REASON_SHIFT) });
    const droppedBad = request('bad', { route: 1, hop: 1, flags: DESC_FLAG_DROPPED | (3 << DESC_DROP_REASON_SHIFT) });
    h.peer().write(wire([stale, wrongHop, dropped, droppedBad]));
    const got = new Map((await h.waitReplies(3)).map((d) => [d.req_id, d]));
    await sleep(30);
    assert.is(got.size, 3, 'the refused descriptor with a bad buffer is discarded');
    const s = got.get(stale.req_id)!;
    assert.is(s.flags & DESC_FLAG_ERROR, DESC_FLAG_ERROR);
    assert.is(s.hop, 1);
    assert.is(utf8.decode(pool.bytes(stale.buf_off, 5)), 'stale', 'a stale buffer is not written');
    assert.is(got.get(wrongHop.req_id)!.hop, 3);
    const b = got.get(dropped.req_id)!;
    assert.is(b.flags, DESC_FLAG_ERROR, 'DROPPED cleared, ERROR set');
    assert.is(b.status, 503);
    assert.is(b.hop, 2);
    assert.is(h.inst.stats().misrouted, 3);
    assert.is(h.inst.stats().stale, 1);
    pool.free({ offset: stale.buf_off, gen: staleGen });
    freeAll([wrongHop, dropped, droppedBad]);
  } finally {
    await h.close();
  }
});

/** A route table that changes under the instance, the way the mapped live table does. */
class MovingRoutes implements RouteView {
  readonly slots = new Map<number, RouteEntry>();
  byPath(path: string): RouteEntry | undefined {
    return [...this.slots.values()].find((e) => e.name === path);
  }
  bySlot(slot: number): RouteEntry | undefined {
    return this.slots.get(slot);
  }
  current(): RouteEntry[] {
    return [...this.slots.values()];
  }
  set(slot: number, name: string, hops: number[], version: number): void {
    this.slots.set(slot, new RouteEntry(slot, name, hops.length, hops, 1 << 2, version));
  }
}

test('routes are followed live: each descriptor is checked against the version its slot holds', async () => {
  const view = new MovingRoutes();
  for (const e of staticRouteTable(ir).current()) view.set(e.slot, e.name, [...e.hops], 1);
  const h = await harness({ routes: view });
  try {
    assert.is(h.inst.fnId, 1);
    // A changed /two lands in a new slot: upper is now its second hop.
    view.set(40, '/two', [2, 1], 2);
    const onNew = request('new slot', { route: 40, hop: 1 });
    const wrongOnNew = request('not mine', { route: 40, hop: 0 });
    const onOld = request('old slot', { route: 1, hop: 0 });
    const freed = request('freed', { route: 41, hop: 0 });
    h.peer().write(wire([onNew, wrongOnNew, onOld, freed]));
    const got = new Map((await h.waitReplies(3)).map((d) => [d.req_id, d]));
    await sleep(30);
    assert.is(got.size, 3, 'the descriptor naming a slot without a route is dropped, not answered');
    const a = got.get(onNew.req_id)!;
    assert.is(a.flags, 0);
    assert.is(a.hop, 2, 'hop + 1 on the new version');
    assert.is(body(a), 'NEW SLOT');
    // Requests under way on the old version finish on it.
    assert.is(body(got.get(onOld.req_id)!), 'OLD SLOT');
    assert.is(got.get(onOld.req_id)!.hop, 1);
    const w = got.get(wrongOnNew.req_id)!;
    assert.is(w.flags & DESC_FLAG_ERROR, DESC_FLAG_ERROR, 'hop 0 of the new version is other: back to the gateway');
    assert.is(w.status, 500);
    assert.is(h.inst.stats().misrouted, 2);
    // The slot gets a route later: the instance sees it on the next descriptor.
    view.set(41, '/late', [1], 2);
    const later = request('later', { route: 41 });
    h.peer().write(wire([later]));
    const [l] = await h.waitReplies(1);
    assert.is(body(l!), 'LATER');
    freeAll([onNew, wrongOnNew, onOld, freed, later]);
  } finally {
    await h.close();
  }
});

async function rejects(p: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p();
  } catch (err) {
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`resolved, expected ${re}`);
}

test('without a policy, an instance needs its function id and a handler; it needs a way to register', async () => {
  await rejects(() => runFunction({ functionName: 'upper', instance: 0, hubPort: 1, pool, register: () => {}, routes: staticRouteTable(ir), log: () => {} }), /without a policy, fnId and a handler are needed/);
  await rejects(() => runFunction({ functionName: 'upper', fnId: 1, instance: 0, hubPort: 1, pool, register: () => {}, log: () => {} }), /without a policy, fnId and a handler are needed/);
  // Routes come from the pinned maps (pinDir) or are given: nothing else describes them.
  await rejects(() => runFunction({ functionName: 'upper', fnId: 1, handler, instance: 0, hubPort: 1, pool, register: () => {}, log: () => {} }), /no routes \(pass pinDir or a policy\)/);
  // Registration: an inherited socket (fd), the caller's insert (callback) or the supervisor over
  // IPC; there is no way to register by connecting alone.
  await rejects(() => runFunction({ policy: ir, functionName: 'upper', instance: 0, hubPort: 1, pool, handler, log: () => {} }), /no way to register its socket/);
  await rejects(() => runFunction({ policy: ir, functionName: 'upper', instance: 0, hubPort: 1, pool, handler, mode: 'ipc', log: () => {} }), /ipc registration needs an IPC channel/);
  await rejects(() => runFunction({ policy: ir, functionName: 'upper', instance: 0, hubPort: 1, pool, handler, mode: 'fd', log: () => {} }), /fd registration needs sockFd/);
  await rejects(() => runFunction({ policy: ir, functionName: 'nope', instance: 0, hubPort: 1, pool, handler, register: () => {}, log: () => {} }), /has no function 'nope'/);
});

test('bounded in flight: excess requests wait, beyond the queue they are shed with 503', async () => {
  const h = await harness({ maxInFlight: 2, maxQueue: 2 });
  try {
    const reqs = ['async30', 'async30', 'async30', 'async30', 'async30', 'async30'].map((t) => request(t));
    h.peer().write(wire(reqs));
    const got = await h.waitReplies(6);
    assert.is(got.length, 6);
    const shed = got.filter((d) => d.flags & DESC_FLAG_ERROR);
    assert.is(shed.length, 2);
    for (const d of shed) assert.is(d.status, 503);
    const done = got.filter((d) => !(d.flags & DESC_FLAG_ERROR));
    for (const d of done) assert.is(body(d), 'async30!');
    // The shed ones come back first: they never waited for a handler.
    assert.ok(got[0]!.flags & DESC_FLAG_ERROR);
    assert.is(h.inst.stats().shed, 2);
    freeAll(got);
  } finally {
    await h.close();
  }
});

test('a dead connection is survived: the instance reconnects and keeps serving', async () => {
  const h = await harness();
  try {
    const first = h.peer();
    first.resetAndDestroy();
    const end = Date.now() + 3000;
    while ((h.accepted < 2 || !h.inst.stats().up) && Date.now() < end) await sleep(10);
    assert.is(h.accepted, 2, 'reconnected');
    assert.ok(h.peer() !== first);
    const r = request('again');
    h.peer().write(wire([r]));
    const got = await h.waitReplies(1);
    assert.is(body(got[0]!), 'AGAIN');
    assert.ok(h.inst.stats().link.failures >= 1);
    freeAll(got);
  } finally {
    await h.close();
  }
});

test('teardown: pool empty, nothing leaked', async () => {
  assert.is(pool.stats().inUse, 0);
  pool.close();
  Pool.remove(pool.path);
  assert.equal(await ownLeaks(before), []);
});

test.run();
