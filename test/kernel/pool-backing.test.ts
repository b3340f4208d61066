/**
 * Backings: hugetlbfs when huge pages are configured (the test configures them, then puts
 * nr_hugepages and the mount back as they were), /dev/shm otherwise, memfd shared through
 * /proc/<pid>/fd/<n>. A C process works on each through pool.h.
 */
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hugetlbfsMounts, Pool } from '../../src/runtime/pool/index.ts';
import { createPool } from '../../src/runtime/supervisor/setup.ts';
import { snapshot } from '../helpers/leaks.ts';
import { buildPoolTest, hugeFree, poolLeaks, run, skipped, tsChild, uniqueName, withHugepages, withoutFreeHugepages } from './pool-helpers.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const built = buildPoolTest();
const HUGE = 2 * 1024 * 1024;

async function shareWithC(pool: Pool): Promise<void> {
  const [ts, c] = await Promise.all([run(...tsChild(['stress', pool.path, '800', '16'])), run(built.bin, ['stress', pool.path, '1000', '16'])]);
  assert.is(ts.code, 0, ts.stderr);
  assert.is(c.code, 0, c.stderr);
  const walk = await run(built.bin, ['walk', pool.path]);
  assert.is(walk.code, 0, walk.stderr);
  assert.equal(JSON.parse(walk.stdout), { freeList: pool.bufferCount, inUse: 0, count: pool.bufferCount });
  assert.is(pool.stats().inUse, 0);
}

test('hugetlbfs backing when huge pages are configured', async () => {
  const saved = readFileSync('/proc/sys/vm/nr_hugepages', 'utf8');
  const ran = await withHugepages(4, async () => {
    const freeBefore = hugeFree();
    const pool = Pool.create({ name: uniqueName('huge'), bufferSize: 2048, bufferCount: 1024 });
    try {
      assert.is(pool.backing, 'hugetlbfs');
      assert.ok(pool.path.startsWith(hugetlbfsMounts()[0]!.mount), pool.path);
      assert.is(pool.size, 2 * HUGE); // 16 KiB of metadata + 2 MiB of buffers, in whole huge pages
      assert.is(hugeFree(), freeBefore - 2, 'the pool holds two huge pages');
      const other = Pool.open(pool.path.split('/').pop()!.replace('bpfctl-pool-', ''));
      assert.is(other.backing, 'hugetlbfs');
      other.close();
      await shareWithC(pool);
    } finally {
      pool.close();
      Pool.remove(pool.path);
    }
    assert.is(hugeFree(), freeBefore, 'huge pages are given back');
  });
  if (!ran) skipped('no hugetlb support (/proc/sys/vm/nr_hugepages missing): hugetlbfs backing not tested');
  assert.is(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'), saved, 'nr_hugepages restored');
});

test('a name on one backing blocks the same name on another, and a dead supervisor\'s pool is replaced on every backing', async () => {
  const ran = await withHugepages(4, async () => {
    const name = uniqueName('twice');
    const dead = Pool.create({ name, bufferSize: 2048, bufferCount: 1024 });
    try {
      assert.is(dead.backing, 'hugetlbfs');
      // Its file keeps its huge pages: a new pool of that name would land on /dev/shm, where every
      // process opening it by name would still find the old one first.
      const err = (() => {
        try {
          Pool.create({ name, bufferSize: 2048, bufferCount: 1024, backing: 'shm' }).close();
        } catch (e) {
          return e as { code?: string; message: string };
        }
        return null;
      })();
      assert.is(err?.code, 'E_POOL_EXISTS', String(err?.message));
      assert.match(err!.message, dead.path);
      const ir = { pool: { bufferSize: 2048, bufferCount: 1024 } } as unknown as Parameters<typeof createPool>[1];
      const fresh = createPool(name, ir, true);
      try {
        assert.is(Pool.resolve(name), fresh.path, 'opening by name finds the new pool');
        assert.not.ok(existsSync(dead.path) && dead.path !== fresh.path, 'the dead one is gone');
      } finally {
        fresh.close();
        Pool.remove(fresh.path);
      }
    } finally {
      dead.close();
      if (existsSync(dead.path)) Pool.remove(dead.path);
    }
  });
  if (!ran) skipped('no hugetlb support: two-backing name clash not tested');
});

test('shm backing when no huge pages are free', async () => {
  await withoutFreeHugepages(async () => {
    const pool = Pool.create({ name: uniqueName('shm'), bufferSize: 1000, bufferCount: 256 });
    try {
      assert.is(pool.backing, 'shm');
      assert.ok(pool.path.startsWith('/dev/shm/bpfctl-pool-'), pool.path);
      await shareWithC(pool);
    } finally {
      pool.close();
      Pool.remove(pool.path);
    }
    assert.not.ok(existsSync(pool.path));
  });
});

test('memfd backing is shared through /proc/<pid>/fd', async () => {
  const pool = Pool.create({ name: uniqueName('memfd'), bufferSize: 512, bufferCount: 128, backing: 'memfd' });
  try {
    assert.is(pool.backing, 'memfd');
    assert.match(pool.path, new RegExp(`^/proc/${process.pid}/fd/\\d+$`));
    await shareWithC(pool);
  } finally {
    pool.close();
  }
  assert.not.ok(existsSync(pool.path), 'closing the pool closes the memfd');
});

test('hugetlbfs asked for explicitly without huge pages is refused', async () => {
  await withoutFreeHugepages(() => {
    try {
      Pool.create({ name: uniqueName('nohuge'), bufferSize: 64, bufferCount: 1, backing: 'hugetlbfs' });
      assert.unreachable('created');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'E_POOL_NO_HUGEPAGES');
    }
  });
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
