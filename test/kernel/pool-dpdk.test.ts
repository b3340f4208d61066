/**
 * The DPDK example (examples/dpdk-pool) against a pool TypeScript created: TS writes a request
 * into a buffer, the DPDK process (rte_eal_init, pool registered as external memory, buffer
 * attached to an mbuf) uppercases it in place, TS reads the answer from the same buffer. Once
 * without huge pages (--no-huge, pool on /dev/shm), once with them (pool on hugetlbfs, EAL
 * --in-memory on huge pages) when the kernel can allocate them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pool } from '../../src/runtime/pool/index.ts';
import { snapshot } from '../helpers/leaks.ts';
import { poolLeaks, ROOT, run, skipped, uniqueName, withHugepages } from './pool-helpers.ts';

// Taken when this file's tests start, not at import: uvu imports every file before running any.
let before = snapshot();
test.before(() => {
  before = snapshot();
});
const out = mkdtempSync(join(tmpdir(), `bpfctl-test-${process.pid}-dpdk-`));
execFileSync('make', ['-s', '-C', join(ROOT, 'examples/dpdk-pool'), `OUT=${out}`], { stdio: ['ignore', 'pipe', 'pipe'] });
const NF = join(out, 'dpdk-pool-nf');
const prefix = `bpfctl-pool-test-${process.pid}`;

interface Answer {
  ok: boolean;
  len: number;
  extmem: boolean;
  zeroCopy: boolean;
  answer: string;
}

async function roundTrip(pool: Pool, eal: string[]): Promise<void> {
  const req = Buffer.from('hello from typescript, via a pool buffer');
  const ref = pool.alloc()!;
  try {
    pool.bytes(ref.offset).set(req);
    const args = [...eal, '--no-pci', '-l', '0', `--file-prefix=${prefix}`, '--log-level=error', '--', '--pool', pool.path];
    const desc = ['--offset', String(ref.offset), '--gen', String(ref.gen), '--len', String(req.length)];
    const r = await run(NF, [...args, ...desc]);
    assert.is(r.code, 0, r.stderr);
    const a = JSON.parse(r.stdout.trim().split('\n').pop()!) as Answer;
    assert.equal(a, { ok: true, len: req.length, extmem: true, zeroCopy: true, answer: req.toString().toUpperCase() });
    // The answer is in the pool buffer itself, not only in the DPDK process's output.
    assert.is(Buffer.from(pool.bytes(ref.offset, req.length)).toString(), req.toString().toUpperCase());

    // A descriptor whose buffer was freed (and reused) since is refused, and the buffer untouched.
    pool.free(ref);
    const again = pool.alloc()!;
    assert.is(again.offset, ref.offset);
    pool.bytes(again.offset).set(Buffer.from('lowercase'));
    const stale = await run(NF, [...args, ...desc]);
    assert.is(stale.code, 3, `stale descriptor accepted: ${stale.stdout}${stale.stderr}`);
    assert.is(Buffer.from(pool.bytes(again.offset, 9)).toString(), 'lowercase');
    pool.free(again);
  } catch (err) {
    if (pool.validate(ref.offset, ref.gen)) pool.free(ref);
    throw err;
  } finally {
    // EAL leaves its runtime directory behind even with --no-shconf / --in-memory.
    rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
  }
  assert.is(pool.stats().inUse, 0);
}

test('DPDK (no huge pages) reads what TypeScript wrote and answers in place', async () => {
  const pool = Pool.create({ name: uniqueName('dpdk'), bufferSize: 2048, bufferCount: 64, backing: 'shm' });
  try {
    // --no-huge implies legacy memory, which --in-memory refuses; --no-shconf keeps it file-free.
    await roundTrip(pool, ['--no-huge', '--no-shconf', '-m', '64']);
  } finally {
    pool.close();
    Pool.remove(pool.path);
  }
});

test('DPDK on huge pages with the pool on hugetlbfs', async () => {
  // 2 pages for the pool, the rest for EAL's own heap (-m 32).
  const ran = await withHugepages(24, async () => {
    const pool = Pool.create({ name: uniqueName('dpdkhuge'), bufferSize: 2048, bufferCount: 512 });
    try {
      assert.is(pool.backing, 'hugetlbfs');
      await roundTrip(pool, ['--in-memory', '-m', '32']);
    } finally {
      pool.close();
      Pool.remove(pool.path);
    }
  });
  if (!ran) skipped('no hugetlb support (/proc/sys/vm/nr_hugepages missing): DPDK on huge pages not tested');
});

// A failing after-hook would abort the whole uvu run: the leak check is the last test, and the
// hook only cleans up after a failed run.
test('nothing leaks', async () => {
  rmSync(out, { recursive: true, force: true });
  const leaks = await poolLeaks(before);
  assert.equal(leaks, [], leaks.join('; '));
});

test.after(() => {
  rmSync(out, { recursive: true, force: true });
});

test.run();
