/**
 * `startChain` end to end on the real kernel: the hello-chain example as real processes (gateway
 * + one per function instance, all in the policy cgroup, each registered by the supervisor with
 * the socket its process handed over, sk_msg between them), driven by a real HTTP client. Checks
 * the answers, concurrency, that a killed instance is replaced while traffic goes on, that
 * scaling never reuses an instance id and is recorded in the manifest, that pool buffers all
 * come back, and that stop() leaves nothing behind.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../loader/index.ts';
import { readManifest } from '../../src/deploy/manifest.ts';
import { decodeInstances, sockKeyBytes, u32Key } from '../../src/ir/chain-maps.ts';
import { Pool, pidAlive } from '../../src/runtime/pool/index.ts';
import { askSupervisor, type Chain, type SlotInfo, startChain } from '../../src/runtime/supervisor/index.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { CHAIN_PINNED, ownByKind, ownObjects, runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const ID = `bpfctl-test-${process.pid}`;
const ENV = {
  BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`,
  BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`,
  BPFCTL_RUN_DIR: `/tmp/${ID}-run`,
};
// Taken in before(), not at import: uvu imports every file first, and another file may set these
// at import time; restoring what was there when this file started leaves its values alone.
let saved: Record<string, string | undefined> = {};
const POOL = `${ID}-run`;
const logs: string[] = [];

let before: Snapshot;
let chain: Chain;
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function post(url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      // A connection reset mid-response rejects the call instead of crashing the run.
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What the example's functions compute, in route order. */
const expected: Record<string, (s: string) => string> = {
  '/hello': (s) => `${[...s.toUpperCase()].reverse().join('')} [/hello]`,
  '/shout': (s) => `${s.toUpperCase()} [/shout]`,
};
const url = (route: string) => chain.routes.find((r) => r.name === route)!.url;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
/** Live instance ids of a function as the kernel has them (in registration order). */
function liveIds(fnId: number): number[] {
  const m = BpfMap.openPinned(join(chain.pinDir, 'maps/instances'));
  try {
    return decodeInstances(m.lookup(u32Key(fnId))!);
  } finally {
    m.close();
  }
}

test.before(async () => {
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  chain = await startChain(join(repo, 'examples/hello-chain/policy.ts'), { poolName: POOL, log: (l) => logs.push(l), timeoutMs: 2000 });
});

