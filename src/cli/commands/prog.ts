/** `bpfctl prog ls`: every BPF program loaded on the machine, like `bpftool prog show`. */
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { listPrograms } from '../../../loader/index.ts';
import { type Command, defineCommand } from './types.ts';

/** Wall-clock time of a kernel timestamp in ns since boot (the kernel reports load time so). */
function bootTimeToDate(ns: bigint): Date {
  const uptime = Number.parseFloat(readFileSync('/proc/uptime', 'utf8').split(' ')[0] ?? '0');
  const bootMs = Date.now() - uptime * 1000;
  return new Date(bootMs + Number(ns / 1_000_000n));
}

const ls = defineCommand<Record<string, never>>({
  command: 'ls',
  describe: 'List every BPF program loaded on the machine',
  handler: (argv) => {
    const rows = listPrograms().map((p) => ({
      id: p.id,
      name: p.name,
      type: p.type,
      tag: p.tag,
      mapIds: p.mapIds,
      btf: p.btfId || null,
      loadedAt: bootTimeToDate(p.loadTime).toISOString(),
    }));
    argv.out.table(rows, ['id', 'name', 'type', 'tag', 'mapIds', 'loadedAt']);
  },
});

export const progCommand: Command = {
  command: 'prog <command>',
  describe: 'Inspect BPF programs (ls)',
  builder: (y: Argv) => y.command(ls).demandCommand(1),
  handler: () => {},
};
