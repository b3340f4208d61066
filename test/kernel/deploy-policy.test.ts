/**
 * Whole policies through the CLI, in-process, against the real kernel: load pins and attaches
 * everything, status reads it back, routes change live (each change a new slot and generation,
 * the old version draining), a second load replaces the first without leaving the old programs
 * loaded, unload removes it all, and bad input creates nothing.
 */
import { existsSync, rmdirSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfProgram, listPrograms } from '../../loader/index.ts';
import { openChainMaps } from '../../src/deploy/chain-maps.ts';
import { readManifest } from '../../src/deploy/manifest.ts';
import { applyRouteChanges, liveRoutes } from '../../src/deploy/routes.ts';
import { decodeRouteSlot, MAX_ROUTE_SLOTS, u32Key } from '../../src/ir/chain-maps.ts';
import { hashIR } from '../../src/ir/policy.ts';
import { importPolicySpec } from '../../src/load/index.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { runCli as cli } from '../helpers/cli.ts';

const ROOT = `/sys/fs/bpf/bpfctl-test-${process.pid}-deploy`;
const CG = `/sys/fs/cgroup/unified/bpfctl-test-${process.pid}`;
const POLICY = 'examples/hello-chain/policy.ts';
let before: Snapshot;
// Taken in before(), not at import: uvu imports every file first, and another file may set these
// at import time; restoring what was there when this file started leaves its values alone.
let saved: { root?: string; cg?: string } = {};

function progIds(dir: string): number[] {
  return ['chain_msg'].map((n) => {
    const p = BpfProgram.openPinned(`${dir}/progs/${n}`);
    try {
      return p.id;
    } finally {
      p.close();
    }
  });
}

test.before(async () => {
  saved = { root: process.env.BPFCTL_BPFFS, cg: process.env.BPFCTL_CGROUP_PARENT };
  process.env.BPFCTL_BPFFS = ROOT;
  process.env.BPFCTL_CGROUP_PARENT = CG;
  // The first TypeScript import through tsx starts its esbuild service (a child process and its
  // pipes) for the life of the process: warm it up so it is not counted as a leak.
  await importPolicySpec(POLICY);
  before = snapshot();
});

test.after(() => {
  process.env.BPFCTL_BPFFS = saved.root;
  process.env.BPFCTL_CGROUP_PARENT = saved.cg;
  if (saved.root === undefined) delete process.env.BPFCTL_BPFFS;
  if (saved.cg === undefined) delete process.env.BPFCTL_CGROUP_PARENT;
});

