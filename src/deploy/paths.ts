/**
 * Where a loaded policy lives on the machine. Everything a policy owns is pinned under one bpffs
 * directory (so `bpfctl` can list, inspect, replace and remove it) and its processes run in one
 * cgroup v2 directory (the sockops registration trusts exactly that cgroup).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Root of all bpfctl pins; tests point it elsewhere with BPFCTL_BPFFS. */
export function pinRoot(): string {
  return process.env.BPFCTL_BPFFS ?? '/sys/fs/bpf/bpfctl';
}

export function policyDir(policy: string, root = pinRoot()): string {
  return join(root, policy);
}

/** The cgroup v2 hierarchy: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones. */
export function cgroup2Mount(): string {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n');
  for (const line of mounts) {
    const [, mnt, fstype] = line.split(' ');
    if (fstype === 'cgroup2' && mnt) return mnt;
  }
  for (const candidate of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (existsSync(join(candidate, 'cgroup.procs')) && existsSync(join(candidate, 'cgroup.controllers'))) return candidate;
  }
  throw new Error('no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)');
}

/** Parent cgroup of all policies' cgroups; tests point it elsewhere with BPFCTL_CGROUP_PARENT. */
export function cgroupParent(): string {
  return process.env.BPFCTL_CGROUP_PARENT ?? join(cgroup2Mount(), 'bpfctl');
}

export function policyCgroup(policy: string): string {
  return join(cgroupParent(), policy);
}
