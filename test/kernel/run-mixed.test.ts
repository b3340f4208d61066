/**
 * `startChain` with the parts hello-chain does not use: a C function (built by the C SDK, run as
 * its own executable, ready through its pipe) between TS ones, and two gateway processes sharing
 * one HTTP port, all in the policy cgroup. A killed gateway comes back on the same URL; a killed C
 * instance is replaced, with a new socket the supervisor connected and inserted for it.
 * The policy is written to a temporary directory, pointing at the example's handlers.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../loader/index.ts';
import { sockKeyBytes } from '../../src/ir/chain-maps.ts';
import { pidAlive } from '../../src/runtime/pool/index.ts';
import { type Chain, startChain } from '../../src/runtime/supervisor/index.ts';
import { type Snapshot, snapshot } from '../helpers/leaks.ts';
import { CHAIN_PINNED, ownByKind, ownObjects, runLeaks } from './run-leaks.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..');
const fns = join(repo, 'examples/hello-chain/functions');
const ID = `bpfctl-test-${process.pid}-mixed`;
const ENV = { BPFCTL_BPFFS: `/sys/fs/bpf/${ID}`, BPFCTL_CGROUP_PARENT: `/sys/fs/cgroup/unified/${ID}`, BPFCTL_RUN_DIR: `/tmp/${ID}-run` };
// Taken in before(), not at import: uvu imports every file first, and another file may set these
// at import time; restoring what was there when this file started leaves its values alone.
let saved: Record<string, string | undefined> = {};
const dir = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-run-mixed-`));
const policyFile = join(dir, 'policy.mjs');
writeFileSync(
  policyFile,
  `export default ${JSON.stringify({
    name: 'run-mixed',
    functions: {
      upper: { instances: 1, handler: join(fns, 'upper.ts') },
      shout: { instances: 2, handler: join(fns, 'shout.c'), language: 'c' },
      stamp: { instances: 1, handler: join(fns, 'stamp.ts') },
    },
    routes: { '/c': ['shout', 'stamp'], '/mix': ['upper', 'shout', 'stamp'] },
    pool: { bufferSize: 1024, bufferCount: 256 },
    gateway: { instances: 2 },
  })};\n`,
);

let before: Snapshot;
let chain: Chain;
const logs: string[] = [];

/** A fresh connection per request: each may land on either gateway. */
function post(url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false }, (res) => {
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
const url = (route: string) => chain.routes.find((r) => r.name === route)!.url;
const slot = (name: string, inst: number) => chain.instances().find((i) => i.name === name && i.instance === inst)!;
async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
/** The cookie of the socket registered for an instance (null: none), read back from `socks`. */
function cookie(fnId: number, inst: number): string | null {
  const m = BpfMap.openPinned(join(chain.pinDir, 'maps/socks'));
  try {
    const v = m.lookup(sockKeyBytes(fnId, inst));
    return v ? Buffer.from(v).toString('hex') : null;
  } finally {
    m.close();
  }
}
const inCgroup = (pid: number) => readFileSync(join(chain.cgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid));
async function allAnswer(n: number): Promise<void> {
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => post(url(i % 2 ? '/c' : '/mix'), `req ${i}`)));
  for (const [i, r] of rs.entries()) {
    assert.is(r.status, 200, `request ${i}: ${r.body}`);
    assert.is(r.body, `REQ ${i}! [${i % 2 ? '/c' : '/mix'}]`);
  }
}

test.before(async () => {
  before = snapshot();
  saved = Object.fromEntries(Object.keys(ENV).map((k) => [k, process.env[k]]));
  Object.assign(process.env, ENV);
  chain = await startChain(policyFile, { poolName: ID, log: (l) => logs.push(l) });
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

test('C and TS functions chain; two gateways answer on one port', async () => {
  const gws = chain.instances().filter((i) => i.kind === 'gateway');
  assert.is(gws.length, 2);
  assert.ok(gws.every((g) => g.state === 'ready' && g.info.port === chain.port));
  // The supervisor moved every process into the policy cgroup, the gateways included, and
  // registered a socket for each (the C ones: connected by the supervisor, handed down as fd 4).
  for (const i of chain.instances()) {
    assert.ok(inCgroup(i.pid!), `${i.name}#${i.instance} in the policy cgroup`);
    assert.ok(cookie(i.fnId, i.instance), `${i.name}#${i.instance} registered`);
  }
  await allAnswer(60);
});

test('a killed gateway comes back on the same URL; the other serves meanwhile', async () => {
  const old = slot('gateway', 0).pid!;
  const back = () => slot('gateway', 0).state === 'ready' && slot('gateway', 0).pid !== old;
  process.kill(old, 'SIGKILL');
  await until(() => slot('gateway', 0).state !== 'ready' || slot('gateway', 0).pid !== old, 'the supervisor to see gateway#0 die');
  // Meanwhile, before #0 is back: every request (a new connection each) is answered, by #1.
  const meanwhile: { status: number; body: string }[] = [];
  for (let i = 0; !back(); i++) meanwhile.push(await post(url('/c'), `down ${i}`));
  assert.ok(meanwhile.length > 0, 'gateway#0 came back before a request could be sent while it was down');
  for (const [i, r] of meanwhile.entries()) {
    assert.is(r.status, 200, `request ${i} while gateway#0 was down: ${r.body}`);
    assert.is(r.body, `DOWN ${i}! [/c]`);
  }
  await until(back, 'gateway#0 to come back');
  assert.is(slot('gateway', 0).info.port, chain.port);
  assert.ok(inCgroup(slot('gateway', 0).pid!), 'the new gateway process is in the policy cgroup');
  await allAnswer(40);
});

test('a killed C instance is replaced', async () => {
  const old = slot('shout', 1).pid!;
  const fnId = slot('shout', 1).fnId;
  const oldCookie = cookie(fnId, 1);
  process.kill(old, 'SIGKILL');
  await until(() => slot('shout', 1).state === 'ready' && slot('shout', 1).pid !== old, 'shout#1 to come back');
  const fresh = cookie(fnId, 1);
  assert.ok(fresh && fresh !== oldCookie, 'a new socket, inserted by the supervisor, under the same key');
  await allAnswer(40);
  await until(() => chain.poolStats().inUse === 0, 'pool buffers to come back', 5000);
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
