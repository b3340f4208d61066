/**
 * End to end through a real loaded chain: the policy's sk_msg program in the kernel, function
 * processes in TypeScript and C, the hub, the dead-letter socket and the HTTP gateway, all
 * following the live routes through the pinned (mapped) maps. The test is its own small
 * supervisor (what `bpfctl run` does): it creates the pool, starts the hub, spawns instances with
 * every registration path (a socket handed over IPC, a socket it connected, inserted and handed
 * down: fd 3 for a TS instance, fd 4 for a C one as the supervisor does), and keeps the
 * `instances` map current. Only it writes `socks`: a process that merely connects to the hub,
 * even from inside the policy cgroup, gets nothing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChainMaps, openChainMaps } from '../../src/deploy/chain-maps.ts';
import { chainConfig } from '../../src/deploy/chain.ts';
import { loadPolicy, unloadPolicy } from '../../src/deploy/policy.ts';
import { policyDir } from '../../src/deploy/paths.ts';
import { DEAD_LETTER_KEY_BYTES, sockKeyBytes } from '../../src/ir/chain-maps.ts';
import { lowerPolicy, type PolicyIR } from '../../src/ir/policy.ts';
import { resolveHandler } from '../../src/load/index.ts';
import { buildCFunction } from '../../src/runtime/c/build.ts';
import { type Gateway, startGateway } from '../../src/runtime/gateway/index.ts';
import { type DeadLetter, type Hub, startDeadLetter, startHub } from '../../src/runtime/hub.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import { LiveRouteTable } from '../../src/runtime/route-table.ts';
import { functionEnv } from '../../src/runtime/sdk/env.ts';
import { socketFd } from '../../src/runtime/sdk/link.ts';
import { removeOwnDirs, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { ownLeaks } from './runtime-fixtures/leaks.ts';

const ROOT = `/sys/fs/bpf/bpfctl-test-${process.pid}-rtchain`;
const CG = `/sys/fs/cgroup/unified/bpfctl-test-${process.pid}-rt`;
// Taken in before(), not at import: uvu imports every file first, and another file may set these
// at import time; restoring what was there when this file started leaves its values alone.
let saved: { root?: string; cg?: string } = {};
const REPO = resolve(import.meta.dirname ?? __dirname, '../..');
const FN = (f: string) => join(REPO, 'examples/hello-chain/functions', f);
const SDK_MAIN = join(REPO, 'src/runtime/sdk/main.ts');
const POLICY_FILE = join(REPO, 'test/kernel/runtime-fixtures/policy.ts');

let ir: PolicyIR;
let before: Snapshot;
let maps: ChainMaps;
let pool: Pool;
let hub: Hub;
let dead: DeadLetter;
let gw: Gateway;
let routes: LiveRouteTable;
let shoutExe: string;

interface Instance {
  fn: string;
  inst: number;
  mode: 'ipc' | 'fd';
  child: ChildProcess;
  ready: Promise<void>;
}
const children: Instance[] = [];
const live = new Map<number, Set<number>>();

function publish(fnId: number): void {
  const set = [...(live.get(fnId) ?? [])].sort((a, b) => a - b);
  maps.instances.set(fnId, { count: set.length, inst: Array.from({ length: 32 }, (_, i) => set[i] ?? 0) });
}
const fnId = (name: string) => ir.functions.find((f) => f.name === name)!.id;

/** Entries in `socks` (instances' sockets, the gateway's and the dead-letter socket). */
function socksCount(): number {
  let n = 0;
  for (let k = maps.socks.nextKey(null); k; k = maps.socks.nextKey(k)) n++;
  return n;
}

