/**
 * `bpfctl link ls|show|detach`: every bpf_link on the machine (what is attached where, by which
 * program, pinned where), and detaching one by id N, pinned PATH or POLICY/LINK (object-ref.ts).
 * Detaching removes the link's pins, so nothing re-attaches it, and the load manifests that
 * recorded it forget it.
 */
import type { Argv } from 'yargs';
import { listLinks, listPrograms } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
import { UsageError } from '../errors.ts';
import { requirePrivileges } from '../privileges.ts';
import { linkIdOf, positionalWords, splitRef } from './object-ref.ts';
import { detachLink, ifNames, linkPins } from './prog.ts';
import { type Command, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

/** A link that cannot be found or detached as asked. */
export class LinkCommandError extends BpfctlError {}

function describeTarget(target: string, names: Map<number, string>): string {
  const m = /^ifindex:(\d+)$/.exec(target);
  if (m) return `${names.get(Number(m[1])) ?? 'ifindex'} (${m[1]})`;
  return target;
}

/** bpftool's two-word references (`id 5`, `pinned PATH`) arrive as several positionals. */
const refWordsOf = (y: Argv) => y.strict(false).strictOptions().parserConfiguration({ 'parse-positional-numbers': false });

/** The link ids `words` name. */
function linkIds(words: string[]): number[] {
  const ids: number[] = [];
  while (words.length) {
    const { ref, rest } = splitRef(words, 'link');
    ids.push(linkIdOf(ref));
    words = rest;
  }
  return ids;
}

const ls: Command = {
  aliases: ['show'],
  ...defineCommand<{ link?: string[] }>({
    command: 'ls [link..]',
    describe: 'List every BPF link (type, program, target, attach type, pins), or the ones named',
    builder: (y: Argv) => refWordsOf(y).positional('link', { type: 'string', array: true, describe: 'id N, pinned PATH or POLICY/LINK (default: all)' }),
    handler: (argv) => {
      const only = new Set(linkIds(positionalWords(argv, ['link'], 2)));
      // Links first: refused, the error then names what was asked for ("list links").
      const links = listLinks();
      const progs = new Map(listPrograms().map((p) => [p.id, p.name]));
      const pins = linkPins();
      const names = ifNames();
      const rows = links
        .filter((l) => !only.size || only.has(l.id))
        .map((l) => ({
          id: l.id,
          type: l.type,
          progId: l.progId,
          program: progs.get(l.progId) ?? null,
          target: describeTarget(l.target, names),
          attachType: l.attachType ?? null,
          pins: pins.get(l.id) ?? [],
        }));
      argv.out.table(rows, ['id', 'type', 'progId', 'program', 'target', 'attachType', 'pins']);
    },
  }),
};

const detach = defineCommand<{ link: string }>({
  command: 'detach <link>',
  describe: 'Detach a link (id N, pinned PATH, POLICY/LINK or a pin path) and remove its pins',
  builder: (y: Argv) => refWordsOf(y).positional('link', { type: 'string', demandOption: true, describe: 'id N, pinned PATH, POLICY/LINK or a pin path' }),
  handler: (argv) => {
    requirePrivileges('link detach', 'it detaches a link and removes its pins');
    const { ref, rest } = splitRef(positionalWords(argv, ['link'], 2), 'link');
    if (rest.length) throw new UsageError(`link detach ${ref}: unexpected '${rest.join(' ')}'`);
    const linkId = linkIdOf(ref);
    const info = listLinks().find((l) => l.id === linkId);
    if (!info) throw new LinkCommandError('E_NOENT', `no link with id ${linkId} (bpfctl link ls)`);
    const pins = linkPins().get(linkId) ?? [];
    detachLink(info, pins);
    if (argv.out.json) argv.out.printJson({ linkId, type: info.type, progId: info.progId, removed: pins });
    else argv.out.line(`detached link ${linkId} (${info.type}, program ${info.progId})${pins.length ? `, removed ${pins.join(', ')}` : ''}`);
  },
});

export const linkCommand: Command = {
  ...usage('link'),
  builder: (y: Argv) => y.command(ls).command(detach).demandCommand(1),
  handler: () => {},
};
