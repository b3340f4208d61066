/**
 * The gateway's semantics over real HTTP, a real shared-memory pool and real `routes`, `config` and
 * `instances` maps, for either engine: the Node gateway (startGateway, in this process) or the
 * native one (its executable, started as the supervisor starts it, following the same maps through
 * their pins). The test plays the chain: it accepts the gateway's chain connection (as the hub
 * would), reads the descriptors it sends and answers them over the same connection, the way
 * replies arrive through sk_msg. Each test scripts the chain's behaviour (compute, fail, stay
 * silent, reply late) and, where it matters, changes routes the way `route set|del` does (a new
 * slot, the old one retired, a new generation). Both engines run the same cases; where they differ
 * by design (a native gateway whose chain socket fails exits for a restart instead of
 * reconnecting) the case says so.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BPF_F_MMAPABLE, BpfMap, type MappedArray, mmapArray, unpin } from '../../../loader/index.ts';
import { DESC_DROP_REASON_SHIFT } from '../../../src/ir/chain-limits.ts';
import {
  configValue,
  decodeRouteSlot,
  encodeConfig,
  encodeRouteSlot,
  FREE_SLOT,
  instancesValue,
  MAX_ROUTE_SLOTS,
  type RouteSlot,
  routeTable,
  routeValue,
  u32Key,
} from '../../../src/ir/chain-maps.ts';
import { lowerPolicy } from '../../../src/ir/policy.ts';
import { type Gateway, startGateway } from '../../../src/runtime/gateway/index.ts';
import { GatewayStatsSlot } from '../../../src/runtime/gateway/stats-slot.ts';
import { buildNativeGateway } from '../../../src/runtime/gateway-native/build.ts';
import { launchNativeGateway, NATIVE_GW_ENV } from '../../../src/runtime/gateway-native/launch.ts';
import { Pool } from '../../../src/runtime/pool/index.ts';
import { LiveInstanceCounts, LiveRouteTable } from '../../../src/runtime/route-table.ts';
import { DESC_FLAG_DROPPED, DESC_FLAG_ERROR, DESC_FLAG_RESPONSE_NEW_BUF } from '../../../src/runtime/sdk/wire.ts';
import { gatewayEnv } from '../../../src/runtime/supervisor/gateway-env.ts';
import { freePort } from '../../../src/runtime/supervisor/setup.ts';
import { type Descriptor, descriptor } from '../../../src/schema/descriptor.ts';
import { ENGINE, MAGIC, OFF, SLOT_SIZE, SLOTS } from '../../../src/schema/gateway-stats.ts';
import { decode, encode } from '../../../src/schema/encode.ts';
import { type Snapshot, snapshot } from '../../helpers/leaks.ts';
import { ownLeaks } from './leaks.ts';

export type Engine = 'node' | 'native';

/** What the cases need of a gateway, whichever engine runs it. */
interface Under {
  port: number;
  chainUp(): boolean;
  /** Counters: Node's from stats(), the native gateway's from the line it prints on SIGUSR1. */
  counters(): Promise<{ late: number; clientGone: number; byStatus: Record<number, number> }>;
  /** Node answers with how many requests it failed; the native gateway gets a control line (null). */
  instanceDown(fnId: number, inst: number, before: number[]): number | null;
  /** The native process's exit code once it exits (never for Node). */
  exited: Promise<number | null>;
  close(): Promise<void>;
}

/** Parses "... stats requests=1 late=2 ... 200=5 405=3" (main.c print_stats). */
function parseCounters(line: string): { late: number; clientGone: number; byStatus: Record<number, number> } {
  const kv = Object.fromEntries(
    line
      .slice(line.indexOf(' stats ') + 7)
      .split(' ')
      .map((w) => w.split('=') as [string, string]),
  );
  const byStatus: Record<number, number> = {};
  for (const [k, v] of Object.entries(kv)) if (/^\d+$/.test(k)) byStatus[Number(k)] = Number(v);
  return { late: Number(kv.late), clientGone: Number(kv.client_gone), byStatus };
}

