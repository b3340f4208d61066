/**
 * tc programs (sched_cls / sched_act) on a device's ingress or egress through tcx (kernel 6.6+):
 * a bpf_link like XDP's, so it can be pinned, several programs coexist in order, and closing the
 * last reference detaches exactly this one (no qdisc to create or clean up).
 */
import { check, EINVAL, ENOENT, LoaderError, loaderError } from './errors.ts';
import { BpfLink } from './link.ts';
import { lib } from './libbpf.ts';
import { ifIndex, withNetns } from './netns.ts';
import { typeValue } from './types.ts';

export type TcDirection = 'ingress' | 'egress';

/**
 * Attach a tc program with tcx. LoaderError E_NOENT for an unknown interface, E_INVAL for a
 * program that is not sched_cls/sched_act.
 */
export function attachTc(prog: { fd: number; name: string; type: string }, iface: string | number, direction: TcDirection = 'ingress', opts: { netns?: string } = {}): BpfLink {
  if (prog.type !== 'sched_cls' && prog.type !== 'sched_act')
    throw new LoaderError('E_INVAL', EINVAL, `cannot attach '${prog.name}' to tc ${direction}: it is a ${prog.type} program, tc takes sched_cls (SEC("tc"))`);
  const attachType = typeValue('attach', direction === 'ingress' ? 'tcx_ingress' : 'tcx_egress')!;
  const run = () => {
    const ifindex = typeof iface === 'number' ? iface : ifIndex(iface);
    const where = `${iface}${opts.netns ? ` in netns ${opts.netns}` : ''}`;
    if (!ifindex) throw loaderError(`attach tc '${prog.name}' to ${where}`, ENOENT, { hint: 'no such network interface' });
    return new BpfLink(check(lib().bpf_link_create(prog.fd, ifindex, attachType, null), `attach tc '${prog.name}' to ${where} ${direction} (tcx)`));
  };
  return opts.netns ? withNetns(opts.netns, run) : run();
}