test.after(async () => {
  agent.destroy();
  await chain?.stop();
  rmSync(ENV.BPFCTL_RUN_DIR, { recursive: true, force: true });
  // Only when empty: what another file left there is that file's leak (its own check and the
  // final check name it); throwing here would end the whole run before the rest is tested.
  if (existsSync(ENV.BPFCTL_BPFFS) && readdirSync(ENV.BPFCTL_BPFFS).length === 0) rmdirSync(ENV.BPFCTL_BPFFS);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('prints a URL per route and runs one process per instance, all registered', () => {
  assert.match(chain.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.equal(
    chain.routes.map((r) => [r.name, r.url]),
    [
      ['/hello', `${chain.url}hello`],
      ['/shout', `${chain.url}shout`],
    ],
  );
  const inst = chain.instances();
  assert.equal(inst.map((i) => `${i.name}#${i.instance}`).sort(), ['gateway#0', 'reverse#0', 'stamp#0', 'upper#0', 'upper#1']);
  assert.ok(inst.every((i) => i.state === 'ready' && i.pid !== null && pidAlive(i.pid)));
  assert.is(new Set(inst.map((i) => i.pid)).size, inst.length, 'a process each');
  // Registration order: the two upper instances may have registered either way round.
  assert.equal([...liveIds(1)].sort(), [0, 1]);
  assert.equal(liveIds(0), [0]);
  assert.not.ok('regPort' in inst[0]!, 'no registration ports any more');
  // Every process of the chain, the gateway included, runs in the policy cgroup.
  const procs = readFileSync(join(chain.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  for (const i of inst) assert.ok(procs.includes(i.pid!), `${i.name}#${i.instance} (pid ${i.pid}) is in ${chain.cgroup}`);
  // Exactly the supervisor's sockets are in socks: one per instance, plus the dead-letter socket.
  const socks = BpfMap.openPinned(join(chain.pinDir, 'maps/socks'));
  try {
    let n = 0;
    for (let k = socks.nextKey(null); k; k = socks.nextKey(k)) n++;
    assert.is(n, inst.length + 1);
    for (const i of inst) assert.ok(socks.lookup(sockKeyBytes(i.fnId, i.instance)), `${i.name}#${i.instance} registered`);
  } finally {
    socks.close();
  }
});

test('every route returns what its functions computed, in order', async () => {
  for (const route of ['/hello', '/shout']) {
    for (const body of ['hello from bpfctl', 'abc', '']) {
      const r = await post(url(route), body);
      assert.is(r.status, 200, `${route} ${JSON.stringify(body)}: ${r.body}`);
      assert.is(r.body, expected[route]!(body));
    }
  }
});

test('concurrent requests each get their own answer', async () => {
  const reqs = Array.from({ length: 400 }, (_, i) => ({ route: i % 3 ? '/hello' : '/shout', body: `request number ${i}` }));
  const rs = await Promise.all(reqs.map((q) => post(url(q.route), q.body)));
  for (const [i, r] of rs.entries()) {
    assert.is(r.status, 200, `request ${i}: ${r.body}`);
    assert.is(r.body, expected[reqs[i]!.route]!(reqs[i]!.body));
  }
});

test('a crashed instance (kill -9) is replaced and traffic goes on', async () => {
  const victim = chain.instances().find((i) => i.name === 'upper' && i.instance === 1)!;
  const oldPid = victim.pid!;
  // Traffic while it dies: each request gets an answer (200, or 503/504 for one caught in the gap).
  const during = Promise.all(Array.from({ length: 100 }, (_, i) => post(url('/shout'), `during ${i}`)));
  process.kill(oldPid, 'SIGKILL');
  const answers = await during;
  for (const [i, r] of answers.entries()) {
    assert.ok([200, 503, 504].includes(r.status), `status ${r.status}: ${r.body}`);
    // A 200 in the gap is a whole answer, never one cut short or another request's.
    if (r.status === 200) assert.is(r.body, expected['/shout']!(`during ${i}`), `request ${i} during the crash`);
  }
  await until(() => {
    const s = chain.instances().find((i) => i.name === 'upper' && i.instance === 1)!;
    return s.state === 'ready' && s.pid !== oldPid && s.restarts === 1;
  }, 'upper#1 to come back');
  assert.not.ok(pidAlive(oldPid));
  // The slot came back under its own id, appended after the instance that stayed.
  assert.equal(liveIds(1), [0, 1]);
  assert.ok(logs.some((l) => l.includes(`pid ${oldPid} died (signal SIGKILL)`)));
  const after = await Promise.all(Array.from({ length: 100 }, (_, i) => post(url(i % 2 ? '/hello' : '/shout'), `after ${i}`)));
  for (const [i, r] of after.entries()) {
    assert.is(r.status, 200, `after restart ${i}: ${r.body}`);
    assert.is(r.body, expected[i % 2 ? '/hello' : '/shout']!(`after ${i}`));
  }
});

test('scale through the control socket: instances follow, traffic goes on', async () => {
  const to = (n: number) => askSupervisor('hello-chain', { op: 'scale', function: 'upper', instances: n });
  const some = async () => {
    const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => post(url('/shout'), `scaled ${i}`)));
    for (const [i, r] of rs.entries()) assert.is(r.body, expected['/shout']!(`scaled ${i}`), `status ${r.status}`);
  };
  const recorded = () => readManifest(chain.pinDir).ir.functions.find((f) => f.name === 'upper')!.instances;
  const up = (await to(4)) as SlotInfo[];
  assert.equal(up.map((s) => [s.instance, s.state]), [[0, 'ready'], [1, 'ready'], [2, 'ready'], [3, 'ready']]);
  // The ids already live keep their positions (req_id % count keeps most requests where they went);
  // the new ones are appended as they register.
  const four = liveIds(1);
  assert.equal(four.slice(0, 2), [0, 1]);
  assert.equal([...four].sort(), [0, 1, 2, 3]);
  assert.is(recorded(), 4, 'the manifest records the new count (status shows it)');
  await some();
  const down = (await to(1)) as SlotInfo[];
  assert.equal(down.map((s) => s.instance), [0]);
  assert.equal(liveIds(1), [0]);
  for (const s of up.slice(1)) assert.not.ok(pidAlive(s.pid!), `retired pid ${s.pid}`);
  assert.is(recorded(), 1);
  await some();
  // Ids are never reused while the chain runs: scaling up again starts instance 4.
  const again = (await to(2)) as SlotInfo[];
  assert.equal(again.map((s) => s.instance), [0, 4]);
  assert.equal(liveIds(1), [0, 4]);
  assert.is(recorded(), 2);
  assert.equal(
    chain
      .instances()
      .filter((i) => i.name === 'upper')
      .map((i) => i.instance),
    [0, 4],
  );
  await some();
  try {
    await askSupervisor('hello-chain', { op: 'scale', function: 'nope', instances: 1 });
    assert.unreachable('scaled an unknown function');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'E_SCALE');
  }
});

test('every pool buffer comes back', async () => {
  await until(() => chain.poolStats().inUse === 0, `pool in use to drop to 0 (now ${chain.poolStats().inUse})`, 5000);
});

test('stop() removes pins, programs, pool file, processes and cgroup', async () => {
  const pids = chain.instances().map((i) => i.pid!);
  const { pinDir, cgroup } = chain;
  const own = ownObjects(ENV.BPFCTL_BPFFS);
  assert.equal(ownByKind(own), CHAIN_PINNED, `found our pinned objects (${[...own].join(' ')})`);
  // The client's keep-alive sockets are this process's fds too; leaksSince() blocks the event
  // loop while it waits, so they must be closed before, not during, the check.
  agent.destroy();
  await chain.stop();
  await chain.stop(); // idempotent
  for (const pid of pids) assert.not.ok(pidAlive(pid), `pid ${pid} still alive`);
  assert.not.ok(existsSync(pinDir), 'policy pin dir');
  assert.not.ok(existsSync(cgroup), 'policy cgroup');
  assert.not.ok(existsSync(ENV.BPFCTL_CGROUP_PARENT), 'cgroup parent');
  assert.throws(() => Pool.resolve(POOL), /no pool/);
  assert.not.ok(existsSync(join(ENV.BPFCTL_RUN_DIR, 'hello-chain.pid')), 'pid file');
  assert.not.ok(existsSync(join(ENV.BPFCTL_RUN_DIR, 'hello-chain.sock')), 'control socket');
  await sleep(50);
  assert.equal(await runLeaks(before, own, [ENV.BPFCTL_BPFFS, ENV.BPFCTL_RUN_DIR]), []);
});

test.run();