/** Spawns one instance with the given registration path; resolves `ready` once it can take traffic. */
async function spawnInstance(fn: string, inst: number, mode: Instance['mode']): Promise<Instance> {
  const id = fnId(fn);
  const c = ir.functions[id - 1]!.language === 'c';
  const key = sockKeyBytes(id, inst);
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  const stdio: (string | net.Socket)[] = ['ignore', 'inherit', 'inherit'];
  let sock: net.Socket | undefined;
  if (mode === 'fd' || c) {
    // The supervisor connects and registers the socket itself, then hands it down (a C function
    // has no other way: it has no IPC channel).
    sock = net.connect(hub.port, '127.0.0.1');
    // Until it is handed down and destroyed here: a hub closing meanwhile must not crash the run.
    sock.on('error', () => {});
    await new Promise((r) => sock!.once('connect', r));
    maps.socks.updateFd(key, socketFd(sock));
  }
  const f = ir.functions[id - 1]!;
  Object.assign(
    env,
    functionEnv({
      functionName: fn,
      fnId: id,
      instance: inst,
      hubPort: hub.port,
      pool: pool.path,
      pinDir: policyDir(ir.name, ROOT),
      maxInFlight: f.maxInFlight,
      handler: c ? undefined : resolveHandler(POLICY_FILE, f),
    }),
  );
  let child: ChildProcess;
  if (c) {
    // As the supervisor lays it out: ready pipe on fd 3, the registered socket on fd 4.
    stdio.push('pipe', sock!);
    env.BPFCTL_READY_FD = '3';
    env.BPFCTL_SOCK_FD = '4';
    child = spawn(shoutExe, [], { env, stdio: stdio as never });
  } else {
    if (sock) {
      stdio.push(sock);
      env.BPFCTL_SOCK_FD = '3';
    }
    stdio.push('ipc');
    child = spawn(process.execPath, ['--import', 'tsx', SDK_MAIN], { env, stdio: stdio as never, cwd: REPO });
  }
  sock?.destroy();
  const ready = new Promise<void>((res, rej) => {
    child.once('exit', (code) => rej(new Error(`${fn}#${inst} exited with ${code} before it was ready`)));
    if (c) {
      const pipe = child.stdio[3] as NodeJS.ReadableStream;
      pipe.once('data', () => res());
      return;
    }
    child.on('message', (m: { type?: string; token?: number }, handle?: unknown) => {
      if (m.type === 'bpfctl:register' && handle instanceof net.Socket) {
        // The key is the one this supervisor gave the child, whatever the message claims.
        maps.socks.updateFd(key, socketFd(handle));
        handle.destroy();
        child.send({ type: 'bpfctl:registered', token: m.token });
      } else if (m.type === 'bpfctl:ready') {
        res();
      }
    });
  });
  const i: Instance = { fn, inst, mode, child, ready };
  children.push(i);
  await ready;
  child.removeAllListeners('exit');
  // A supervisor takes an instance out of `instances` as soon as it dies.
  child.once('exit', () => {
    live.get(id)?.delete(inst);
    publish(id);
  });
  const set = live.get(id) ?? new Set<number>();
  live.set(id, set);
  set.add(inst);
  publish(id);
  return i;
}

/** The policy cgroup, where `bpfctl run` puts every process of the chain. */
function CG_POLICY(): string {
  return join(CG, ir.name);
}

