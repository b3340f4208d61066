/**
 * Whole policies through the CLI, in-process, against the real kernel: load pins and attaches
 * everything, status reads it back, routes change live, a second load replaces the first without
 * leaving the old programs loaded, unload removes it all, and bad input creates nothing.
 */
import { existsSync, rmdirSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfProgram, listPrograms } from '../../loader/index.ts';
import { main } from '../../src/cli/main.ts';
import { openChainMaps } from '../../src/deploy/chain-maps.ts';
import { importPolicySpec } from '../../src/ir/policy.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';

const ROOT = `/sys/fs/bpf/bpfctl-test-${process.pid}-deploy`;
const CG = `/sys/fs/cgroup/unified/bpfctl-test-${process.pid}`;
const POLICY = 'examples/hello-chain/policy.ts';
let before: Snapshot;
const saved = { root: process.env.BPFCTL_BPFFS, cg: process.env.BPFCTL_CGROUP_PARENT };

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

function progIds(dir: string): number[] {
  return ['chain_msg', 'chain_sockops'].map((n) => {
    const p = BpfProgram.openPinned(`${dir}/progs/${n}`);
    try {
      return p.id;
    } finally {
      p.close();
    }
  });
}

test.before(async () => {
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

test('load pins programs, maps, link and manifest; status reads them back', async () => {
  const r = await cli('load', POLICY, '--json', '--quiet');
  assert.is(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.is(res.policy, 'hello-chain');
  assert.is(res.replaced, false);
  for (const p of ['manifest', 'progs/chain_msg', 'progs/chain_sockops', 'maps/socks', 'maps/routes', 'links/sockops']) {
    assert.ok(existsSync(`${ROOT}/hello-chain/${p}`), `${p} pinned`);
  }
  assert.ok(existsSync(`${CG}/hello-chain/cgroup.procs`), 'policy cgroup created');

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

test('route set changes the routes map live and refuses unknown functions', async () => {
  const r = await cli('route', 'set', 'hello-chain', '/shout', 'stamp', 'upper');
  assert.is(r.code, 0, r.stderr);
  const cm = openChainMaps('hello-chain', ROOT);
  try {
    const v = cm.routes.get(1)!;
    assert.is(v.len, 2);
    assert.equal(v.fn.slice(0, 2), [3, 1]);
  } finally {
    cm.close();
  }
  const bad = await cli('route', 'set', 'hello-chain', '/shout', 'upper', 'nosuch');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /routes\['\/shout'\]\[1\]/);
  assert.match(bad.stderr, /nosuch/);
  const added = await cli('route', 'set', 'hello-chain', '/rev', 'reverse', '--json');
  assert.is(added.code, 0, added.stderr);
  assert.is(JSON.parse(added.stdout).route.id, 2);
  const ls = await cli('route', 'ls', 'hello-chain', '--json');
  assert.equal(JSON.parse(ls.stdout).map((x: { name: string }) => x.name), ['/hello', '/shout', '/rev']);
  const del = await cli('route', 'del', 'hello-chain', '/rev');
  assert.is(del.code, 0, del.stderr);
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

test('nothing is left behind', () => {
  assert.equal(leaksSince(before, { pinDirs: [ROOT] }), []);
  assert.not.ok(existsSync(CG), 'the cgroup parent goes with its last policy');
  if (existsSync(ROOT)) rmdirSync(ROOT);
});

test.run();
