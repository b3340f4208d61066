/** `bpfctl pool create|stat|reclaim|rm|ls`, run in-process through main() with captured output. */
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pool } from '../../src/runtime/pool/index.ts';
import { snapshot } from '../helpers/leaks.ts';
import { buildPoolTest, killAndWait, poolLeaks, startReady, uniqueName } from './pool-helpers.ts';
import { runCli as cli } from '../helpers/cli.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const built = buildPoolTest();

test('create, stat with live and dead owners, reclaim, rm', async () => {
  const name = uniqueName('cli');
  let r = await cli('pool', 'create', name, '--buffer-size', '1000', '--buffers', '32', '--backing', 'shm', '--json');
  assert.is(r.code, 0, r.stderr);
  const created = JSON.parse(r.stdout) as { path: string; bufferSize: number; backing: string };
  assert.is(created.backing, 'shm');
  assert.is(created.bufferSize, 1024);
  try {
    const holder = await startReady(built.bin, ['hold', created.path, '3']);
    const pool = Pool.open(name);
    const mine = pool.alloc()!;
    r = await cli('pool', 'stat', name);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /inUse\s+4/);
    assert.match(r.stdout, new RegExp(`${holder.pid}.*pool_test.*live.*3`));
    await killAndWait(holder);
    r = await cli('pool', 'stat', created.path, '--json');
    const s = JSON.parse(r.stdout) as { inUse: number; liveOwners: number; deadOwners: number; owners: { pid: number; state: string; buffers: number }[] };
    assert.is(s.inUse, 4);
    assert.is(s.liveOwners, 1);
    assert.is(s.deadOwners, 1);
    assert.equal(
      s.owners.find((o) => o.pid === holder.pid),
      { pid: holder.pid!, buffers: 3, state: 'dead' },
    );
    r = await cli('pool', 'reclaim', name, '--json');
    assert.equal(JSON.parse(r.stdout), { pool: name, reclaimed: 3 });
    pool.free(mine);
    assert.is(pool.stats().inUse, 0);
    pool.close();
    r = await cli('pool', 'ls', '--json');
    assert.ok((JSON.parse(r.stdout) as { name: string }[]).some((p) => p.name === name));
  } finally {
    r = await cli('pool', 'rm', name);
    assert.is(r.code, 0, r.stderr);
  }
  assert.not.ok(existsSync(created.path));
  r = await cli('pool', 'stat', name, '--json');
  assert.is(r.code, 1);
  assert.is((JSON.parse(r.stderr) as { code: string }).code, 'E_POOL_NOENT');
});

test('create refuses a name that exists and a bad name', async () => {
  const name = uniqueName('dup');
  assert.is((await cli('pool', 'create', name, '--buffer-size', '64', '--buffers', '1', '--backing', 'shm')).code, 0);
  try {
    const r = await cli('pool', 'create', name, '--buffer-size', '64', '--buffers', '1', '--backing', 'shm');
    assert.is(r.code, 1);
    assert.match(r.stderr, /exists/);
    assert.match((await cli('pool', 'create', 'a/b', '--buffer-size', '64', '--buffers', '1')).stderr, /bad pool name/);
  } finally {
    await cli('pool', 'rm', name);
  }
});

// A failing after-hook would abort the whole uvu run: the leak check is the last test, and the
// hook only cleans up after a failed run.
test('nothing leaks', async () => {
  built.cleanup();
  const leaks = await poolLeaks(before);
  assert.equal(leaks, [], leaks.join('; '));
});

test.after(() => {
  built.cleanup();
});

test.run();
