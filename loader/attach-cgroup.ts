/**
 * Programs on a cgroup v2 directory (sockops, cgroup_skb, cgroup_sock, ...), through a bpf_link:
 * it detaches when the last fd closes, and several links coexist (BPF_F_ALLOW_MULTI semantics).
 */
import { closeSync, openSync } from 'node:fs';
import { check, EINVAL, LoaderError, loaderError } from './errors.ts';
import { BpfLink } from './link.ts';
import { lib } from './libbpf.ts';
import { typeValue } from './types.ts';

/** The attach type a cgroup program gets when the caller names none. */
const DEFAULT_ATTACH: Record<string, string> = {
  sock_ops: 'cgroup_sock_ops',
  cgroup_skb: 'cgroup_inet_ingress',
  cgroup_sock: 'cgroup_inet_sock_create',
  cgroup_device: 'cgroup_device',
  cgroup_sysctl: 'cgroup_sysctl',
};

/**
 * LoaderError E_NOENT when the cgroup directory does not exist, E_INVAL for an attach type that
 * does not fit the program.
 */
export function attachCgroup(
  prog: { fd: number; name: string; type: string; expectedAttachType?: string },
  cgroupPath: string,
  attachType?: string,
): BpfLink {
  const typeName = attachType ?? (prog.expectedAttachType?.startsWith('cgroup_') ? prog.expectedAttachType : DEFAULT_ATTACH[prog.type]);
  if (!typeName) throw new LoaderError('E_INVAL', EINVAL, `program '${prog.name}' (${prog.type}) needs an explicit cgroup attach type`);
  const type = typeValue('attach', typeName);
  if (type === undefined) throw new LoaderError('E_INVAL', EINVAL, `unknown attach type '${typeName}'`);
  let cgFd: number;
  try {
    cgFd = openSync(cgroupPath, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw loaderError(`open cgroup ${cgroupPath}`, code === 'ENOENT' ? 2 : code === 'EACCES' ? 13 : EINVAL, {
      hint: code === 'ENOENT' ? 'no such cgroup directory (cgroup v2 is at /sys/fs/cgroup or /sys/fs/cgroup/unified)' : undefined,
    });
  }
  try {
    const fd = check(lib().bpf_link_create(prog.fd, cgFd, type, null), `attach '${prog.name}' to cgroup ${cgroupPath} as ${typeName}`);
    return new BpfLink(fd);
  } finally {
    closeSync(cgFd);
  }
}
