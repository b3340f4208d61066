/**
 * `bpfctl pool create|stat|reclaim|rm|ls`: shared-memory buffer pools outside of `bpfctl run`, for
 * C/DPDK functions that need the pool to exist first, and for looking at who holds buffers.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { BpfctlError } from '../../errors.ts';
import { FILE_PREFIX, hugetlbfsMounts, Pool, pidAlive } from '../../runtime/pool/index.ts';
import type { Args, Command } from './types.ts';
import { usage } from './catalog.ts';

const BACKINGS = ['auto', 'hugetlbfs', 'shm'] as const;

interface CreateArgs {
  name: string;
  bufferSize: number;
  buffers: number;
  backing: (typeof BACKINGS)[number];
}
interface TargetArgs {
  pool: string;
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Open, run, close: the CLI never keeps a pool mapped. */
function withPool<T>(target: string, fn: (p: Pool) => T): T {
  const pool = Pool.open(target);
  try {
    return fn(pool);
  } finally {
    pool.close();
  }
}

function describe(p: Pool) {
  const s = p.stats();
  const owners = Object.entries(s.byOwner).map(([pid, buffers]) => {
    const alive = pidAlive(Number(pid));
    return { pid: Number(pid), buffers, state: alive ? 'live' : 'dead', process: alive ? comm(Number(pid)) : undefined };
  });
  return {
    summary: {
      path: s.path,
      backing: s.backing,
      size: s.size,
      bufferSize: s.bufferSize,
      bufferCount: s.bufferCount,
      dataOffset: p.dataOffset,
      inUse: s.inUse,
      free: s.free,
      liveOwners: owners.filter((o) => o.state === 'live').length,
      deadOwners: owners.filter((o) => o.state === 'dead').length,
      ...s.counters,
    },
    owners,
  };
}

const create: Command = {
  command: 'create <name>',
  describe: 'Create a pool file (hugetlbfs when huge pages are configured, else /dev/shm)',
  builder: (y: Argv) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'Pool name ([A-Za-z0-9_.-], up to 64)' })
      .option('buffer-size', { type: 'number', demandOption: true, describe: 'Bytes per buffer (rounded up to 64)' })
      .option('buffers', { type: 'number', demandOption: true, describe: 'Number of buffers' })
      .option('backing', { choices: BACKINGS, default: 'auto' as const, describe: 'Where the memory comes from' }),
  handler: (raw) => {
    const argv = raw as Args<CreateArgs>;
    const pool = Pool.create({ name: argv.name, bufferSize: argv.bufferSize, bufferCount: argv.buffers, backing: argv.backing });
    try {
      argv.out.record({ name: argv.name, path: pool.path, backing: pool.backing, size: pool.size, bufferSize: pool.bufferSize, bufferCount: pool.bufferCount, dataOffset: pool.dataOffset });
    } finally {
      pool.close();
    }
  },
};

const stat: Command = {
  command: 'stat <pool>',
  describe: 'Size, backing and the buffers each owner holds (live or dead)',
  builder: (y: Argv) => y.positional('pool', { type: 'string', demandOption: true, describe: 'Pool name or file path' }),
  handler: (raw) => {
    const argv = raw as Args<TargetArgs>;
    const d = withPool(argv.pool, describe);
    if (argv.out.json) return argv.out.printJson({ ...d.summary, owners: d.owners });
    argv.out.record(d.summary);
    argv.out.table(d.owners, ['pid', 'process', 'state', 'buffers'], 'owners');
  },
};

const reclaim: Command = {
  command: 'reclaim <pool>',
  describe: 'Free the buffers of owners that no longer exist',
  builder: (y: Argv) => y.positional('pool', { type: 'string', demandOption: true, describe: 'Pool name or file path' }),
  handler: (raw) => {
    const argv = raw as Args<TargetArgs>;
    const reclaimed = withPool(argv.pool, (p) => p.reclaimDead());
    argv.out.record({ pool: argv.pool, reclaimed });
  },
};

const rm: Command = {
  command: 'rm <pool>',
  describe: 'Remove a pool file (processes that map it keep their mapping)',
  builder: (y: Argv) => y.positional('pool', { type: 'string', demandOption: true, describe: 'Pool name or file path' }),
  handler: (raw) => {
    const argv = raw as Args<TargetArgs>;
    const path = Pool.resolve(argv.pool);
    Pool.remove(path);
    argv.out.record({ removed: path });
  },
};

const ls: Command = {
  command: 'ls',
  describe: 'List pool files on hugetlbfs mounts and /dev/shm',
  handler: (raw) => {
    const argv = raw as Args<object>;
    const dirs = [...hugetlbfsMounts().map((m) => m.mount), '/dev/shm'].filter((d) => existsSync(d));
    const rows = dirs.flatMap((dir) =>
      readdirSync(dir)
        .filter((f) => f.startsWith(FILE_PREFIX))
        .map((f) => {
          const path = join(dir, f);
          try {
            const s = withPool(path, describe).summary;
            return { name: f.slice(FILE_PREFIX.length), path, backing: s.backing, size: s.size, buffers: s.bufferCount, inUse: s.inUse };
          } catch (err) {
            return { name: f.slice(FILE_PREFIX.length), path, error: err instanceof BpfctlError ? err.code : String(err) };
          }
        }),
    );
    argv.out.table(rows, ['name', 'backing', 'size', 'buffers', 'inUse', 'path']);
  },
};

export const poolCommand: Command = {
  ...usage('pool'),
  builder: (y: Argv) => y.command(create).command(stat).command(reclaim).command(rm).command(ls).demandCommand(1),
  handler: () => {},
};
