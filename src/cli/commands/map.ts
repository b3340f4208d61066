/**
 * `bpfctl map ls|dump|get|set|del|watch`: any map on the machine, by pin path or id. Keys and
 * values are decoded with the map's BTF when it has some (integers, structs as JSON, char arrays
 * as text) and shown as hex otherwise; KEY and VALUE arguments are parsed with the same codec.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv } from 'yargs';
import { BpfMap, listMaps } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
import { TypedMap } from '../../runtime/typed-map.ts';
import { hasNumbers, type Rate, rateOf } from '../../runtime/typed-map-rate.ts';
import { asKnown, type Codec, parseHexBytes, parseLiteral, SchemaError } from '../../schema/index.ts';
import { formatCell, jsonReplacer } from '../output.ts';
import { type Command, defineCommand } from './types.ts';

/** A map command that cannot do what was asked (absent key, map kind without entries, ...). */
export class MapCommandError extends BpfctlError {}

interface MapRef {
  map: string;
  raw?: boolean;
  perCpu?: boolean;
}

/** `/sys/fs/bpf/...` opens a pin; a bare number (or `id:N`) is a kernel map id. */
export function openMapRef(ref: string): BpfMap {
  const id = /^(?:id:)?(\d+)$/.exec(ref);
  return id ? BpfMap.fromId(Number(id[1])) : BpfMap.openPinned(ref);
}

async function withMap<T>(ref: string, fn: (m: BpfMap) => T | Promise<T>): Promise<T> {
  const m = openMapRef(ref);
  try {
    return await fn(m);
  } finally {
    m.close();
  }
}

function inspect(m: BpfMap, raw = false): TypedMap<unknown, unknown> {
  if (m.keySize === 0 || m.valueSize === 0)
    throw new MapCommandError('E_MAP', `map '${m.name}' (${m.type}) has no keys and values to read (key ${m.keySize} bytes, value ${m.valueSize} bytes)`);
  return TypedMap.inspect(m, { raw });
}

/**
 * Parses KEY/VALUE for a map. With BTF: the codec's literal syntax. Raw bytes (no BTF): a decimal
 * integer is stored in host order at the map's width; `0x...` or other hex is bytes in memory
 * order, as bpftool's `hex` arguments are.
 */
export function parseArg(codec: Codec<unknown>, text: string, what: 'key' | 'value'): unknown {
  try {
    const c = asKnown(codec);
    if (c.kind === 'bytes' && /^-?\d+$/.test(text.trim()) && [1, 2, 4, 8].includes(c.size)) return intBytes(text.trim(), c.size);
    if (c.kind === 'bytes') return parseHexBytes(text, c.size);
    return parseLiteral(codec, text);
  } catch (err) {
    throw err instanceof SchemaError ? err.within(what) : err;
  }
}

function intBytes(text: string, size: number): Uint8Array {
  const v = BigInt(text);
  const bits = BigInt(size * 8);
  if (v < -(1n << (bits - 1n)) || v >= 1n << bits) throw new SchemaError(`${text} does not fit in ${size} bytes`);
  const out = new Uint8Array(size);
  let u = BigInt.asUintN(size * 8, v);
  for (let i = 0; i < size; i++, u >>= 8n) out[i] = Number(u & 0xffn);
  return out;
}

/** Per-CPU raw bytes cannot be summed: show each CPU's bytes instead. */
function showsPerCpu(t: TypedMap<unknown, unknown>, asked?: boolean): boolean {
  return t.isPerCpu && (Boolean(asked) || asKnown(t.value).kind === 'bytes');
}

function readAll(t: TypedMap<unknown, unknown>, perCpu: boolean): { key: unknown; value: unknown }[] {
  if (perCpu) return [...t.entriesPerCpu()].map(([key, value]) => ({ key, value }));
  return [...t.entries()].map(([key, value]) => ({ key, value }));
}

const refOptions = (y: Argv) =>
  y
    .positional('map', { type: 'string', demandOption: true, describe: 'pin path, or map id' })
    .option('raw', { type: 'boolean', default: false, describe: 'hex keys and values even when the map has BTF' })
    .option('per-cpu', { type: 'boolean', default: false, describe: 'per-CPU maps: every CPU\'s value instead of the sum' });

const ls = defineCommand<Record<string, never>>({
  command: 'ls',
  describe: 'List every BPF map loaded on the machine',
  handler: (argv) => {
    const rows = listMaps().map((m) => ({
      id: m.id,
      name: m.name,
      type: m.type,
      key: m.keySize,
      value: m.valueSize,
      maxEntries: m.maxEntries,
      flags: m.flags ? `0x${m.flags.toString(16)}` : '0',
      btf: m.btfId || null,
    }));
    argv.out.table(rows, ['id', 'name', 'type', 'key', 'value', 'maxEntries', 'flags', 'btf']);
  },
});

const dump = defineCommand<MapRef>({
  command: 'dump <map>',
  describe: 'Every entry of a map, decoded with its BTF (hex without)',
  builder: refOptions,
  handler: (argv) =>
    withMap(argv.map, (m) => {
      const t = inspect(m, argv.raw);
      const rows = readAll(t, showsPerCpu(t, argv.perCpu));
      if (argv.out.json) return argv.out.printJson(rows);
      argv.out.table(rows, ['key', 'value'], `${m.name} (${m.type}, id ${m.id}): ${rows.length} entr${rows.length === 1 ? 'y' : 'ies'}`);
    }),
});

