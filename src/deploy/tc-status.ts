/**
 * What `bpfctl xdp status` shows of a policy's tc sections: for each interface and direction, the
 * tcx attachment (program, link), every rule with its live counters, the parser's counters and
 * the sets' sizes, read from the section's directory as for XDP (src/deploy/xdp-status.ts).
 */
import type { TcDirection } from '../dsl/tc.ts';
import type { TcSectionIR } from '../ir/xdp.ts';
import { ifaceSlug } from '../codegen/xdp/index.ts';
import { listTcDeployments } from './tc.ts';
import { sectionDirStatus, type XdpSectionStatus } from './xdp-status.ts';

export interface TcSectionStatus extends Omit<XdpSectionStatus, 'mode'> {
  direction: TcDirection;
}

/**
 * Status of every tc section deployed under a policy directory; `sections` (the IR, e.g. from the
 * manifest) names the rules.
 * @throws LoaderError when a pin is unreadable
 */
export function tcStatus(pinDir: string, sections: readonly TcSectionIR[] = []): TcSectionStatus[] {
  return listTcDeployments(pinDir).map((d) => {
    const ir = sections.find((s) => ifaceSlug(s.interface) === d.slug && s.direction === d.direction);
    const { target: _target, dir, ...st } = sectionDirStatus(d.dir, ir);
    return { interface: ir?.interface ?? d.slug, direction: d.direction, dir, ...st };
  });
}
