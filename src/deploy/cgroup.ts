/**
 * The cgroup a policy owns: it holds a chain's processes (status, cleanup), not its trust (only the
 * supervisor registers sockets). Processes join it from src/runtime/supervisor/launch.ts, which
 * writes `cgroup.procs` itself before the process runs a single instruction of its own.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BpfctlError } from '../errors.ts';

export class CgroupError extends BpfctlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_CGROUP', message, options);
  }
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * Creates the cgroup `path` (and its parents) on the cgroup v2 hierarchy. The nearest existing
 * ancestor must be cgroup2: `ip netns exec` remounts /sys without the cgroup mounts, and a
 * recursive mkdir on plain sysfs never returns (Node keeps retrying the parent).
 */
export function ensureCgroup(path: string): void {
  let dir = path;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (statfsSync(dir).type !== CGROUP2_SUPER_MAGIC) {
    throw new CgroupError(
      `cannot create cgroup ${path}: ${dir} is not on a cgroup v2 hierarchy (inside \`ip netns exec\` /sys is remounted without it: use \`nsenter --net=/run/netns/NAME\`, or bpfctl's --netns)`,
    );
  }
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    throw new CgroupError(`cannot create cgroup ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export function cgroupPids(path: string): number[] {
  if (!existsSync(`${path}/cgroup.procs`)) return [];
  return readFileSync(`${path}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
}

/**
 * Removes the cgroup. A cgroup with live processes cannot be removed: they are moved to the parent
 * first (the supervisor kills its own processes before this; strays are not ours to kill).
 */
export function removeCgroup(path: string): void {
  if (!existsSync(path)) return;
  const parent = dirname(path);
  for (const pid of cgroupPids(path)) {
    try {
      writeFileSync(`${parent}/cgroup.procs`, `${pid}\n`);
    } catch {
      // the process exited meanwhile
    }
  }
  try {
    rmdirSync(path);
  } catch (err) {
    throw new CgroupError(`cannot remove cgroup ${path}: ${(err as Error).message}`, { cause: err });
  }
  // The shared parent goes too once the last policy is gone, so nothing of bpfctl stays behind.
  try {
    rmdirSync(parent);
  } catch {
    // other policies still live there, or it is the hierarchy root
  }
}
