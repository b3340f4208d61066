/**
 * `bpfctl link ls|detach`: every bpf_link on the machine (what is attached where, by which
 * program, pinned where), and detaching one by id or pin. Detaching removes the link's pins, so
 * nothing re-attaches it, and the load manifests that recorded it forget it.
 */
import type { Argv } from 'yargs';
import { BpfLink, listLinks, listPrograms } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
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

const ls = defineCommand<Record<string, never>>({
  command: 'ls',
  describe: 'List every BPF link: type, program, target, attach type, pins',
  handler: (argv) => {
    const progs = new Map(listPrograms().map((p) => [p.id, p.name]));
    const pins = linkPins();
    const names = ifNames();
    const rows = listLinks().map((l) => ({
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
});

const detach = defineCommand<{ link: string }>({
  command: 'detach <link>',
  describe: 'Detach a link (by id N, id:N, or pin path) and remove its pins',
  builder: (y: Argv) => y.positional('link', { type: 'string', demandOption: true, describe: 'link id or pin path' }),
  handler: (argv) => {
    const ref = String(argv.link).trim();
    const id = /^(?:id[:\s]\s*)?(\d+)$/.exec(ref);
    let linkId: number;
    if (id) linkId = Number(id[1]);
    else {
      const l = BpfLink.openPinned(ref.replace(/^pinned[:\s]\s*/, ''));
      linkId = l.id;
      l.close();
    }
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
