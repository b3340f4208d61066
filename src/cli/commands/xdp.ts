/**
 * `bpfctl xdp status [POLICY]`: the interfaces a policy classifies, in the spirit of
 * `xdp-loader status`: mode, program and link ids, then every rule with its live packet and byte
 * counters (summed over CPUs), the malformed/fragment counters and the sets' sizes. A policy's
 * tc sections (the same rules at tcx ingress/egress) are shown after its XDP sections.
 */
import { join } from 'node:path';
import { pathExists } from '../../deploy/access.ts';
import { listPolicies, loadedManifest } from '../../deploy/loaded.ts';
import { policyDir } from '../../deploy/paths.ts';
import { type TcSectionStatus, tcStatus } from '../../deploy/tc-status.ts';
import { type XdpSectionStatus, xdpStatus } from '../../deploy/xdp-status.ts';
import { loadPolicyFile } from '../../load/index.ts';
import type { Output } from '../output.ts';
import { type Args, defineCommand } from './types.ts';
import { usage } from './catalog.ts';
import { explainCommand } from './xdp-explain.ts';

/** A policy argument is a loaded policy's name or its policy file. */
export async function policyName(arg: string): Promise<string> {
  return /\.(ts|mts|js|mjs)$/.test(arg) ? (await loadPolicyFile(arg)).name : arg;
}

/** The XDP status of one loaded policy (its manifest names the rules and the modes). */
export function policyXdpStatus(name: string): XdpSectionStatus[] {
  const m = loadedManifest(name);
  return xdpStatus(policyDir(name), m.ir.xdp ?? [], Object.fromEntries(m.xdp.map((x) => [x.interface, x.mode])));
}

/** The tc status of one loaded policy. */
export function policyTcStatus(name: string): TcSectionStatus[] {
  return tcStatus(policyDir(name), loadedManifest(name).ir.tc ?? []);
}

function render(out: Output, policy: string, sections: (XdpSectionStatus | TcSectionStatus)[]): void {
  for (const s of sections) {
    const rest = { program: `${s.progId} ${s.progName} (tag ${s.progTag})`, link: s.linkId, pinned: s.dir };
    if ('direction' in s) out.record({ policy, interface: s.interface, direction: s.direction, ifindex: s.ifindex, attach: 'tcx', ...rest }, `tc ${s.direction} on ${s.interface}`);
    else out.record({ policy, interface: s.interface, ifindex: s.ifindex, mode: s.mode, ...rest }, `XDP on ${s.interface}`);
    out.line('');
    out.table(
      s.rules.map((r) => ({ '#': r.index === s.rules.length - 1 ? '-' : r.index, rule: r.name, match: r.match, action: r.action, packets: r.counted ? r.packets : '-', bytes: r.counted ? r.bytes : '-' })),
      ['#', 'rule', 'match', 'action', 'packets', 'bytes'],
    );
    out.line(`malformed: ${s.malformed.packets} packets (${s.malformed.bytes} bytes); later fragments: ${s.fragments.packets} packets`);
    if (s.sets.length) {
      out.line('');
      out.table(s.sets.map((x) => ({ set: x.name, type: x.kind, elements: x.size, capacity: x.maxEntries })), ['set', 'type', 'elements', 'capacity'], 'Sets (bpfctl set ls POLICY SET)');
    }
    out.line('');
  }
}

const status = defineCommand({
  command: 'status [policy]',
  describe: 'Interfaces, mode, program and every rule with live counters',
  builder: (y) => y.positional('policy', { type: 'string', describe: 'loaded policy name or policy.ts (default: every loaded policy)' }),
  handler: async (argv: Args<{ policy?: string }>) => {
    const { out } = argv;
    const names = argv.policy ? [await policyName(argv.policy)] : listPolicies().filter((n) => pathExists(join(policyDir(n), 'xdp')) || pathExists(join(policyDir(n), 'tc')));
    const all = names.map((n) => ({ policy: n, sections: [...policyXdpStatus(n), ...policyTcStatus(n)] }));
    if (out.json) return void out.printJson(all.flatMap((p) => p.sections.map((s) => ({ policy: p.policy, hook: 'direction' in s ? 'tc' : 'xdp', ...s }))));
    if (!all.some((p) => p.sections.length)) return void out.line(argv.policy ? `policy ${names[0]} has no XDP or tc sections loaded` : 'no XDP or tc programs loaded by bpfctl');
    for (const p of all) render(out, p.policy, p.sections);
  },
});

export const xdpCommand = defineCommand({
  ...usage('xdp'),
  builder: (y) => y.command(status).command(explainCommand).demandCommand(1),
  handler: () => {},
});