test('load pins programs, maps and manifest; status reads them back', async () => {
  const r = await cli('load', POLICY, '--json', '--quiet');
  assert.is(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.is(res.policy, 'hello-chain');
  assert.is(res.replaced, false);
  const maps = ['routes', 'instances', 'socks', 'config', 'fn_stats', 'route_stats', 'drop_reasons', 'gw_stats'];
  for (const p of ['manifest', 'progs/chain_msg', ...maps.map((m) => `maps/${m}`)]) {
    assert.ok(existsSync(`${ROOT}/hello-chain/${p}`), `${p} pinned`);
  }
  // Registration is the supervisor's: no sockops program, no cgroup link, no reg_ports map.
  for (const p of ['progs/chain_sockops', 'links/sockops', 'maps/reg_ports']) assert.not.ok(existsSync(`${ROOT}/hello-chain/${p}`), `${p} not pinned`);
  const m = readManifest(`${ROOT}/hello-chain`);
  assert.equal(m.pins.progs, ['progs/chain_msg']);
  assert.equal(m.pins.links, []);
  assert.equal([...m.pins.maps].sort(), maps.map((x) => `maps/${x}`).sort());
  // The policy cgroup is still made: the supervisor puts the chain's processes there.
  assert.ok(existsSync(`${CG}/hello-chain/cgroup.procs`), 'policy cgroup created');
  // Routes start in slots 0..n-1, live at generation 1, with their names and methods.
  const cm = openChainMaps('hello-chain', ROOT);
  try {
    const live = liveRoutes(cm);
    assert.is(live.gen, 1);
    assert.equal(
      live.current.map((x) => [x.name, x.slot, x.hops, x.methods, x.version]),
      [
        ['/hello', 0, [1, 2, 3], ['POST'], 1],
        ['/shout', 1, [1, 3], ['POST'], 1],
      ],
    );
    assert.equal(live.draining, []);
    assert.is(cm.routes.map.maxEntries, MAX_ROUTE_SLOTS);
  } finally {
    cm.close();
  }

  const s = await cli('status', 'hello-chain', '--json');
  assert.is(s.code, 0, s.stderr);
  const st = JSON.parse(s.stdout);
  assert.equal(
    st.routes.map((x: { name: string; functions: string[] }) => [x.name, x.functions]),
    [
      ['/hello', ['upper', 'reverse', 'stamp']],
      ['/shout', ['upper', 'stamp']],
    ],
  );
  assert.equal(st.functions.map((f: { name: string }) => f.name), ['gateway', 'upper', 'reverse', 'stamp']);
  const ids = new Set(listPrograms().map((p) => p.id));
  for (const p of st.programs) assert.ok(ids.has(p.id), `program ${p.pin} is loaded in the kernel`);

  const list = await cli('status', '--json');
  assert.equal(JSON.parse(list.stdout).map((p: { policy: string }) => p.policy), ['hello-chain']);
  const human = await cli('status', 'hello-chain');
  assert.match(human.stdout, /upper -> reverse -> stamp/);
});

test('route set writes a new slot and retires the old one; bad changes write nothing; del stops the route', async () => {
  const r = await cli('route', 'set', 'hello-chain', '/shout', 'stamp', 'upper', '--json');
  assert.is(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.equal(
    { op: res.op, route: res.route, previous: res.previous, functions: res.functions, methods: res.methods },
    { op: 'updated', route: '/shout', previous: 1, functions: ['stamp', 'upper'], methods: ['POST'] },
  );
  const shout = res.slot as number;
  assert.ok(shout !== 0 && shout !== 1, `a new slot (${shout}), not one in use`);
  const cm = openChainMaps('hello-chain', ROOT);
  try {
    const v = cm.routes.get(shout)!;
    assert.is(v.len, 2);
    assert.equal(v.fn.slice(0, 2), [3, 1]);
    assert.is(v.version, 2);
    assert.is(v.retired, 0);
    // The old version is not rewritten: it keeps routing requests under way until it drains.
    const old = decodeRouteSlot(cm.routes.map.lookup(u32Key(1))!);
    assert.equal(old.hops, [1, 3]);
    assert.is(old.retired, 2);
    assert.ok(Math.abs(old.retiredAtMs - Date.now()) < 60_000, 'retired now');
    assert.is(cm.config.get(0)!.routes_gen, 2, 'published as generation 2');
    // Counters are per slot and start at zero.
    assert.is(cm.routeStats.getSum(shout)!.msgs, 0n);
  } finally {
    cm.close();
  }
  // The manifest's route id is the new slot.
  assert.equal(
    readManifest(`${ROOT}/hello-chain`).ir.routes.map((x) => [x.name, x.id, x.functions]),
    [
      ['/hello', 0, ['upper', 'reverse', 'stamp']],
      ['/shout', shout, ['stamp', 'upper']],
    ],
  );
  const st = JSON.parse((await cli('status', 'hello-chain', '--json')).stdout);
  // Derived state follows the IR: the manifest's schemaHash is the hash of the IR it now holds.
  const changed = readManifest(`${ROOT}/hello-chain`);
  assert.is(changed.ir.hash, hashIR(changed.ir));
  assert.is(changed.schemaHash, changed.ir.hash);
  assert.is(st.schemaHash, changed.ir.hash, 'status prints the hash of the IR as it runs');
  assert.equal(
    st.routes.map((x: { id: number; name: string; functions: string[] }) => [x.id, x.name, x.functions]),
    [
      [0, '/hello', ['upper', 'reverse', 'stamp']],
      [shout, '/shout', ['stamp', 'upper']],
    ],
  );

  const bad = await cli('route', 'set', 'hello-chain', '/shout', 'upper', 'nosuch');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /routes\['\/shout'\]\[1\]/);
  assert.match(bad.stderr, /nosuch/);
  const unchanged = await cli('route', 'set', 'hello-chain', '/shout', 'stamp', 'upper', '--json');
  assert.is(JSON.parse(unchanged.stdout).op, 'unchanged');
  const cm2 = openChainMaps('hello-chain', ROOT);
  try {
    assert.is(cm2.config.get(0)!.routes_gen, 2, 'neither a refused nor an unchanged set publishes a generation');
  } finally {
    cm2.close();
  }

  const added = await cli('route', 'set', 'hello-chain', '/rev', 'reverse', '--methods', 'get', '--json');
  assert.is(added.code, 0, added.stderr);
  const a = JSON.parse(added.stdout);
  assert.equal({ op: a.op, previous: a.previous, methods: a.methods }, { op: 'added', previous: null, methods: ['GET', 'HEAD'] });
  assert.ok(![0, 1, shout].includes(a.slot), `a free slot (${a.slot})`);
  const ls = await cli('route', 'ls', 'hello-chain', '--json');
  assert.equal(
    JSON.parse(ls.stdout).map((x: { route: string; slot: number; state: string }) => [x.route, x.slot, x.state]),
    [
      ['/hello', 0, 'current'],
      ['/rev', a.slot, 'current'],
      ['/shout', shout, 'current'],
      ['/shout', 1, 'draining'],
    ],
  );
  const del = await cli('route', 'del', 'hello-chain', '/rev', '--json');
  assert.is(del.code, 0, del.stderr);
  assert.equal(JSON.parse(del.stdout).op, 'removed');
  assert.equal(JSON.parse(del.stdout).previous, a.slot);
  const cm3 = openChainMaps('hello-chain', ROOT);
  try {
    const live = liveRoutes(cm3);
    assert.is(live.gen, 4, 'set, add, del: three generations after the first');
    assert.equal(live.current.map((x) => x.name), ['/hello', '/shout'], 'new requests for /rev find no route (404)');
    assert.ok(live.draining.some((x) => x.name === '/rev' && x.slot === a.slot), 'requests under way finish on it');
  } finally {
    cm3.close();
  }
  assert.equal(readManifest(`${ROOT}/hello-chain`).ir.routes.map((x) => x.name), ['/hello', '/shout']);
  const gone = await cli('route', 'del', 'hello-chain', '/rev');
  assert.is(gone.code, 1);
  assert.match(gone.stderr, /no route '\/rev'/);
});

test('drained versions are freed and their slots reused with zeroed counters; a full table refuses the whole change', async () => {
  const cm = openChainMaps('hello-chain', ROOT);
  try {
    const before = liveRoutes(cm);
    const draining = before.draining.map((x) => x.slot).sort((a, b) => a - b);
    assert.ok(draining.includes(1), `slot 1 (the first /shout) is draining (${draining.join(', ')})`);
    // Traffic the old version carried, as the kernel would have counted it.
    cm.routeStats.setPerCpu(1, Array.from({ length: cm.routeStats.map.possibleCpus }, () => ({ msgs: 5n, bytes: 500n, drops: 1n })));
    assert.is(cm.routeStats.getSum(1)!.msgs, 5n * BigInt(cm.routeStats.map.possibleCpus));

    // A change after the drain time frees what has drained; the new version takes the first free slot.
    const [r] = applyRouteChanges('hello-chain', [{ op: 'set', route: '/shout', functions: ['upper', 'stamp'] }], { root: ROOT, drainMs: 0 });
    assert.equal({ op: r!.op, slot: r!.slot }, { op: 'updated', slot: draining[0] });
    const after = liveRoutes(cm);
    assert.equal(after.current.map((x) => [x.name, x.hops]), [
      ['/hello', [1, 2, 3]],
      ['/shout', [1, 3]],
    ]);
    // The freed slots are free again (except the one just taken); the version it replaced drains.
    for (const slot of draining.slice(1)) assert.is(decodeRouteSlot(cm.routes.map.lookup(u32Key(slot))!).version, 0, `slot ${slot} freed`);
    assert.equal(
      after.draining.map((x) => x.slot),
      [r!.previous],
    );
    assert.equal(cm.routeStats.getSum(r!.slot!), { msgs: 0n, bytes: 0n, drops: 0n }, 'a reused slot starts with zero counters');

    // More versions than slots in one change: refused before anything is written.
    const gen = after.gen;
    const flips = Array.from({ length: MAX_ROUTE_SLOTS + 8 }, (_, i) => ({ op: 'set' as const, route: '/shout', functions: i % 2 ? ['upper', 'stamp'] : ['stamp', 'upper'] }));
    try {
      applyRouteChanges('hello-chain', flips, { root: ROOT });
      assert.unreachable('the table had room');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'E_ROUTES_FULL');
    }
    const unchanged = liveRoutes(cm);
    assert.is(unchanged.gen, gen, 'no generation published');
    assert.equal(unchanged.current, after.current);
    assert.equal(unchanged.draining, after.draining);
  } finally {
    cm.close();
  }
});

