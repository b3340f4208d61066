/**
 * Run code inside a named network namespace (`ip netns add <name>` -> /run/netns/<name>) by
 * switching the calling thread with setns(2), then switching back whatever happens. Ifindexes,
 * netlink queries (bpf_xdp_query) and new sockets follow the thread's namespace; a bpf_link
 * made there stays bound to its device after we switch back.
 *
 * `fn` must be synchronous: an await would let unrelated callbacks run inside the namespace.
 */
import { closeSync, openSync } from 'node:fs';
import { loaderError } from './errors.ts';
import { c, lastErrno } from './libbpf.ts';

const CLONE_NEWNET = 0x40000000;

export function netnsPath(name: string): string {
  return name.startsWith('/') ? name : `/run/netns/${name}`;
}

/** LoaderError E_NOENT when the namespace does not exist, E_PERM without CAP_SYS_ADMIN. */
export function withNetns<T>(name: string, fn: () => T): T {
  let target: number;
  try {
    target = openSync(netnsPath(name), 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw loaderError(`open network namespace ${name}`, code === 'ENOENT' ? 2 : 13, {
      hint: code === 'ENOENT' ? `no namespace ${netnsPath(name)} (ip netns add ${name})` : undefined,
    });
  }
  const home = openSync('/proc/thread-self/ns/net', 'r');
  try {
    if (c().setns(target, CLONE_NEWNET) !== 0) throw loaderError(`setns(${name})`, lastErrno());
    try {
      const out = fn();
      if (out instanceof Promise) throw new TypeError('withNetns: fn must be synchronous');
      return out;
    } finally {
      // Failing to return would leave the whole event loop thread in the wrong namespace.
      if (c().setns(home, CLONE_NEWNET) !== 0) {
        process.stderr.write(`bpfctl: FATAL: cannot return from network namespace ${name}\n`);
        process.abort();
      }
    }
  } finally {
    closeSync(home);
    closeSync(target);
  }
}

/** The ifindex of an interface in the current (thread's) namespace; 0 if none. */
export function ifIndex(name: string): number {
  return c().if_nametoindex(name) as number;
}