async function kill(i: Instance): Promise<void> {
  const set = live.get(fnId(i.fn));
  set?.delete(i.inst);
  publish(fnId(i.fn));
  if (i.child.exitCode !== null || i.child.signalCode !== null) return;
  const gone = new Promise((r) => i.child.once('exit', r));
  i.child.kill('SIGKILL');
  await gone;
  // What a dead instance held goes back to the pool.
  pool.reclaim(i.child.pid!);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
function call(path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    // Routes accept POST (the default methods); a request without a body is a bodiless POST.
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, method: 'POST', agent }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      // A connection reset mid-response rejects the call instead of crashing the run.
      r.on('error', rej);
      r.on('end', () => res({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', rej);
    req.setHeader('content-length', body === undefined ? 0 : Buffer.byteLength(body));
    req.end(body);
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function poolSettles(): Promise<number> {
  const end = Date.now() + 3000;
  while (pool.stats().inUse !== 0 && Date.now() < end) await sleep(10);
  return pool.stats().inUse;
}

test.before(async () => {
  saved = { root: process.env.BPFCTL_BPFFS, cg: process.env.BPFCTL_CGROUP_PARENT };
  process.env.BPFCTL_BPFFS = ROOT;
  process.env.BPFCTL_CGROUP_PARENT = CG;
  // Read by the fixture policy, here and in the function processes (they inherit it).
  process.env.RT_POLICY_NAME = `rtchain-${process.pid}`;
  ir = lowerPolicy((await import('./runtime-fixtures/policy.ts')).default);
  shoutExe = await buildCFunction(FN('shout.c'));
  before = snapshot();
  loadPolicy(ir, { root: ROOT });
  maps = openChainMaps(ir.name, ROOT);
  pool = Pool.create({ name: `bpfctl-test-${process.pid}-rtchain`, bufferSize: ir.pool.bufferSize, bufferCount: ir.pool.bufferCount, backing: 'shm' });
  hub = await startHub();
  // The hub's port is known only now.
  maps.config.set(0, chainConfig(ir, hub.port));
  routes = LiveRouteTable.open(policyDir(ir.name, ROOT));
  dead = startDeadLetter({
    routeLen: (slot) => routes.bySlot(slot)?.len,
    hubPort: hub.port,
    register: (fd) => maps.socks.updateFd(DEAD_LETTER_KEY_BYTES, fd),
    log: () => {},
  });
  await dead.ready;
  gw = await startGateway({
    policy: ir,
    pool,
    hubPort: hub.port,
    register: (fd) => maps.socks.updateFd(sockKeyBytes(0, 0), fd),
    routes,
    instances: maps.instances.map,
    instanceCacheMs: 0,
    timeoutMs: 2000,
  });
  await gw.ready;
  await Promise.all([
    spawnInstance('upper', 0, 'ipc'),
    spawnInstance('upper', 1, 'fd'),
    spawnInstance('reverse', 0, 'fd'),
    spawnInstance('stamp', 0, 'ipc'),
    spawnInstance('shout', 0, 'fd'),
    spawnInstance('shout', 1, 'fd'),
    spawnInstance('flaky', 0, 'ipc'),
  ]);
});

test('every route returns what its functions computed, in order', async () => {
  assert.equal(await call('/hello', 'hello world'), { status: 200, body: 'DLROW OLLEH [/hello]' });
  assert.equal(await call('/shout', 'hey'), { status: 200, body: 'HEY [/shout]' });
  // C and TypeScript in one chain, both ways round.
  assert.equal(await call('/mixed', 'abc'), { status: 200, body: '!CBA' });
  assert.equal(await call('/c-first', 'abc def'), { status: 200, body: 'ABC DEF! [/c-first]' });
  assert.equal(await call('/flaky', 'x'), { status: 200, body: 'x+' });
  assert.is(await poolSettles(), 0);
});

/** Bytes each live instance of `fn` has read (its descriptors arrive by read(); payloads are in the pool). */
function bytesRead(fn: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const c of children.filter((x) => x.fn === fn && x.child.exitCode === null)) {
    out.set(c.inst, Number(/^rchar:\s*(\d+)/m.exec(readFileSync(`/proc/${c.child.pid}/io`, 'utf8'))![1]));
  }
  return out;
}

test('concurrent requests across routes and instances each get their own answer', async () => {
  const readBefore = { upper: bytesRead('upper'), shout: bytesRead('shout') };
  assert.is(readBefore.upper.size, 2, 'two upper instances');
  assert.is(readBefore.shout.size, 2, 'two shout instances');
  const jobs = Array.from({ length: 300 }, (_, i) => {
    const kind = i % 4;
    if (kind === 0) return call('/hello', `req ${i}`).then((r) => assert.equal(r, { status: 200, body: `${[...`REQ ${i}`].reverse().join('')} [/hello]` }));
    if (kind === 1) return call('/shout', `s${i}`).then((r) => assert.equal(r, { status: 200, body: `S${i} [/shout]` }));
    if (kind === 2) return call('/mixed', `m${i}`).then((r) => assert.equal(r, { status: 200, body: `!${i.toString().split('').reverse().join('')}M` }));
    return call('/flaky', `slow ${i}`).then((r) => assert.equal(r, { status: 200, body: `slow ${i}+` }));
  });
  await Promise.all(jobs);
  assert.is(await poolSettles(), 0);
  // Both instances of upper and of shout took traffic (inst[req_id % count]): each read at
  // least one 24-byte descriptor during the run (the kernel counts what each process read).
  for (const fn of ['upper', 'shout'] as const) {
    const now = bytesRead(fn);
    for (const [inst, was] of readBefore[fn]) {
      assert.ok((now.get(inst) ?? 0) - was >= 24, `${fn}#${inst} read ${(now.get(inst) ?? 0) - was} bytes: it took no traffic`);
    }
  }
  const st = maps.fnStats.getSum(fnId('upper'));
  assert.ok(st && st.msgs > 0n);
});

/** utime + stime of a process, in clock ticks (1/100 s). */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

test('a warm idle chain uses no CPU: every instance blocks in epoll/read', async () => {
  const pids = children.filter((c) => c.child.exitCode === null).map((c) => c.child.pid!);
  await sleep(1000); // let the last requests' garbage be collected
  const t0 = pids.map(cpuTicks);
  await sleep(2000);
  const used = pids.map((p, i) => cpuTicks(p) - t0[i]!);
  // 2 s idle: a polling loop would burn ~200 ticks per process; allow a stray GC or two.
  assert.ok(
    used.reduce((a, b) => a + b, 0) <= 6,
    `ticks used while idle: ${used.join(', ')}`,
  );
});

test('handler errors come back with their status; new buffers are freed', async () => {
  assert.equal(await call('/flaky', 'boom'), { status: 500, body: 'flaky: boom' });
  assert.equal(await call('/flaky', 'teapot'), { status: 418, body: 'flaky: short and stout' });
  // An error mid-route skips the rest (upper ran, stamp did not).
  assert.equal(await call('/late-fail', 'boom'), { status: 500, body: 'flaky: boom' });
  assert.equal(await call('/flaky', 'fresh'), { status: 200, body: 'fresh(fresh)' });
  assert.equal(await call('/late-fail', 'fresh'), { status: 200, body: 'fresh(FRESH) [/late-fail]' });
  const tooLong = await call('/c-only', 'x'.repeat(ir.pool.bufferSize));
  assert.is(tooLong.status, 413);
  assert.is(tooLong.body, "shout: no room for the '!'");
  assert.is((await call('/nowhere', 'x')).status, 404);
  assert.is(await poolSettles(), 0);
});

test('a function without live instances: 503; after a restart (a new registration) it serves again', async () => {
  const stamp = children.find((c) => c.fn === 'stamp')!;
  await kill(stamp);
  const r = await call('/hello', 'x');
  assert.is(r.status, 503);
  assert.match(r.body, /stamp has no live instance/);
  // Routes without stamp are unaffected.
  assert.equal(await call('/mixed', 'ok'), { status: 200, body: '!KO' });
  await spawnInstance('stamp', 0, 'ipc');
  assert.equal(await call('/hello', 'back'), { status: 200, body: 'KCAB [/hello]' });
  assert.is(await poolSettles(), 0);
});

test('an instance dying with requests in flight: they fail, nothing leaks, the rest keeps working', async () => {
  const flaky = children.find((c) => c.fn === 'flaky' && c.child.exitCode === null)!;
  const pending = Array.from({ length: 5 }, (_, i) => call('/flaky', `slow dying ${i}`));
  await sleep(5);
  // Killed without leaving the instances map first: the kernel then finds a dead socket and the
  // dead-letter socket fails the request back to the gateway, or the gateway times out.
  flaky.child.kill('SIGKILL');
  await new Promise((r) => flaky.child.once('exit', r));
  pool.reclaim(flaky.child.pid!);
  const rs = await Promise.all(pending);
  // In flight when the instance died (each handler sleeps 20 ms; the kill came 5 ms in): none
  // can have been answered by it, so every one fails, fast (503) or by the gateway's timeout (504).
  for (const [i, r] of rs.entries()) assert.ok([503, 504].includes(r.status), `request ${i} in flight on the killed instance: status ${r.status} ${r.body}`);
  const after = await call('/flaky', 'after');
  assert.ok([503, 504].includes(after.status), `status ${after.status}`);
  live.get(fnId('flaky'))?.delete(0);
  publish(fnId('flaky'));
  assert.is((await call('/flaky', 'x')).status, 503);
  await spawnInstance('flaky', 0, 'ipc');
  assert.equal(await call('/flaky', 'y'), { status: 200, body: 'y+' });
  assert.equal(await call('/hello', 'still'), { status: 200, body: 'LLITS [/hello]' });
  assert.is(await poolSettles(), 0);
});

// A would-be instance that was not started for a slot: connects to the hub, sends a descriptor
// naming a real route and a real buffer, reports what it receives, stays until its stdin closes.
const INTRUDER = `
const net = require('node:net');
const s = net.connect({ port: Number(process.argv[1]), host: '127.0.0.1' }, () => {
  const d = Buffer.alloc(24);
  d.writeUInt32LE(4242, 8);
  d.writeUInt32LE(Number(process.argv[2]), 12);
  d.writeUInt32LE(1, 16);
  s.write(d, () => console.log('sent'));
});
s.on('data', (b) => console.log('got ' + b.length));
s.on('error', (e) => console.log('error ' + e.code));
process.stdin.on('end', () => s.destroy());
process.stdin.resume();
`;

test('a process in the policy cgroup that connects to the hub gets nothing: not in socks, its bytes are stray', async () => {
  const n0 = socksCount();
  const stray0 = hub.stats().strayBytes;
  const upper0 = maps.fnStats.getSum(fnId('upper'))!.msgs;
  const env = { ...process.env };
  delete env.FORCE_COLOR;
  // In the policy cgroup before it connects: with sockops registration gone, that counts for nothing.
  const child = spawn('sh', ['-c', `echo $$ > ${CG_POLICY()}/cgroup.procs && exec "$0" "$@"`, process.execPath, '-e', INTRUDER, String(hub.port), String(pool.dataOffset)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env,
  });
  const lines: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (t: string) => lines.push(...t.split('\n').filter(Boolean)));
  try {
    const end = Date.now() + 5000;
    while (!(lines.includes('sent') && hub.stats().strayBytes >= stray0 + 24) && Date.now() < end) await sleep(10);
    assert.ok(lines.includes('sent'), `the intruder sent its descriptor (${lines.join('; ')})`);
    assert.ok(readFileSync(join(CG_POLICY(), 'cgroup.procs'), 'utf8').split('\n').includes(String(child.pid)), 'it runs in the policy cgroup');
    // The kernel never saw it: the bytes went over TCP to the hub, which counts and drops them.
    assert.is(hub.stats().strayBytes, stray0 + 24);
    assert.is(socksCount(), n0, 'no socket entered socks');
    await sleep(100);
    assert.is(maps.fnStats.getSum(fnId('upper'))!.msgs, upper0, 'nothing was routed to upper');
    assert.equal(lines.filter((l) => l.startsWith('got') || l.startsWith('error')), [], 'it received nothing');
    assert.equal(await call('/hello', 'unmoved'), { status: 200, body: 'DEVOMNU [/hello]' });
  } finally {
    child.stdin!.end();
    child.kill();
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  }
  assert.is(await poolSettles(), 0);
});

test('teardown: processes, maps, pins, cgroup and pool all gone', async () => {
  agent.destroy();
  for (const c of children) await kill(c);
  await gw.close();
  dead.close();
  await hub.close();
  routes.close();
  maps.close();
  assert.is(pool.stats().inUse, 0);
  pool.close();
  Pool.remove(pool.path);
  unloadPolicy(ir.name, { root: ROOT });
  assert.not.ok(existsSync(CG_POLICY()), 'the policy cgroup is gone');
  // Checked before anything else is removed: the pin root may remain, empty, and nothing else.
  assert.equal(await ownLeaks(before, { ownDirs: [ROOT, CG] }), []);
  removeOwnDirs([ROOT, CG]);
});

// Whatever happened above: nothing of this suite may stay on the machine (best effort; the
// teardown test asserts the normal path).
test.after(async () => {
  for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  const quietly = async (f: () => unknown) => {
    try {
      await f();
    } catch {
      // already gone
    }
  };
  await quietly(() => gw?.close());
  await quietly(() => dead?.close());
  await quietly(() => hub?.close());
  await quietly(() => routes?.close());
  await quietly(() => maps?.close());
  await quietly(() => pool && Pool.remove(pool.path));
  await quietly(() => existsSync(ROOT) && unloadPolicy(ir.name, { root: ROOT }));
  await quietly(() => rmSync(ROOT, { recursive: true, force: true }));
  process.env.BPFCTL_BPFFS = saved.root;
  process.env.BPFCTL_CGROUP_PARENT = saved.cg;
  if (saved.root === undefined) delete process.env.BPFCTL_BPFFS;
  if (saved.cg === undefined) delete process.env.BPFCTL_CGROUP_PARENT;
});

test.run();