/** Registers every case of this file for `engine` and runs them. */
export function runGatewayCases(engine: Engine): void {
// Every resource is made in before(): uvu imports all test files before running any, so objects
// made at import time would appear inside other files' leak-check windows.
let before: Snapshot;
const BUF = 128;
const ir = lowerPolicy({
  name: 'gw-test',
  functions: { upper: { instances: 1, handler: './none.ts' }, other: { instances: 2, handler: './none.ts' } },
  routes: { '/up': ['upper'], '/both': ['upper', 'other'], named: ['other'], '/get': { functions: ['upper'], methods: ['GET'] } },
  pool: { bufferSize: BUF, bufferCount: 8 },
});
const BODY_TIMEOUT_MS = 1000;
let pool: Pool;
let instances: BpfMap;
let routesMap: BpfMap;
let configMap: BpfMap;
/** maps/gw_stats: the statistics block both engines write (bpf/include/bpfctl/gateway_stats.h). */
let statsMap: BpfMap;
let statsView: MappedArray;
let mapped: MappedArray[] = [];
let routes: LiveRouteTable;
let gen = 1;
const setLive = (fn: number, count: number) =>
  instances.update(u32Key(fn), encode(instancesValue, { count, inst: Array.from({ length: 32 }, (_, i) => (i < count ? i : 0)) }));
const slotOf = (n: number): RouteSlot => decodeRouteSlot(routesMap.lookup(u32Key(n))!);
const writeSlot = (n: number, v: RouteSlot) => routesMap.update(u32Key(n), encodeRouteSlot(v));
/** Publishes what was written since the last generation (what a route change does last). */
const publish = () => configMap.update(u32Key(0), encodeConfig({ poolSize: 0, dataOff: 0, bufSize: BUF, bufCount: 8, hubPort: 0, routesGen: ++gen }));

type Script = (d: Descriptor, reply: (d: Descriptor) => void) => void;
let script: Script = () => {};
let chainPeer: net.Socket | null = null;
/** While set, the fake hub drops every connection at once: the gateway cannot reconnect. */
let refuseChain = false;
const chain = net.createServer((s) => {
  if (refuseChain) {
    s.resetAndDestroy();
    return;
  }
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
let gw: Under;
const pinDir = `/sys/fs/bpf/bpfctl-test-${process.pid}-gw-${engine}`;
const pinned: string[] = [];
// uvu loads tests as CommonJS (no top-level await): the async setup lives in before().
test.before(async () => {
  before = snapshot();
  pool = Pool.create({ name: `bpfctl-test-${process.pid}-gw`, bufferSize: BUF, bufferCount: 8, backing: 'shm' });
  // The chain maps a gateway follows, created as the generated object declares them (mmapable).
  instances = BpfMap.create({ type: 'array', name: 'gwt_inst', keySize: 4, valueSize: instancesValue.size, maxEntries: 64, flags: BPF_F_MMAPABLE });
  routesMap = BpfMap.create({ type: 'array', name: 'gwt_routes', keySize: 4, valueSize: routeValue.size, maxEntries: MAX_ROUTE_SLOTS, flags: BPF_F_MMAPABLE });
  configMap = BpfMap.create({ type: 'array', name: 'gwt_config', keySize: 4, valueSize: configValue.size, maxEntries: 1, flags: BPF_F_MMAPABLE });
  for (const e of routeTable(ir)) routesMap.update(e.key, e.value);
  gen = 0;
  publish();
  setLive(1, 1);
  setLive(2, 2);
  statsMap = BpfMap.create({ type: 'array', name: 'gwt_stats', keySize: 4, valueSize: SLOT_SIZE, maxEntries: SLOTS, flags: BPF_F_MMAPABLE });
  mapped = [mmapArray(routesMap), mmapArray(configMap), mmapArray(instances)];
  statsView = mmapArray(statsMap);
  // Pinned as a loaded policy pins them: the native gateway opens them by path, both write gw_stats.
  mkdirSync(join(pinDir, 'maps'), { recursive: true });
  for (const [name, m] of [['routes', routesMap], ['config', configMap], ['instances', instances], ['gw_stats', statsMap]] as const) {
    const p = join(pinDir, 'maps', name);
    m.pin(p);
    pinned.push(p);
  }
  routes = new LiveRouteTable(mapped[0]!, mapped[1]!);
  await new Promise<void>((r) => chain.listen(0, '127.0.0.1', r));
  const hubPort = (chain.address() as net.AddressInfo).port;
  gw = engine === 'node' ? await startNode(hubPort) : await startNative(hubPort);
});

let nodeMetrics: GatewayStatsSlot | undefined;
async function startNode(hubPort: number): Promise<Under> {
  nodeMetrics = GatewayStatsSlot.open(pinDir, 0, 'node');
  const g: Gateway = await startGateway({
    policy: ir,
    pool,
    hubPort,
    mode: 'callback',
    register: (fd) => {
      registeredFd = fd;
    },
    routes,
    instances: new LiveInstanceCounts(mapped[2]!),
    timeoutMs: 300,
    bodyTimeoutMs: BODY_TIMEOUT_MS,
    // Above the pool's 8 buffers, so the pool runs dry before this bound is reached.
    maxInFlight: 64,
    log: () => {},
    metrics: nodeMetrics,
  });
  await g.ready;
  return {
    port: g.port,
    chainUp: () => g.stats().chainUp,
    counters: async () => g.stats(),
    instanceDown: (fn, inst, before) => g.instanceDown(fn, inst, before),
    exited: new Promise(() => {}),
    close: async () => {
      await g.close();
      nodeMetrics?.close();
    },
  };
}

/** The native gateway as `bpfctl run` starts it, on maps pinned for it (it opens them by path). */
async function startNative(hubPort: number): Promise<Under> {
  const exe = await buildNativeGateway();
  const port = await freePort('127.0.0.1');
  const env = {
    ...gatewayEnv({ pinDir, pool: pool.path, hubPort, gwInst: 0, httpPort: port, httpHost: '127.0.0.1', timeoutMs: 300, bodyTimeoutMs: BODY_TIMEOUT_MS }),
    [NATIVE_GW_ENV.maxInFlight]: '64',
    // No pool buffer for bodies still arriving: the Node gateway's rule, which these cases check
    // (gateway-native.test.ts checks the native default, a bounded share of the pool).
    [NATIVE_GW_ENV.recvBuffers]: '0',
  };
  const launched = await launchNativeGateway({
    executable: exe,
    cgroup: null,
    env,
    functionNames: { 1: 'upper', 2: 'other' },
    hubPort,
    register: (fd) => {
      registeredFd = fd;
    },
  });
  const child: ChildProcess = launched.child;
  let alive = true;
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      alive = false;
      r(code);
    }),
  );
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let carry = '';
  child.stderr!.setEncoding('utf8').on('data', (t: string) => {
    carry += t;
    let nl = carry.indexOf('\n');
    while (nl >= 0) {
      const line = carry.slice(0, nl);
      carry = carry.slice(nl + 1);
      if (line.includes(' stats ')) waiters.shift()?.(line);
      else lines.push(line);
      nl = carry.indexOf('\n');
    }
  });
  child.stdout!.resume();
  await new Promise<void>((resolve, reject) => {
    (child.stdio[3] as Readable).setEncoding('utf8').once('data', (t: string) => (t.startsWith('ready ') ? resolve() : reject(new Error(t))));
    child.once('exit', (code) => reject(new Error(`native gateway exited ${code}: ${lines.join('\n')}`)));
  });
  return {
    port,
    chainUp: () => alive,
    counters: () =>
      new Promise((resolve) => {
        waiters.push((l) => resolve(parseCounters(l)));
        child.kill('SIGUSR1');
      }),
    instanceDown: (fnId, inst, before) => {
      launched.send?.({ type: 'bpfctl:instance-down', fnId, inst, before });
      return null;
    },
    exited,
    close: async () => {
      if (alive) child.kill('SIGTERM');
      await exited;
      await new Promise((r) => setTimeout(r, 20));
    },
  };
}

