/**
 * Refusals (double free, stale generation, bad offset, wrong owner) from TS and C, a pool file that
 * is not a pool, and the buffers of killed processes (TS and C) coming back through reclaimDead().
 */
import { existsSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pool, PoolError } from '../../src/runtime/pool/index.ts';
import { snapshot } from '../helpers/leaks.ts';
import { buildPoolTest, killAndWait, poolLeaks, run, startReady, tsChild, uniqueName } from './pool-helpers.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const built = buildPoolTest();

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.instance(err, PoolError);
    return (err as PoolError).code;
  }
  throw new Error('expected a PoolError');
}

test('double free, stale generation, bad offset and wrong owner are refused', () => {
  const pool = Pool.create({ name: uniqueName('err'), bufferSize: 100, bufferCount: 4, backing: 'shm' });
  try {
    assert.is(pool.bufferSize, 128); // rounded to a cache line
    const a = pool.alloc()!;
    assert.ok(pool.validate(a.offset, a.gen));
    assert.is(code(() => pool.free(a, process.pid + 1)), 'E_POOL_NOT_OWNER');
    assert.is(code(() => pool.free({ offset: a.offset + 8, gen: a.gen })), 'E_POOL_BAD_OFFSET');
    assert.is(code(() => pool.free({ offset: pool.size, gen: a.gen })), 'E_POOL_BAD_OFFSET');
    pool.free(a, process.pid);
    assert.not.ok(pool.validate(a.offset, a.gen));
    assert.is(code(() => pool.free(a)), 'E_POOL_DOUBLE_FREE');
    const b = pool.alloc()!;
    assert.is(b.offset, a.offset); // LIFO: the same buffer, next generation
    assert.is(b.gen, a.gen + 1);
    assert.is(code(() => pool.free(a)), 'E_POOL_STALE');
    assert.is(code(() => pool.transfer(a, 1)), 'E_POOL_STALE');
    assert.is(code(() => pool.bytes(b.offset, pool.bufferSize + 1)), 'E_POOL_RANGE');
    assert.is(code(() => pool.bytes(0)), 'E_POOL_RANGE');
    pool.free(b);
    const all = [pool.alloc(), pool.alloc(), pool.alloc(), pool.alloc()];
    assert.ok(all.every(Boolean));
    assert.is(pool.alloc(), null);
    for (const r of all) pool.free(r!);
    const s = pool.stats();
    assert.is(s.counters.refused, 5n);
    assert.is(s.counters.allocFails, 1n);
    assert.is(s.inUse, 0);
    const c = Pool.open(pool.path);
    c.close();
    assert.is(code(() => c.alloc()), 'E_POOL_CLOSED');
    c.close(); // idempotent
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
});

test('the C side refuses the same things', async () => {
  const pool = Pool.create({ name: uniqueName('cerr'), bufferSize: 64, bufferCount: 8, backing: 'shm' });
  try {
    const r = await run(built.bin, ['errors', pool.path]);
    assert.is(r.code, 0, r.stderr);
    assert.is(pool.stats().inUse, 0);
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
});

test('open refuses files that are not pools', () => {
  const path = `/dev/shm/bpfctl-pool-${uniqueName('bad')}`;
  writeFileSync(path, Buffer.alloc(8192));
  try {
    assert.is(code(() => Pool.open(path)), 'E_POOL_BAD_FILE');
    assert.is(code(() => Pool.open('/dev/shm/bpfctl-pool-does-not-exist')), 'E_POOL_NOENT');
    assert.is(code(() => Pool.create({ name: 'a/b', bufferSize: 64, bufferCount: 1 })), 'E_POOL_ARG');
  } finally {
    Pool.remove(path);
  }
  const pool = Pool.create({ name: uniqueName('dup'), bufferSize: 64, bufferCount: 1, backing: 'shm' });
  try {
    assert.is(code(() => Pool.create({ name: pool.path.split('bpfctl-pool-')[1]!, bufferSize: 64, bufferCount: 1, backing: 'shm' })), 'E_POOL_EXISTS');
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
});

test('buffers of killed processes are reclaimed', async () => {
  const pool = Pool.create({ name: uniqueName('kill'), bufferSize: 256, bufferCount: 64, backing: 'shm' });
  try {
    const ts = await startReady(...tsChild(['hold', pool.path, '7']));
    const c = await startReady(built.bin, ['hold', pool.path, '5']);
    const mine = pool.alloc()!;
    let s = pool.stats();
    assert.is(s.inUse, 13);
    assert.equal(s.byOwner, { [ts.pid!]: 7, [c.pid!]: 5, [process.pid]: 1 });
    assert.is(pool.reclaimDead(), 0, 'nobody is dead yet');
    await killAndWait(ts);
    await killAndWait(c);
    assert.is(pool.reclaimDead(), 12);
    s = pool.stats();
    assert.is(s.inUse, 1);
    assert.is(s.counters.reclaimed, 12n);
    assert.ok(pool.validate(mine.offset, mine.gen), 'a live owner keeps its buffer');
    pool.free(mine);
    const walk = await run(built.bin, ['walk', pool.path]);
    assert.equal(JSON.parse(walk.stdout), { freeList: 64, inUse: 0, count: 64 });
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
  assert.not.ok(existsSync(pool.path));
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
