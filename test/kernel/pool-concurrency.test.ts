/**
 * Several processes (TypeScript and C) allocate and free from one pool at once: no buffer may be
 * handed out twice (each holder stamps its buffers and checks the stamp before freeing) and none
 * may be lost (afterwards the free list holds every buffer exactly once and nothing is in use).
 * Small pool, many holders: the pool runs empty often, which is where a broken stack shows.
 */
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pool } from '../../src/runtime/pool/index.ts';
import { snapshot } from '../helpers/leaks.ts';
import { buildPoolTest, poolLeaks, run, tsChild, uniqueName } from './pool-helpers.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const built = buildPoolTest();

test('TS and C processes share one pool without losing or duplicating a buffer', async () => {
  const pool = Pool.create({ name: uniqueName('conc'), bufferSize: 128, bufferCount: 48, backing: 'shm' });
  try {
    const jobs = [
      // By time, not count: tsx takes ~0.4 s to start, and the C processes must still be running.
      run(...tsChild(['stress', pool.path, '1500', '12'])),
      run(...tsChild(['stress', pool.path, '1500', '12'])),
      run(...tsChild(['stress', pool.path, '1500', '12'])),
      run(built.bin, ['stress', pool.path, '2000', '12']),
      run(built.bin, ['stress', pool.path, '2000', '12']),
    ];
    // This process takes part too, through the same API.
    const mine: { offset: number; gen: number }[] = [];
    const end = Date.now() + 1500;
    for (let i = 0; Date.now() < end; i++) {
      const r = pool.alloc();
      if (r) mine.push(r);
      if (mine.length > 6 || (!r && mine.length)) pool.free(mine.shift()!);
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    for (const r of mine) pool.free(r);
    const results = await Promise.all(jobs);
    for (const r of results) assert.is(r.code, 0, `child failed: ${r.stderr}`);
    const lines = results.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!) as { ops: number; nsPerOp: number });
    console.log(`  contended ns/op: TS ${lines.slice(0, 3).map((l) => l.nsPerOp.toFixed(0)).join(', ')}; C ${lines.slice(3).map((l) => l.nsPerOp.toFixed(0)).join(', ')}`);

    const walk = await run(built.bin, ['walk', pool.path]);
    assert.is(walk.code, 0, walk.stderr);
    assert.equal(JSON.parse(walk.stdout), { freeList: 48, inUse: 0, count: 48 });
    const s = pool.stats();
    assert.is(s.inUse, 0);
    assert.equal(s.byOwner, {});
    assert.is(s.counters.allocs, s.counters.frees);
    assert.is(s.counters.refused, 0n);
    assert.ok(s.counters.allocs > 100000n, `only ${s.counters.allocs} allocations`);
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
  assert.not.ok(existsSync(pool.path));
});

test('uncontended cost per operation (TS and C)', async () => {
  const pool = Pool.create({ name: uniqueName('cost'), bufferSize: 2048, bufferCount: 1024, backing: 'shm' });
  try {
    const N = 200_000;
    const refs: ({ offset: number; gen: number } | null)[] = new Array(64);
    let t = process.hrtime.bigint();
    for (let i = 0; i < N / 64; i++) {
      for (let j = 0; j < 64; j++) refs[j] = pool.alloc();
      for (let j = 0; j < 64; j++) pool.free(refs[j]!);
    }
    const tsNs = Number(process.hrtime.bigint() - t) / (2 * Math.floor(N / 64) * 64);
    t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) pool.validate(pool.dataOffset, 0);
    const valNs = Number(process.hrtime.bigint() - t) / N;
    const c = await run(built.bin, ['stress', pool.path, '300', '64']);
    assert.is(c.code, 0, c.stderr);
    const cNs = (JSON.parse(c.stdout) as { nsPerOp: number }).nsPerOp;
    console.log(`  uncontended ns/op: TS alloc/free ${tsNs.toFixed(0)}, TS validate ${valNs.toFixed(0)}, C alloc/free ${cNs.toFixed(1)}`);
    assert.is(pool.stats().inUse, 0);
  } finally {
    pool.close();
    Pool.remove(pool.path);
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
