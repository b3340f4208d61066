/**
 * `bpfctl unload DIR --object NAME`: two objects loaded into one pin directory, one removed by
 * name; the other keeps every pin and stays loaded, and the last unload leaves nothing.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { listPrograms } from '../../loader/index.ts';
import { leaksSince, type Snapshot, snapshot } from '../helpers/leaks.ts';
import { objectFile, objectsDir } from '../objects/build.ts';
import { runCli as run } from '../helpers/cli.ts';

const dir = `/sys/fs/bpf/bpfctl-test-${process.pid}-unload`;

let before: Snapshot;

test.before(async () => {
  // tsx finishes writing its transform cache a moment after the imports: let it settle first.
  await new Promise((r) => setTimeout(r, 500));
  before = snapshot();
});

const progIds = (names: string[]) => listPrograms().filter((p) => names.includes(p.name)).map((p) => p.id);

test('unload --object removes one load of a shared directory and nothing of the other', async () => {
  for (const o of ['xdp_stats_array', 'xdp_icmp_tx']) {
    const r = await run('load', objectFile(o), '--pin', dir, '--json');
    assert.is(r.code, 0, r.stderr);
  }
  const a = JSON.parse((await run('prog', 'ls', '--json')).stdout) as { id: number; pins?: string[] }[];
  const pinnedHere = a.filter((p) => p.pins?.some((x) => x.startsWith(dir))).map((p) => p.id);
  assert.is(pinnedHere.length, 2, 'two programs pinned');
  const r = await run('unload', dir, '--object', 'xdp_stats_array');
  assert.is(r.code, 0, r.stderr);
  assert.equal(readdirSync(join(dir, 'bpfctl_loads')), ['xdp_icmp_tx']);
  assert.ok(existsSync(join(dir, 'progs/xdp_icmp_echo')), 'the other load keeps its program pin');
  assert.not.ok(existsSync(join(dir, 'progs/xdp_stats1_func')), 'the removed load left no pin');
  const bad = await run('unload', dir, '--object', 'nope');
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /no load of 'nope' \(loads: xdp_icmp_tx\)/);
  assert.is((await run('unload', dir)).code, 0);
  assert.not.ok(existsSync(dir), 'the directory it made is gone');
  // the kernel let go of both programs (nothing else held them)
  for (let i = 0; i < 20 && progIds(['xdp_stats1_func', 'xdp_icmp_echo']).some((id) => pinnedHere.includes(id)); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(progIds(['xdp_stats1_func', 'xdp_icmp_echo']).filter((id) => pinnedHere.includes(id)), []);
});

test('unload --object with a policy name is a usage error', async () => {
  const r = await run('unload', 'some-policy', '--object', 'x');
  assert.is(r.code, 2);
  assert.match(r.stderr, /--object goes with a pin directory/);
});

test('nothing leaks', async () => {
  // The compiled objects are this file's fixtures (shared with the other objects-* files).
  rmSync(objectsDir, { recursive: true, force: true });
  assert.equal(await leaksSince(before, { ownDirs: [dir] }), []);
});

test.run();
