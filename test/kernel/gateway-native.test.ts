/**
 * The native gateway under a real chain (`startChain`, what `bpfctl run` does) with TypeScript and
 * C functions and two gateway processes on one port: real HTTP clients, raw sockets for what
 * clients do wrong or slowly, live route changes under load, a killed instance, a killed gateway
 * process. The semantics the Node gateway shares with it are checked case by case in
 * gateway-native-cases.test.ts; this file checks what only a whole chain shows.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap, mmapArray } from '../../loader/index.ts';
import { sockKeyBytes } from '../../src/ir/chain-maps.ts';
import { pidAlive } from '../../src/runtime/pool/index.ts';
import { type Chain, startChain } from '../../src/runtime/supervisor/index.ts';
import { OFF, SLOT_SIZE } from '../../src/schema/gateway-stats.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { CHAIN_PINNED, ownByKind, ownObjects, runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const fns = join(repo, 'examples/hello-chain/functions');
const ID = `bpfctl-test-${process.pid}-gwnative`;
const ENV = { BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`, BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`, BPFCTL_RUN_DIR: `/tmp/${ID}-run` };
let saved: Record<string, string | undefined> = {};
const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-gw-native-`));
const policyFile = join(dir, 'policy.mjs');
// A function that holds a request for the milliseconds its body names ("hold 2000"): requests
// that stay in the chain long enough to exhaust the pool or to be held by an instance that dies.
writeFileSync(
  join(dir, 'hold.ts'),
  "export default async function hold(req: { text(): string; body: Uint8Array }): Promise<number> {\n  const ms = Number(req.text().split(' ')[1] ?? 0);\n  await new Promise((r) => setTimeout(r, ms));\n  return req.body.length;\n}\n",
);
const POOL = 256;
const BODY_TIMEOUT_MS = 1500;
writeFileSync(
  policyFile,
  `export default ${JSON.stringify({
    name: 'gw-native',
    functions: {
      upper: { instances: 1, handler: join(fns, 'upper.ts') },
      shout: { instances: 2, handler: join(fns, 'shout.c'), language: 'c' },
      stamp: { instances: 1, handler: join(fns, 'stamp.ts') },
      hold: { instances: 1, handler: join(dir, 'hold.ts'), maxInFlight: 1024 },
    },
    routes: { '/c': ['shout', 'stamp'], '/mix': ['upper', 'shout', 'stamp'], '/flip': ['upper', 'stamp'], '/hold': ['hold'], '/get': { functions: ['upper'], methods: ['GET'] } },
    pool: { bufferSize: 1024, bufferCount: POOL },
    gateway: { engine: 'native', processes: 2 },
  })};\n`,
);

let before: Snapshot;
let chain: Chain;
const logs: string[] = [];

type Answer = { status: number; body: string; headers: http.IncomingHttpHeaders };
function post(url: string, body: string, o: { agent?: http.Agent | false; localAddress?: string; method?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: o.method ?? 'POST', agent: o.agent ?? false, localAddress: o.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
const url = (route: string) => chain.routes.find((r) => r.name === route)!.url;
const slot = (name: string, inst: number) => chain.instances().find((i) => i.name === name && i.instance === inst)!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
const inCgroup = (pid: number) => readFileSync(join(chain.cgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid));
function registered(fnId: number, inst: number): boolean {
  const m = BpfMap.openPinned(join(chain.pinDir, 'maps/socks'));
  try {
    return m.lookup(sockKeyBytes(fnId, inst)) !== null;
  } finally {
    m.close();
  }
}
/** 200s per gateway instance, from the shared statistics block (maps/gw_stats). */
function okByGateway(): number[] {
  const m = BpfMap.openPinned(join(chain.pinDir, 'maps/gw_stats'));
  const mapped = mmapArray(m);
  m.close();
  try {
    return [0, 1].map((i) => new DataView(mapped.bytes.buffer, mapped.bytes.byteOffset + i * SLOT_SIZE, SLOT_SIZE).getFloat64(OFF.status + 8 * 200, true));
  } finally {
    mapped.unmap();
  }
}

