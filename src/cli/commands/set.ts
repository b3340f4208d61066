/**
 * `bpfctl set add|del|ls POLICY SET [ELEMENT...]`: change an XDP or tc section's named set while
 * its program runs (a map write: the next packet sees it). A set name used by several sections
 * changes on all of them unless `--interface` (and `--hook`) pick some.
 */
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { policyDir } from '../../deploy/paths.ts';
import { listTcDeployments } from '../../deploy/tc.ts';
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
  hook?: 'xdp' | 'tc-ingress' | 'tc-egress';
}

/** A section holding sets: `hook` is set for tc sections only, so XDP rows read as they always did. */
interface SetSection {
  interface: string;
  hook?: 'tc ingress' | 'tc egress';
  dir: string;
}

/** Section directories of `policy` that hold set `set`. @throws SetElementError when none does */
function sectionsWith(policy: string, set: string, iface?: string, hook?: SetArgs['hook']): SetSection[] {
  loadedManifest(policy); // PolicyNotLoadedError with a hint when the policy is not loaded
  const root = policyDir(policy);
  const xdp: SetSection[] = hook && hook !== 'xdp' ? [] : listXdpDeployments(root).map((n) => ({ interface: n, dir: join(xdpRoot(root), n) }));
  const tc: SetSection[] = listTcDeployments(root)
    .filter((d) => !hook || hook === `tc-${d.direction}`)
    .map((d) => ({ interface: d.slug, hook: `tc ${d.direction}` as const, dir: d.dir }));
  const all = [...xdp, ...tc].filter((s) => !iface || s.interface === iface);
  const hits = all.filter((s) => listSetNames(s.dir).includes(set));
  if (!hits.length) {
    const known = [...new Set(all.flatMap((s) => listSetNames(s.dir)))];
    const where = [iface && ` on ${iface}`, hook && ` at ${hook}`].filter(Boolean).join('');
    throw new SetElementError(set, '', `policy ${policy} has no set '${set}'${where}${known.length ? ` (sets: ${known.join(', ')})` : ''}`);
  }
  return hits;
}

/** Table columns: `hook` only when a tc section is among the rows. */
const withHook = (rows: SetSection[], cols: string[]): string[] => (rows.some((r) => r.hook) ? [cols[0]!, 'hook', ...cols.slice(1)] : cols);

const positionals = (y: Argv) =>
  y
    .positional('policy', { type: 'string', demandOption: true, describe: 'loaded policy name or policy.ts' })
    .positional('set', { type: 'string', demandOption: true, describe: 'set name, as declared in the xdp section' })
    .option('interface', { alias: 'i', type: 'string', describe: 'only the section on this interface' })
    .option('hook', { choices: ['xdp', 'tc-ingress', 'tc-egress'] as const, describe: 'only the xdp section, or the tc section of one direction' });

function change(op: 'add' | 'del') {
  return defineCommand({
    command: `${op} <policy> <set> <elements..>`,
    describe: op === 'add' ? 'Add elements (prefixes, addresses, ports, MACs) to a live set' : 'Remove elements from a live set',
    builder: (y) => positionals(y).positional('elements', { type: 'string', array: true, demandOption: true }),
    handler: async (argv: Args<SetArgs>) => {
      requirePrivileges(`set ${op} ${argv.policy} ${argv.set}`, "it writes the policy's pinned set map");
      const policy = await policyName(argv.policy);
      const elements = (argv.elements ?? []).map(String).flatMap((e) => e.split(',')).filter(Boolean);
      const sections = sectionsWith(policy, argv.set, argv.interface, argv.hook);
      const rows = sections.map((s) => {
        const r = changeSet(s.dir, argv.set, op, elements);
        return { interface: s.interface, ...(s.hook ? { hook: s.hook } : {}), set: argv.set, type: r.kind, [op === 'add' ? 'added' : 'removed']: r.changed, size: readSet(s.dir, argv.set).elements.length };
      });
      argv.out.table(rows, withHook(sections, ['interface', 'set', 'type', op === 'add' ? 'added' : 'removed', 'size']));
    },
  });
}

const ls = defineCommand({
  command: 'ls <policy> <set>',
  describe: 'List the elements of a live set',
  builder: (y) => positionals(y),
  handler: async (argv: Args<SetArgs>) => {
    const policy = await policyName(argv.policy);
    const sets = sectionsWith(policy, argv.set, argv.interface, argv.hook).map((s) => ({ interface: s.interface, hook: s.hook, ...readSet(s.dir, argv.set) }));
    if (argv.out.json) return void argv.out.printJson(sets.map((s) => ({ interface: s.interface, ...(s.hook ? { hook: s.hook } : {}), set: argv.set, type: s.kind, maxEntries: s.maxEntries, elements: s.elements })));
    for (const s of sets) {
      argv.out.table(
        s.elements.map((e) => ({ element: e })),
        ['element'],
        `${argv.set} on ${s.interface}${s.hook ? ` (${s.hook})` : ''} (${s.kind}, ${s.elements.length}/${s.maxEntries})`,
      );
    }
  },
});

export const setCommand = defineCommand({
  ...usage('set'),
  builder: (y) => y.command(change('add')).command(change('del')).command(ls).demandCommand(1),
  handler: () => {},
});