/** The length of the route version a descriptor names (its slot), as the kernel sees it. */
const routeLen = (slot: number) => routes.bySlot(slot)!.len;
/** The usual chain: upper-cases the payload in place and returns it. */
const upperChain: Script = (d, reply) => {
  const b = pool.bytes(d.buf_off, d.buf_len);
  for (let i = 0; i < b.length; i++) if (b[i]! >= 97 && b[i]! <= 122) b[i]! -= 32;
  reply({ ...d, hop: routeLen(d.route) });
};

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
/** POST by default (what routes accept unless they say otherwise), with or without a body. */
function call(path: string, o: { method?: string; body?: string | Buffer; chunked?: boolean } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, method: o.method ?? 'POST', agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
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
  assert.is(gw.chainUp(), true);
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
  assert.ok((await gw.counters()).late >= 2);
});

test('a client that disconnects mid-request leaks nothing', async () => {
  const held: { d: Descriptor; reply: (d: Descriptor) => void }[] = [];
  script = (d, reply) => held.push({ d, reply });
  // Gone while the chain works on it: the reply finds no one to write to.
  const sock = net.connect(gw.port, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nbye!');
  await until(() => held.length >= 1, 'the request to reach the chain');
  sock.destroy();
  await sleep(20);
  upperChain(held[0]!.d, held[0]!.reply);
  // Gone before the body was complete: nothing reaches the chain at all.
  const half = net.connect(gw.port, '127.0.0.1');
  half.on('error', () => {});
  await new Promise((r) => half.once('connect', r));
  half.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\nonly part');
  await sleep(30);
  // The body is collected before a pool buffer is taken: a client mid-body holds none.
  assert.is(pool.stats().inUse, 0, 'no buffer for an incomplete body');
  half.destroy();
  assert.is(await poolSettles(), 0);
  assert.is(held.length, 1);
  assert.ok((await gw.counters()).clientGone >= 1);
});

test('function errors and new buffers come back as the function set them', async () => {
  script = (d, reply) => {
    const text = Buffer.from(pool.bytes(d.buf_off, d.buf_len)).toString();
    if (text === 'teapot') {
      const msg = Buffer.from('upper: short and stout');
      pool.bytes(d.buf_off, msg.length).set(msg);
      // ERROR alone sends a reply back (the kernel's rule): the failing function leaves the hop as is.
      return reply({ ...d, flags: DESC_FLAG_ERROR, status: 418, buf_len: msg.length });
    }
    if (text === 'bare') return reply({ ...d, flags: DESC_FLAG_ERROR, status: 500, buf_len: 0 });
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

test('a route accepts only its methods: 405 with Allow; GET implies HEAD', async () => {
  script = upperChain;
  const get = await call('/up', { method: 'GET' });
  assert.is(get.status, 405);
  assert.is(get.headers.allow, 'POST');
  assert.is((await call('/both', { method: 'PUT', body: 'x' })).headers.allow, 'POST');
  const post = await call('/get', { body: 'x' });
  assert.is(post.status, 405);
  assert.is(post.headers.allow, 'GET, HEAD');
  assert.match(post.body, /\/get accepts GET, HEAD/);
  const ok = await call('/get', { method: 'GET', body: 'abc' });
  assert.is(ok.status, 200);
  assert.is(ok.body, 'ABC');
  // HEAD runs the route like GET and answers with GET's headers, without the body.
  const head = await call('/get', { method: 'HEAD', body: 'abcd' });
  assert.is(head.status, 200);
  assert.is(head.body, '');
  assert.is(head.headers['content-length'], '4');
  // Unknown paths are 404 whatever the method; nothing was allocated for the refused ones.
  assert.is((await call('/nope', { method: 'GET' })).status, 404);
  assert.ok(((await gw.counters()).byStatus[405] ?? 0) >= 3);
  assert.is(await poolSettles(), 0);
});

test('route changes are followed live: new requests take the new slot, requests under way finish on theirs, del is 404', async () => {
  const held: { d: Descriptor; reply: (d: Descriptor) => void }[] = [];
  script = (d, reply) => held.push({ d, reply });
  const upSlot = routes.byPath('/up')!.slot;
  assert.is(upSlot, 0, 'a loaded policy starts with route i in slot i');
  const before0 = slotOf(upSlot);
  const old = call('/up', { body: 'old' });
  await until(() => held.length === 1, 'the request on the old version');
  // route set /up other: the new version in a free slot, the old one retired, one new generation.
  const NEW = 50;
  writeSlot(NEW, { hops: [2], version: gen + 1, retired: 0, retiredAtMs: 0, methods: ['POST'], name: '/up' });
  writeSlot(upSlot, { ...before0, retired: gen + 1, retiredAtMs: Date.now() });
  publish();
  const fresh = call('/up', { body: 'new' });
  await until(() => held.length === 2, 'the request on the new version');
  assert.is(held[0]!.d.route, upSlot, 'the request under way keeps its slot');
  assert.is(held[1]!.d.route, NEW, 'the new request names the new slot');
  assert.is(routes.byPath('/up')!.slot, NEW);
  assert.is(routes.bySlot(upSlot)!.len, 1, 'the retired version is still readable while it drains');
  for (const h of held) upperChain(h.d, h.reply);
  assert.is((await old).body, 'OLD');
  assert.is((await fresh).body, 'NEW');
  script = upperChain;
  // A new route's instance check uses its own functions: other (fn 2) without instances is 503.
  setLive(2, 0);
  assert.match((await call('/up', { body: 'x' })).body, /other has no live instance/);
  setLive(2, 2);
  // route del /up: retired with no successor; new requests get 404.
  writeSlot(NEW, { ...slotOf(NEW), retired: gen + 1, retiredAtMs: Date.now() });
  publish();
  assert.is((await call('/up', { body: 'gone' })).status, 404);
  assert.is((await call('/both', { body: 'still' })).body, 'STILL', 'other routes are untouched');
  // Back to the start for the tests below: /up live again (a newer version in its first slot).
  routesMap.update(u32Key(NEW), FREE_SLOT);
  writeSlot(upSlot, { ...before0, version: gen + 1, retired: 0 });
  publish();
  assert.is(routes.byPath('/up')!.slot, upSlot);
  assert.is(routes.bySlot(NEW), undefined, 'a freed slot names no route');
  assert.is((await call('/up', { body: 'back' })).body, 'BACK');
  assert.is(await poolSettles(), 0);
});

test('instanceDown fails at once the requests the dead instance held, and only those', async () => {
  const held: { d: Descriptor; reply: (d: Descriptor) => void }[] = [];
  script = (d, reply) => held.push({ d, reply });
  const t0 = Date.now();
  const both = Array.from({ length: 6 }, (_, i) => call('/both', { body: `b${i}` }));
  const up = call('/up', { body: 'not on other' });
  await until(() => held.length === 7, '7 held requests');
  // other (fn 2) had instances [0, 1]; its instance 1 died: requests with req_id % 2 == 1 went there.
  const onOne = held.filter((h) => h.d.route === routes.byPath('/both')!.slot && h.d.req_id % 2 === 1).length;
  assert.ok(onOne > 0);
  // Node says how many it failed; both engines are checked by the answers below (exactly onOne 503s).
  const failed = gw.instanceDown(2, 1, [0, 1]);
  if (failed !== null) assert.is(failed, onOne);
  const none = gw.instanceDown(2, 1, []);
  if (none !== null) assert.is(none, 0, 'no live list: nothing to fail');
  // The others are still waiting; answer them.
  for (const h of held) if (!(h.d.route === routes.byPath('/both')!.slot && h.d.req_id % 2 === 1)) upperChain(h.d, h.reply);
  const rs = await Promise.all(both);
  assert.ok(Date.now() - t0 < 300, 'failed before the reply deadline');
  assert.is(rs.filter((r) => r.status === 503).length, onOne);
  for (const r of rs.filter((x) => x.status === 503)) assert.match(r.body, /instance 1 of other died/);
  for (const [i, r] of rs.entries()) if (r.status === 200) assert.is(r.body, `B${i}`);
  assert.is((await up).body, 'NOT ON OTHER', 'a route without the dead function is untouched');
  // Replies for the failed requests that still arrive are late and harmless.
  for (const h of held) if (h.d.route === routes.byPath('/both')!.slot && h.d.req_id % 2 === 1) upperChain(h.d, h.reply);
  await sleep(30);
  assert.is(await poolSettles(), 0);
});

test('a slow body holds no pool buffer and is cut off with 408 after bodyTimeoutMs', async () => {
  script = upperChain;
  const slow = net.connect(gw.port, '127.0.0.1');
  slow.on('error', () => {});
  let answer = '';
  slow.setEncoding('latin1').on('data', (t: string) => {
    answer += t;
  });
  const closed = new Promise((r) => slow.once('close', r));
  await new Promise((r) => slow.once('connect', r));
  const t0 = Date.now();
  slow.write('POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 40\r\n\r\nten bytes.');
  await sleep(200);
  slow.write('ten more..');
  // Meanwhile the pool serves everyone else in full.
  const others = await Promise.all(Array.from({ length: 8 }, (_, i) => call('/up', { body: `o${i}` })));
  assert.equal(
    others.map((r) => r.status),
    Array(8).fill(200),
  );
  assert.is(pool.stats().inUse, 0, 'the incomplete body holds no buffer');
  await closed;
  const took = Date.now() - t0;
  assert.match(answer, /^HTTP\/1\.1 408/);
  assert.ok(took >= BODY_TIMEOUT_MS - 50 && took < BODY_TIMEOUT_MS + 2500, `cut off after ${took} ms`);
  assert.is(await poolSettles(), 0);
});

test('every answer is counted in maps/gw_stats (slot gw_inst 0) as the gateway counts it', async () => {
  const v = new DataView(statsView.bytes.buffer, statsView.bytes.byteOffset, SLOT_SIZE);
  const f64 = (off: number) => v.getFloat64(off, true);
  assert.is(v.getUint32(OFF.magic, true), MAGIC);
  assert.is(v.getUint32(OFF.engine, true), ENGINE[engine]);
  const own = (await gw.counters()).byStatus;
  // 408 is written outside the gateway's own counters (node:http's clientError): at least the slow body's.
  for (const status of [200, 404, 405, 413, 418, 500, 502, 503, 504]) {
    assert.is(f64(OFF.status + 8 * status), own[status] ?? 0, `status ${status}`);
  }
  assert.ok(f64(OFF.status + 8 * 408) >= 1, 'the slow body was counted');
  let observed = 0;
  for (let b = 0; b < 17; b++) observed += f64(OFF.latency + 8 * b);
  assert.ok(observed >= (own[200] ?? 0), `${observed} latencies for ${own[200]} answers from the chain`);
  assert.ok(f64(OFF.latencySum) > 0);
  const upSlot = routes.byPath('/up')!;
  assert.is(v.getUint32(OFF.routeVersion + 4 * upSlot.slot, true), upSlot.version);
  assert.ok(f64(OFF.routeReplies + 8 * upSlot.slot) > 0, 'replies counted on /up');
});

if (engine === 'node') {
  test('the chain connection failing: requests get 503 until the gateway has reconnected', async () => {
    script = upperChain;
    const first = chainPeer!;
    // The hub refuses the gateway's reconnection attempts until told otherwise, so "until" is a
    // window of our choosing: every request in it must get 503, none may hang or succeed.
    refuseChain = true;
    first.resetAndDestroy();
    const end0 = Date.now() + 1000;
    while (gw.chainUp() && Date.now() < end0) await sleep(5);
    assert.not.ok(gw.chainUp(), 'the gateway saw the chain connection fail');
    try {
      for (let i = 0; i < 10; i++) {
        const during = await call('/up', { body: `x${i}` });
        assert.is(during.status, 503, `request ${i} while the chain is down: ${during.status} ${during.body}`);
        await sleep(20);
      }
    } finally {
      refuseChain = false;
    }
    const end = Date.now() + 3000;
    while ((chainPeer === first || !gw.chainUp()) && Date.now() < end) await sleep(10);
    assert.is((await call('/up', { body: 'back' })).body, 'BACK');
    assert.is(await poolSettles(), 0);
  });
} else {
  // A native gateway cannot register a new socket itself (the supervisor connects and inserts it,
  // as for C functions): it fails what the socket carried with 503 and exits 75 for a restart.
  test('the chain connection failing: requests in the chain get 503, the process exits 75 for a restart', async () => {
    const held: Descriptor[] = [];
    script = (d) => held.push(d);
    const waiting = call('/up', { body: 'in the chain' });
    await until(() => held.length === 1, 'the request to reach the chain');
    refuseChain = true;
    chainPeer!.resetAndDestroy();
    const r = await waiting;
    assert.is(r.status, 503);
    assert.match(r.body, /chain socket down/);
    assert.is(await gw.exited, 75);
    refuseChain = false;
    assert.is(await poolSettles(), 0);
  });
}

test('teardown: nothing leaked', async () => {
  agent.destroy();
  await gw.close();
  chainPeer?.destroy();
  await new Promise<void>((r) => chain.close(() => r()));
  assert.is(pool.stats().inUse, 0);
  pool.close();
  Pool.remove(pool.path);
  for (const p of pinned) unpin(p);
  if (existsSync(join(pinDir, 'maps'))) rmdirSync(join(pinDir, 'maps'));
  if (existsSync(pinDir)) rmdirSync(pinDir);
  routes.close(); // unmaps routes and config
  mapped[2]!.unmap();
  instances.close();
  routesMap.close();
  configMap.close();
  statsView.unmap();
  statsMap.close();
  assert.equal(await ownLeaks(before), []);
});

test.run();
}
