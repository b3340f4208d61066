/**
 * `bpfctl set add|del|ls POLICY SET [ELEMENT...]`: change an XDP section's named set while its
 * program runs (a map write: the next packet sees it). A set name used by several interfaces'
 * sections changes on all of them unless `--interface` picks one.
 */
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { policyDir } from '../../deploy/paths.ts';
import { listXdpDeployments, xdpRoot } from '../../deploy/xdp.ts';
import { changeSet, listSetNames, readSet, SetElementError } from '../../deploy/xdp-sets.ts';
import { loadedManifest } from '../../deploy/policy.ts';
import { requirePrivileges } from '../privileges.ts';
import { type Args, defineCommand } from './types.ts';
import { policyName } from './xdp.ts';
import { usage } from './catalog.ts';

interface SetArgs {
  policy: string;
  set: string;
  elements?: (string | number)[];
  interface?: string;
}

/** Section directories of `policy` that hold set `set`. @throws SetElementError when none does */
function sectionsWith(policy: string, set: string, iface?: string): { interface: string; dir: string }[] {
  loadedManifest(policy); // PolicyNotLoadedError with a hint when the policy is not loaded
  const root = policyDir(policy);
  const all = listXdpDeployments(root)
    .filter((n) => !iface || n === iface)
    .map((n) => ({ interface: n, dir: join(xdpRoot(root), n) }));
  const hits = all.filter((s) => listSetNames(s.dir).includes(set));
  if (!hits.length) {
    const known = [...new Set(all.flatMap((s) => listSetNames(s.dir)))];
    throw new SetElementError(set, '', `policy ${policy} has no set '${set}'${iface ? ` on ${iface}` : ''}${known.length ? ` (sets: ${known.join(', ')})` : ''}`);
  }
  return hits;
}

const positionals = (y: Argv) =>
  y
    .positional('policy', { type: 'string', demandOption: true, describe: 'loaded policy name or policy.ts' })
    .positional('set', { type: 'string', demandOption: true, describe: 'set name, as declared in the xdp section' })
    .option('interface', { alias: 'i', type: 'string', describe: 'only the section on this interface' });

function change(op: 'add' | 'del') {
  return defineCommand({
    command: `${op} <policy> <set> <elements..>`,
    describe: op === 'add' ? 'Add elements (prefixes, addresses, ports, MACs) to a live set' : 'Remove elements from a live set',
    builder: (y) => positionals(y).positional('elements', { type: 'string', array: true, demandOption: true }),
    handler: async (argv: Args<SetArgs>) => {
      requirePrivileges(`set ${op} ${argv.policy} ${argv.set}`, "it writes the policy's pinned set map");
      const policy = await policyName(argv.policy);
      const elements = (argv.elements ?? []).map(String).flatMap((e) => e.split(',')).filter(Boolean);
      const rows = sectionsWith(policy, argv.set, argv.interface).map((s) => {
        const r = changeSet(s.dir, argv.set, op, elements);
        return { interface: s.interface, set: argv.set, type: r.kind, [op === 'add' ? 'added' : 'removed']: r.changed, size: readSet(s.dir, argv.set).elements.length };
      });
      argv.out.table(rows, ['interface', 'set', 'type', op === 'add' ? 'added' : 'removed', 'size']);
    },
  });
}

const ls = defineCommand({
  command: 'ls <policy> <set>',
  describe: 'List the elements of a live set',
  builder: (y) => positionals(y),
  handler: async (argv: Args<SetArgs>) => {
    const policy = await policyName(argv.policy);
    const sets = sectionsWith(policy, argv.set, argv.interface).map((s) => ({ interface: s.interface, ...readSet(s.dir, argv.set) }));
    if (argv.out.json) return void argv.out.printJson(sets.map((s) => ({ interface: s.interface, set: argv.set, type: s.kind, maxEntries: s.maxEntries, elements: s.elements })));
    for (const s of sets) {
      argv.out.table(
        s.elements.map((e) => ({ element: e })),
        ['element'],
        `${argv.set} on ${s.interface} (${s.kind}, ${s.elements.length}/${s.maxEntries})`,
      );
    }
  },
});

export const setCommand = defineCommand({
  ...usage('set'),
  builder: (y) => y.command(change('add')).command(change('del')).command(ls).demandCommand(1),
  handler: () => {},
});