test('loading again replaces the policy and unloads the old programs', async () => {
  const old = progIds(`${ROOT}/hello-chain`);
  const r = await cli('load', POLICY, '--json', '--quiet');
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).replaced, true);
  const now = progIds(`${ROOT}/hello-chain`);
  assert.not.equal(now, old);
  const loaded = new Set(listPrograms().map((p) => p.id));
  for (const id of old) assert.not.ok(loaded.has(id), `old program ${id} is gone`);
});

test('unload removes every pin and the cgroup', async () => {
  const r = await cli('unload', 'hello-chain');
  assert.is(r.code, 0, r.stderr);
  assert.not.ok(existsSync(`${ROOT}/hello-chain`));
  assert.not.ok(existsSync(`${CG}/hello-chain`));
  const again = await cli('unload', 'hello-chain');
  assert.is(again.code, 1);
  assert.match(again.stderr, /not loaded/);
});

test('a policy that does not validate is refused with its path and creates nothing', async () => {
  const r = await cli('load', 'test/fixtures/deploy/bad-route.policy.ts');
  assert.is(r.code, 1);
  assert.match(r.stderr, /routes\['\/x'\]\[1\]/);
  assert.not.ok(existsSync(`${ROOT}/bad-route`));
  const j = await cli('load', 'test/fixtures/deploy/bad-route.policy.ts', '--json');
  const err = JSON.parse(j.stderr);
  assert.is(err.code, 'E_POLICY');
  assert.is(err.path, "routes['/x'][1]");
});

test('nothing is left behind', async () => {
  assert.equal(await leaksSince(before, { pinDirs: [ROOT] }), []);
  assert.not.ok(existsSync(CG), 'the cgroup parent goes with its last policy');
  if (existsSync(ROOT)) rmdirSync(ROOT);
});

test.run();