/** A raw connection to the gateway: what was written back, and whether it was closed. */
function raw(localAddress?: string): Promise<{ s: net.Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: chain.port, host: '127.0.0.1', localAddress });
    let text = '';
    s.setEncoding('latin1').on('data', (t: string) => {
      text += t;
    });
    s.on('error', () => {});
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.once('connect', () => resolve({ s, text: () => text, closed }));
    s.once('error', reject);
  });
}
/** HTTP/1.1 responses in `text`, in order (content-length framed). */
function responses(text: string): { status: number; headers: string; body: string }[] {
  const out: { status: number; headers: string; body: string }[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = text.slice(at, end);
    const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
    out.push({ status: Number(head.slice(9, 12)), headers: head, body: text.slice(end + 4, end + 4 + len) });
    at = end + 4 + len;
  }
  return out;
}
const req = (path: string, body: string, extra = '') => `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

test.before(async () => {
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  chain = await startChain(policyFile, { poolName: ID, log: (l) => logs.push(l), timeoutMs: 5000, bodyTimeoutMs: BODY_TIMEOUT_MS });
});

test.after(async () => {
  await chain?.stop();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(ENV.BPFCTL_RUN_DIR, { recursive: true, force: true });
  if (existsSync(ENV.BPFCTL_BPFFS) && readdirSync(ENV.BPFCTL_BPFFS).length === 0) rmdirSync(ENV.BPFCTL_BPFFS);
});

test('two native gateway processes: registered by the supervisor, in the cgroup, both answering on one port', async () => {
  const gws = chain.instances().filter((i) => i.kind === 'gateway');
  assert.is(gws.length, 2);
  for (const g of gws) {
    assert.is(g.state, 'ready');
    assert.is(g.info.port, chain.port);
    assert.ok(inCgroup(g.pid!), `gateway#${g.instance} in the policy cgroup`);
    assert.ok(registered(0, g.instance), `gateway#${g.instance} has its socket in socks`);
    assert.match(readFileSync(`/proc/${g.pid}/cmdline`, 'utf8'), /bpfctl-gateway/);
  }
  // A fresh connection each: the kernel spreads them over both processes (SO_REUSEPORT).
  const rs = await Promise.all(Array.from({ length: 80 }, (_, i) => post(url(i % 2 ? '/c' : '/mix'), `req ${i}`)));
  for (const [i, r] of rs.entries()) {
    assert.is(r.status, 200, `request ${i}: ${r.body}`);
    assert.is(r.body, `REQ ${i}! [${i % 2 ? '/c' : '/mix'}]`);
    assert.is(r.headers['content-type'], 'application/octet-stream');
  }
  const ok = okByGateway();
  assert.ok(ok[0]! > 0 && ok[1]! > 0, `both gateways answered (${ok.join(', ')})`);
});

