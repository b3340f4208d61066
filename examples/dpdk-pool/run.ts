/**
 * The TypeScript half of the example: create a pool, write a request into a buffer, let the DPDK
 * program answer in place, read the answer from the same buffer.
 *
 *   make && node --import tsx run.ts ["some text"]      (root; hugetlbfs is used when configured)
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'bpfctl/pool';

const here = dirname(fileURLToPath(import.meta.url));
const text = process.argv[2] ?? 'hello from typescript';
const pool = Pool.create({ name: `dpdk-example-${process.pid}`, bufferSize: 2048, bufferCount: 512 });
try {
  const ref = pool.alloc();
  if (!ref) throw new Error('pool exhausted');
  const req = Buffer.from(text);
  pool.bytes(ref.offset).set(req);
  // Without huge pages EAL runs on malloc'd memory (--no-huge); with them, fully in memory.
  const eal = pool.backing === 'hugetlbfs' ? ['--in-memory', '-m', '32'] : ['--no-huge', '--no-shconf', '-m', '64'];
  const prefix = `bpfctl-example-${process.pid}`;
  const out = execFileSync(
    join(here, 'build/dpdk-pool-nf'),
    [...eal, '--no-pci', '-l', '0', `--file-prefix=${prefix}`, '--log-level=error', '--', '--pool', pool.path, '--offset', String(ref.offset), '--gen', String(ref.gen), '--len', String(req.length)],
    { encoding: 'utf8' },
  );
  process.stdout.write(`pool ${pool.path} (${pool.backing}), buffer at offset ${ref.offset} gen ${ref.gen}\n`);
  process.stdout.write(`dpdk-pool-nf: ${out}`);
  process.stdout.write(`read back by TypeScript: ${Buffer.from(pool.bytes(ref.offset, req.length)).toString()}\n`);
  pool.free(ref);
  execFileSync('rm', ['-rf', `/var/run/dpdk/${prefix}`]);
} finally {
  pool.close();
  Pool.remove(pool.path);
}