const get = defineCommand<MapRef & { key: string }>({
  command: 'get <map> <key>',
  describe: 'The value under KEY (integers, hex bytes, or JSON for structs)',
  builder: (y) => refOptions(y).positional('key', { type: 'string', demandOption: true }),
  handler: (argv) =>
    withMap(argv.map, (m) => {
      const t = inspect(m, argv.raw);
      const key = parseArg(t.key, String(argv.key), 'key');
      const value = showsPerCpu(t, argv.perCpu) ? t.getPerCpu(key) : t.isPerCpu ? t.getSum(key) : t.get(key);
      if (value === undefined) throw new MapCommandError('E_NOENT', `map '${m.name}' has no entry for key ${String(argv.key)}`);
      argv.out.record({ key, value });
    }),
});

const set = defineCommand<MapRef & { key: string; value: string; mode: 'any' | 'noexist' | 'exist' }>({
  command: 'set <map> <key> <value>',
  describe: 'Write VALUE under KEY (per-CPU maps: on every CPU)',
  builder: (y) =>
    refOptions(y)
      .positional('key', { type: 'string', demandOption: true })
      .positional('value', { type: 'string', demandOption: true })
      .option('mode', { choices: ['any', 'noexist', 'exist'] as const, default: 'any' as const, describe: 'noexist: only create; exist: only replace' }),
  handler: (argv) =>
    withMap(argv.map, (m) => {
      const t = inspect(m, argv.raw);
      const key = parseArg(t.key, String(argv.key), 'key');
      const value = parseArg(t.value, String(argv.value), 'value');
      t.set(key, value, argv.mode);
      if (argv.out.json) argv.out.printJson({ key, value });
      else argv.out.line(`${m.name}[${formatCell(key)}] = ${formatCell(value)}`);
    }),
});

const del = defineCommand<MapRef & { key: string }>({
  command: 'del <map> <key>',
  describe: 'Delete the entry under KEY',
  builder: (y) => refOptions(y).positional('key', { type: 'string', demandOption: true }),
  handler: (argv) =>
    withMap(argv.map, (m) => {
      const t = inspect(m, argv.raw);
      const key = parseArg(t.key, String(argv.key), 'key');
      if (!t.delete(key)) throw new MapCommandError('E_NOENT', `map '${m.name}' has no entry for key ${String(argv.key)}`);
      if (argv.out.json) argv.out.printJson({ key, deleted: true });
      else argv.out.line(`deleted ${m.name}[${formatCell(key)}]`);
    }),
});

interface WatchArgs extends MapRef {
  interval: number;
  count?: number;
}

function keyId(key: unknown): string {
  return JSON.stringify(key, jsonReplacer);
}

const watch = defineCommand<WatchArgs>({
  command: 'watch <map>',
  describe: 'Redraw a map every --interval seconds with the per-second change of its counters',
  builder: (y) =>
    refOptions(y)
      .option('interval', { alias: 'i', type: 'number', default: 1, describe: 'seconds between refreshes' })
      .option('count', { alias: 'n', type: 'number', describe: 'stop after N refreshes' }),
  handler: (argv) =>
    withMap(argv.map, async (m) => {
      const t = inspect(m, argv.raw);
      const { out } = argv;
      if (!(argv.interval > 0)) throw new SchemaError(`--interval must be a positive number of seconds, got ${argv.interval}`);
      const numeric = hasNumbers(t.value);
      // Rates always come from sums: per-CPU slots are an implementation detail of counting.
      const perCpu = showsPerCpu(t, argv.perCpu);
      const tty = Boolean((out.stdout as { isTTY?: boolean }).isTTY) && !out.json;
      let prev = new Map<string, unknown>();
      let prevAt = 0;
      for (let n = 1; argv.count === undefined || n <= argv.count; n++) {
        const at = performance.now();
        const seconds = prevAt ? (at - prevAt) / 1000 : 0;
        const sums = [...t.entries()];
        const perCpuValues = perCpu ? new Map([...t.entriesPerCpu()].map(([k, v]) => [keyId(k), v])) : undefined;
        const next = new Map<string, unknown>();
        const rows = sums.map(([key, value]) => {
          const id = keyId(key);
          next.set(id, value);
          const before = prev.get(id);
          const rate: Rate | undefined = numeric && before !== undefined && seconds > 0 ? rateOf(t.value, before, value, seconds) : undefined;
          return { key, value: perCpuValues?.get(id) ?? value, perSecond: rate ?? null };
        });
        prev = next;
        prevAt = at;
        const time = new Date().toISOString();
        if (out.json) out.stdout.write(`${JSON.stringify({ time, map: m.name, entries: rows }, jsonReplacer)}\n`);
        else {
          if (tty) out.stdout.write('\x1b[H\x1b[2J');
          out.table(rows, numeric ? ['key', 'value', 'perSecond'] : ['key', 'value'], `${m.name} (${m.type}, id ${m.id}) at ${time}, every ${argv.interval}s`);
        }
        if (argv.count !== undefined && n >= argv.count) break;
        await sleep(argv.interval * 1000);
      }
    }),
});

export const mapCommand: Command = {
  command: 'map <command>',
  describe: 'Inspect and edit BPF maps (ls, dump, get, set, del, watch)',
  builder: (y: Argv) => y.command(ls).command(dump).command(get).command(set).command(del).command(watch).demandCommand(1),
  handler: () => {},
};