test('keep-alive, pipelining, HEAD, 100-continue, HTTP/1.0', async () => {
  const c = await raw();
  // Three requests one after the other on one connection, then three in one write (pipelined).
  for (let i = 0; i < 3; i++) {
    c.s.write(req('/c', `ka ${i}`));
    await until(() => responses(c.text()).length === i + 1, `answer ${i}`);
  }
  c.s.write(req('/c', 'p 0') + req('/nope', 'p 1') + req('/mix', 'p 2') + `GET /c HTTP/1.1\r\nhost: x\r\n\r\n` + req('/c', 'p 4'));
  await until(() => responses(c.text()).length === 8, 'the pipelined answers');
  const rs = responses(c.text());
  assert.equal(
    rs.map((r) => [r.status, r.body]),
    [
      [200, 'KA 0! [/c]'],
      [200, 'KA 1! [/c]'],
      [200, 'KA 2! [/c]'],
      [200, 'P 0! [/c]'],
      [404, 'no such route\n'],
      [200, 'P 2! [/mix]'],
      [405, '/c accepts POST\n'],
      [200, 'P 4! [/c]'],
    ],
  );
  assert.match(rs[6]!.headers, /allow: POST/);
  c.s.destroy();
  // HEAD: GET's headers, no body.
  const h = await raw();
  h.s.write('HEAD /get HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc');
  await until(() => /content-length: 3\r\n/.test(h.text()), 'the HEAD answer');
  await sleep(50);
  assert.match(h.text(), /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(h.text().endsWith('\r\n\r\n'), 'no body after the headers');
  h.s.destroy();
  // An early answer to HEAD has no body either: the next request on the connection is read right.
  const h2 = await raw();
  h2.s.write(`HEAD /nope HTTP/1.1\r\nhost: x\r\n\r\n${req('/c', 'after head')}`);
  await until(() => h2.text().includes('AFTER HEAD! [/c]'), 'the answer after HEAD');
  assert.match(h2.text(), /^HTTP\/1\.1 404 Not Found\r\n[^\r]*\r\ncontent-length: 14\r\n[\s\S]*?\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  h2.s.destroy();
  // Expect: 100-continue (curl sends it for larger bodies): 100 first, then the answer.
  const e = await raw();
  e.s.write('POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n');
  await until(() => e.text().startsWith('HTTP/1.1 100 Continue\r\n\r\n'), '100 Continue');
  e.s.write('later');
  await until(() => e.text().includes('LATER! [/c]'), 'the answer after 100');
  e.s.destroy();
  // HTTP/1.0 without keep-alive: answered, then closed.
  const o = await raw();
  o.s.write('POST /c HTTP/1.0\r\ncontent-length: 3\r\n\r\nold');
  await o.closed;
  assert.match(o.text(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*connection: close\r\n[\s\S]*OLD! \[\/c\]$/);
});

test('bad input: 400 and close; 413 for a body larger than a buffer; nothing held', async () => {
  const cases = [
    'GARBAGE\r\n\r\n',
    `POST /c HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
    'POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n',
    'POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 1x\r\n\r\n',
    'POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
  ];
  for (const [i, bad] of cases.entries()) {
    const c = await raw();
    c.s.write(bad);
    await c.closed;
    assert.match(c.text(), /^HTTP\/1\.1 400 Bad Request\r\n/, `case ${i}: ${JSON.stringify(c.text().slice(0, 40))}`);
  }
  const big = await raw();
  big.s.write(req('/c', 'x'.repeat(1025)));
  await big.closed;
  assert.match(big.text(), /^HTTP\/1\.1 413 Payload Too Large\r\n[\s\S]*connection: close\r\n[\s\S]*body larger than 1024 bytes\n$/);
  const chunked = await raw();
  chunked.s.write(`POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n400\r\n${'y'.repeat(1024)}\r\n1\r\nz\r\n0\r\n\r\n`);
  await chunked.closed;
  assert.match(chunked.text(), /^HTTP\/1\.1 413 /);
  const ok = await raw();
  ok.s.write(`POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`);
  await until(() => ok.text().includes('ABCDE! [/c]'), 'the chunked answer');
  ok.s.destroy();
  await until(() => chain.poolStats().inUse === 0, 'the pool to settle', 3000);
});

test('slow bodies: hold at most their share of the pool, everyone else is served, each is cut off with 408', async () => {
  // 400 clients each send a head and 10 of 1000 body bytes, then nothing.
  const slow = await Promise.all(Array.from({ length: 400 }, () => raw()));
  for (const c of slow) c.s.write(`POST /c HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n${'s'.repeat(10)}`);
  await sleep(300);
  // Bodies still arriving may read straight into pool buffers, 1/8 of the pool across gateways.
  const share = Math.floor(POOL / 8 / 2) * 2;
  const held = chain.poolStats().inUse;
  assert.ok(held <= share, `${held} buffers held by slow bodies (at most ${share})`);
  const others = await Promise.all(Array.from({ length: 150 }, (_, i) => post(url('/c'), `o${i}`)));
  assert.equal(
    others.filter((r) => r.status !== 200).map((r) => r.body),
    [],
  );
  const t0 = Date.now();
  await Promise.all(slow.map((c) => c.closed));
  const took = Date.now() - t0;
  for (const c of slow) assert.match(c.text(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(took < BODY_TIMEOUT_MS + 1000, `cut off within the body deadline (${took} ms after the others)`);
  await until(() => chain.poolStats().inUse === 0, 'the pool to settle', 3000);
});

test('a connection flood from one address is cut at the per-client limit; other clients are served', async () => {
  // 1024 connections per address per gateway process: 2 processes, 2600 connections from 127.0.0.1.
  const flood = await Promise.all(Array.from({ length: 2600 }, () => raw()));
  let closed = 0;
  for (const c of flood) void c.closed.then(() => closed++);
  // Each process keeps at most 1024 of them, however the kernel spread them: the rest are closed.
  await until(() => closed >= 2600 - 2048, `connections beyond the limit to be closed (${closed} so far)`, 5000);
  await sleep(200);
  assert.ok(closed <= 2600 - 1024, `${closed} closed: each process keeps its 1024`);
  // Another address is not affected by the flood.
  const r = await post(url('/c'), 'other client', { localAddress: '127.0.0.2' });
  assert.is(r.status, 200);
  assert.is(r.body, 'OTHER CLIENT! [/c]');
  for (const c of flood) c.s.destroy();
  await sleep(200);
  // And 127.0.0.1 is served again once its connections are gone.
  assert.is((await post(url('/c'), 'back')).body, 'BACK! [/c]');
});

test('pool exhaustion: requests beyond the pool get 503 at once, the rest are served, nothing leaks', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 600 });
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 500 }, () => post(url('/hold'), 'hold 800', { agent })));
  const took = Date.now() - t0;
  agent.destroy();
  const ok = rs.filter((r) => r.status === 200).length;
  const refused = rs.filter((r) => r.status === 503);
  assert.ok(ok > 0 && ok <= POOL, `${ok} served (pool ${POOL})`);
  assert.is(ok + refused.length, rs.length, 'every answer is 200 or 503');
  for (const r of refused) assert.match(r.body, /pool exhausted|too many requests in flight/);
  assert.ok(took < 5000, `no request waited for the reply deadline (${took} ms)`);
  await until(() => chain.poolStats().inUse === 0, 'the pool to settle', 3000);
});

test('route changes under load: zero failed requests, the new route is taken live', async () => {
  let stop = false;
  const seen = new Set<string>();
  const failures: string[] = [];
  let n = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const loop = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const r = await post(url('/flip'), `w${w} ${i}`, { agent });
      n++;
      if (r.status !== 200 || !/^W\d+ \d+!? \[\/flip\]$/.test(r.body)) failures.push(`${r.status} ${r.body}`);
      else seen.add(r.body.includes('!') ? 'shout' : 'upper');
    }
  };
  const loops = Array.from({ length: 16 }, (_, w) => loop(w));
  for (let k = 0; k < 20; k++) {
    await chain.changeRoutes([{ op: 'set', route: '/flip', functions: k % 2 ? ['upper', 'stamp'] : ['shout', 'stamp'] }]);
    await sleep(100);
  }
  stop = true;
  await Promise.all(loops);
  agent.destroy();
  assert.equal(failures, [], `${failures.length} of ${n} failed`);
  assert.ok(n > 100, `${n} requests`);
  assert.equal([...seen].sort(), ['shout', 'upper']);
  // The first request after a change returns is on the new route.
  await chain.changeRoutes([{ op: 'set', route: '/flip', functions: ['shout', 'stamp'] }]);
  assert.is((await post(url('/flip'), 'after')).body, 'AFTER! [/flip]');
});

test('an instance that dies fails the requests it held with 503 at once', async () => {
  const pid = slot('hold', 0).pid!;
  const t0 = Date.now();
  const held = Array.from({ length: 10 }, () => post(url('/hold'), 'hold 4000'));
  await sleep(300);
  process.kill(pid, 'SIGKILL');
  const rs = await Promise.all(held);
  const took = Date.now() - t0;
  for (const r of rs) {
    assert.is(r.status, 503);
    assert.match(r.body, /instance 0 of hold died/);
  }
  assert.ok(took < 2000, `answered ${took} ms after they were sent (the function would take 4000)`);
  await until(() => slot('hold', 0).state === 'ready' && slot('hold', 0).pid !== pid, 'hold to come back');
  assert.is((await post(url('/hold'), 'hold 0')).body, 'hold 0');
  await until(() => chain.poolStats().inUse === 0, 'the pool to settle', 5000);
});

test('a killed gateway process comes back on the same port; the other serves meanwhile', async () => {
  const old = slot('gateway', 0).pid!;
  const back = () => slot('gateway', 0).state === 'ready' && slot('gateway', 0).pid !== old;
  process.kill(old, 'SIGKILL');
  await until(() => slot('gateway', 0).state !== 'ready' || slot('gateway', 0).pid !== old, 'the supervisor to see gateway#0 die');
  const meanwhile: Answer[] = [];
  for (let i = 0; !back() && i < 200; i++) meanwhile.push(await post(url('/c'), `down ${i}`));
  for (const [i, r] of meanwhile.entries()) assert.is(r.body, `DOWN ${i}! [/c]`);
  await until(back, 'gateway#0 to come back');
  assert.is(slot('gateway', 0).info.port, chain.port);
  assert.ok(inCgroup(slot('gateway', 0).pid!));
  assert.ok(registered(0, 0));
  const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => post(url('/c'), `again ${i}`)));
  for (const [i, r] of rs.entries()) assert.is(r.body, `AGAIN ${i}! [/c]`);
});

test('stop() leaves nothing behind', async () => {
  const pids = chain.instances().map((i) => i.pid!);
  const own = ownObjects(ENV.BPFCTL_BPFFS);
  assert.equal(ownByKind(own), CHAIN_PINNED, `our pinned objects (${[...own].join(' ')})`);
  await chain.stop();
  for (const pid of pids) assert.not.ok(pidAlive(pid), `pid ${pid}`);
  assert.not.ok(existsSync(chain.pinDir));
  assert.not.ok(existsSync(ENV.BPFCTL_CGROUP_PARENT));
  assert.not.ok(existsSync(`/dev/shm/bpfctl-pool-${ID}`));
  assert.equal(await runLeaks(before, own, [ENV.BPFCTL_BPFFS, ENV.BPFCTL_RUN_DIR]), []);
});

test.run();
