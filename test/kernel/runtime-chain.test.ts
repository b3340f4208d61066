/**
 * End to end through a real loaded chain: the policy's sk_msg and sockops programs in the kernel,
 * function processes in TypeScript and C, the hub, the dead-letter socket and the HTTP gateway.
 * The test is its own small supervisor (what `bpfctl run` does): it creates the pool, starts the
 * hub, spawns instances with every registration path (sockops from a reserved port in the policy
 * cgroup, a socket handed over IPC, an inherited socket) and keeps the `instances` map current.
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
import { DEAD_LETTER_KEY_BYTES, sockKeyBytes } from '../../src/ir/chain-maps.ts';
import { lowerPolicy, type PolicyIR } from '../../src/ir/policy.ts';
import { buildCFunction } from '../../src/runtime/c/build.ts';
import { type Gateway, startGateway } from '../../src/runtime/gateway/index.ts';
import { type DeadLetter, type Hub, startDeadLetter, startHub } from '../../src/runtime/hub.ts';
import { Pool } from '../../src/runtime/pool/index.ts';
import { functionEnv } from '../../src/runtime/sdk/env.ts';
import { socketFd } from '../../src/runtime/sdk/link.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { ownLeaks } from './runtime-fixtures/leaks.ts';

const ROOT = `/sys/fs/bpf/bpfctl-test-${process.pid}-rtchain`;
const CG = `/sys/fs/cgroup/unified/bpfctl-test-${process.pid}-rt`;
const saved = { root: process.env.BPFCTL_BPFFS, cg: process.env.BPFCTL_CGROUP_PARENT };
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
let shoutExe: string;

interface Instance {
  fn: string;
  inst: number;
  mode: 'sockops' | 'ipc' | 'fd';
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

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Spawns one instance with the given registration path; resolves `ready` once it can take traffic. */
async function spawnInstance(fn: string, inst: number, mode: Instance['mode']): Promise<Instance> {
  const id = fnId(fn);
  const c = ir.functions[id - 1]!.language === 'c';
  const key = sockKeyBytes(id, inst);
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  const stdio: (string | net.Socket)[] = ['ignore', 'inherit', 'inherit'];
  let regPort: number | undefined;
  let sock: net.Socket | undefined;
  if (mode === 'sockops') {
    regPort = await freePort();
    // Reserved before the instance connects: sockops registers exactly this port, as this key.
    maps.regPorts.set(regPort, new DataView(key.buffer).getUint32(0, true));
  } else if (mode === 'fd') {
    // The supervisor connects and registers the socket itself, then hands it down.
    sock = net.connect(hub.port, '127.0.0.1');
    await new Promise((r) => sock!.once('connect', r));
    maps.socks.updateFd(key, socketFd(sock));
    stdio.push(sock);
  }
  Object.assign(
    env,
    functionEnv(ir, { policyFile: POLICY_FILE, functionName: fn, instance: inst, hubPort: hub.port, pool: pool.path, regPort, cgroup: regPort ? CG_POLICY() : undefined }),
  );
  if (mode === 'fd') env.BPFCTL_SOCK_FD = '3';
  let child: ChildProcess;
  if (c) {
    stdio.push('pipe');
    env.BPFCTL_READY_FD = String(stdio.length - 1);
    child = spawn(shoutExe, [], { env, stdio: stdio as never });
  } else {
    stdio.push('ipc');
    child = spawn(process.execPath, ['--import', 'tsx', SDK_MAIN], { env, stdio: stdio as never, cwd: REPO });
  }
  sock?.destroy();
  const ready = new Promise<void>((res, rej) => {
    child.once('exit', (code) => rej(new Error(`${fn}#${inst} exited with ${code} before it was ready`)));
    if (c) {
      const pipe = child.stdio[stdio.length - 1] as NodeJS.ReadableStream;
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
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, method: body === undefined ? 'GET' : 'POST', agent }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', rej);
    if (body !== undefined) req.setHeader('content-length', Buffer.byteLength(body));
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
  // The hub's port is known only now: sockops registers connections to exactly this port.
  maps.config.set(0, chainConfig(ir, hub.port));
  dead = startDeadLetter({ policy: ir, hubPort: hub.port, register: (fd) => maps.socks.updateFd(DEAD_LETTER_KEY_BYTES, fd), log: () => {} });
  await dead.ready;
  gw = await startGateway({
    policy: ir,
    pool,
    hubPort: hub.port,
    register: (fd) => maps.socks.updateFd(sockKeyBytes(0, 0), fd),
    instances: maps.instances.map,
    instanceCacheMs: 0,
    timeoutMs: 2000,
  });
  await gw.ready;
  await Promise.all([
    spawnInstance('upper', 0, 'sockops'),
    spawnInstance('upper', 1, 'ipc'),
    spawnInstance('reverse', 0, 'fd'),
    spawnInstance('stamp', 0, 'sockops'),
    spawnInstance('shout', 0, 'sockops'),
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

test('concurrent requests across routes and instances each get their own answer', async () => {
  const jobs = Array.from({ length: 300 }, (_, i) => {
    const kind = i % 4;
    if (kind === 0) return call('/hello', `req ${i}`).then((r) => assert.equal(r, { status: 200, body: `${[...`REQ ${i}`].reverse().join('')} [/hello]` }));
    if (kind === 1) return call('/shout', `s${i}`).then((r) => assert.equal(r, { status: 200, body: `S${i} [/shout]` }));
    if (kind === 2) return call('/mixed', `m${i}`).then((r) => assert.equal(r, { status: 200, body: `!${i.toString().split('').reverse().join('')}M` }));
    return call('/flaky', `slow ${i}`).then((r) => assert.equal(r, { status: 200, body: `slow ${i}+` }));
  });
  await Promise.all(jobs);
  assert.is(await poolSettles(), 0);
  // Both instances of upper and of shout took traffic (inst[req_id % count]).
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

test('a function without live instances: 503; after a restart (same reserved port) it serves again', async () => {
  const stamp = children.find((c) => c.fn === 'stamp')!;
  await kill(stamp);
  const r = await call('/hello', 'x');
  assert.is(r.status, 503);
  assert.match(r.body, /stamp has no live instance/);
  // Routes without stamp are unaffected.
  assert.equal(await call('/mixed', 'ok'), { status: 200, body: '!KO' });
  await spawnInstance('stamp', 0, 'sockops');
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
  for (const r of rs) assert.ok([200, 503, 504].includes(r.status), `status ${r.status}`);
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

test('teardown: processes, maps, pins, cgroup and pool all gone', async () => {
  agent.destroy();
  for (const c of children) await kill(c);
  await gw.close();
  dead.close();
  await hub.close();
  maps.close();
  assert.is(pool.stats().inUse, 0);
  pool.close();
  Pool.remove(pool.path);
  unloadPolicy(ir.name, { root: ROOT });
  rmSync(ROOT, { recursive: true, force: true });
  assert.not.ok(existsSync(CG_POLICY()), 'the policy cgroup is gone');
  assert.equal(ownLeaks(before, { pinDirs: [ROOT] }), []);
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
