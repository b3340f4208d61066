/**
 * `bpfctl map ls|show|dump|get|set|del|watch`: any map on the machine, named as object-ref.ts
 * says (id N, pinned PATH, name NAME, POLICY/MAP, a bare policy map name). Keys and values are
 * decoded with the map's BTF when it has some (integers, structs as JSON, char arrays as text)
 * and shown as hex otherwise; KEY and VALUE arguments are parsed with the same codec.
 */
import { closeSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv } from 'yargs';
import { BPF_F_MMAPABLE, type BpfMap, btfTypeByName, fdOfProcess, isDatasec, LoaderError, listMaps, listPrograms, mmapArray, StreamReader } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
import { TypedMap } from '../../maps/typed-map.ts';
import { hasNumbers, type Rate, rateOf } from '../../maps/typed-map-rate.ts';
import { parseBytesLiteral } from '../../schema/literal.ts';
import { array, asKnown, bytes, type Codec, codecFromBtf, encode, parseLiteral, SchemaError, u32 } from '../../schema/index.ts';
import { UsageError } from '../errors.ts';
import { formatCell, jsonReplacer } from '../output.ts';
import { openMapRef, openProgRef, positionalWords, resolveRef, splitRef } from './object-ref.ts';
import { type Args, type Command, defineCommand } from './types.ts';
import { usage } from './catalog.ts';

export { openMapRef } from './object-ref.ts';

/** A map command that cannot do what was asked (absent key, map kind without entries, ...). */
export class MapCommandError extends BpfctlError {}

interface MapRef {
  map: string;
  raw?: boolean;
  perCpu?: boolean;
  cpu?: number;
  allCpus?: boolean;
}

async function withMap<T>(ref: string, fn: (m: BpfMap) => T | Promise<T>): Promise<T> {
  const m = openMapRef(ref);
  try {
    return await fn(m);
  } finally {
    m.close();
  }
}

/**
 * The map reference and the words after it, as typed: `map get id 5 0x10` is MAP `id 5`, KEY
 * `0x10`. @throws UsageError when KEY or VALUE is missing, or words are left over.
 */
function refWords(argv: Args<MapRef & { key?: string; value?: string[] }>, cmd: string, want: 'none' | 'key' | 'key value'): { ref: string; key: string; value: string[] } {
  const { ref, rest } = splitRef(positionalWords(argv, ['map', 'key', 'value'], 2), 'map');
  const need = want === 'none' ? 0 : want === 'key' ? 1 : 2;
  if (rest.length < need) throw new UsageError(`map ${cmd} ${ref}: give ${want.toUpperCase()}`);
  if (want !== 'key value' && rest.length > need) throw new UsageError(`map ${cmd} ${ref}: unexpected '${rest.slice(need).join(' ')}'`);
  return { ref, key: rest[0] ?? '', value: rest.slice(1) };
}

/** Maps whose values are file descriptors on the way in and ids (or nothing) on the way out. */
const FD_VALUED = new Set(['sockmap', 'sockhash', 'xskmap', 'devmap', 'devmap_hash', 'cpumap', 'prog_array', 'array_of_maps', 'hash_of_maps', 'perf_event_array']);
/** Array-like map kinds: keys are u32 indexes even without key BTF. */
const INDEXED = new Set(['array', 'percpu_array', 'prog_array', 'sockmap', 'xskmap', 'devmap', 'cpumap', 'array_of_maps', 'perf_event_array', 'cgroup_array']);

function inspect(m: BpfMap, raw = false): TypedMap<unknown, unknown> {
  if (m.keySize === 0 || m.valueSize === 0)
    throw new MapCommandError('E_MAP', `map '${m.name}' (${m.type}) has no keys and values to read (key ${m.keySize} bytes, value ${m.valueSize} bytes)`);
  if (raw) return TypedMap.inspect(m, { raw: true });
  const btf = m.btf;
  // Global-data maps and hand-made arrays record no key type: their keys are still u32 indexes.
  const key = btf && btf.key.size === m.keySize ? codecFromBtf(btf.key) : INDEXED.has(m.type) && m.keySize === 4 ? u32 : bytes(m.keySize);
  const value = btf && btf.value.size === m.valueSize ? codecFromBtf(btf.value) : bytes(m.valueSize);
  return new TypedMap<unknown, unknown>(m, key, value, { checkBtf: false });
}

/**
 * Parses KEY/VALUE for a map. With BTF: the codec's literal syntax. Raw bytes (no BTF, or
 * `--raw`): parseBytesLiteral, the one rule that reads back what `dump` prints (`05000000` is
 * bytes in memory order, `5` the integer 5 at the map's width).
 */
export function parseArg(codec: Codec<unknown>, text: string, what: 'key' | 'value'): unknown {
  try {
    const c = asKnown(codec);
    if (c.kind === 'bytes') return parseBytesLiteral(text, c.size);
    return parseLiteral(codec, text);
  } catch (err) {
    throw err instanceof SchemaError ? err.within(what) : err;
  }
}

/** Per-CPU raw bytes cannot be summed: show each CPU's bytes instead. */
function showsPerCpu(t: TypedMap<unknown, unknown>, asked?: boolean): boolean {
  return t.isPerCpu && (Boolean(asked) || asKnown(t.value).kind === 'bytes');
}

function readAll(t: TypedMap<unknown, unknown>, perCpu: boolean): { key: unknown; value: unknown }[] {
  if (perCpu) return [...t.entriesPerCpu()].map(([key, value]) => ({ key, value }));
  return [...t.entries()].map(([key, value]) => ({ key, value }));
}

function checkCpu(m: BpfMap, cpu: number | undefined): number | undefined {
  if (cpu === undefined) return undefined;
  if (!m.isPerCpu) throw new MapCommandError('E_USAGE', `--cpu: map '${m.name}' (${m.type}) is not per-CPU`);
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= m.possibleCpus) throw new MapCommandError('E_USAGE', `--cpu ${cpu}: this machine has CPUs 0..${m.possibleCpus - 1}`);
  return cpu;
}

/** What userspace reads back from an fd-valued map: ids, ifindexes or socket cookies. */
function decodeRef(m: BpfMap, v: Uint8Array): Record<string, unknown> {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  switch (m.type) {
    case 'prog_array':
      return { progId: b.readUInt32LE(0) };
    case 'array_of_maps':
    case 'hash_of_maps':
      return { mapId: b.readUInt32LE(0) };
    case 'devmap':
    case 'devmap_hash':
      return b.length >= 8 ? { ifindex: b.readUInt32LE(0), progId: b.readUInt32LE(4) } : { ifindex: b.readUInt32LE(0) };
    case 'cpumap':
      return b.length >= 8 ? { qsize: b.readUInt32LE(0), progId: b.readUInt32LE(4) } : { qsize: b.readUInt32LE(0) };
    default:
      return b.length >= 8 ? { cookie: b.readBigUInt64LE(0) } : { value: Buffer.from(b).toString('hex') };
  }
}

/**
 * Entries of an fd-valued map: keys by get_next_key, values where the kernel returns something
 * (ids for program and map arrays, ifindexes for devmaps, socket cookies for 8-byte sockmaps);
 * null where it returns nothing (xskmap, 4-byte sockmap values). Empty array slots are skipped.
 */
function dumpRefs(m: BpfMap, key: Codec<unknown>, only?: Uint8Array): { key: unknown; value: unknown }[] {
  const rows: { key: unknown; value: unknown }[] = [];
  const decodeKey = (k: Uint8Array) => key.decode(new DataView(k.buffer, k.byteOffset, k.byteLength), 0);
  const keys = only ? [only] : (function* () {
    for (let k = m.nextKey(null); k; k = m.nextKey(k)) yield k;
  })();
  for (const k of keys) {
    if (only && INDEXED.has(m.type) && Buffer.from(k).readUInt32LE(0) >= m.maxEntries) break;
    let v: Uint8Array | null;
    try {
      v = m.lookup(k);
    } catch (err) {
      if (!(err instanceof LoaderError) || !['E_NOTSUPP', 'E_INVAL', 'E_LOADER'].includes(err.code)) throw err;
      // The kernel lists the key but will not say what it holds (xskmap, sockmap with 4-byte values).
      rows.push({ key: decodeKey(k), value: null });
      continue;
    }
    if (v) rows.push({ key: decodeKey(k), value: decodeRef(m, v) });
  }
  return rows;
}

/**
 * The fd to store for VALUE in an fd-valued map: any reference object-ref.ts takes names a
 * program (prog_array, devmap/cpumap programs) or a map (map-in-map). The caller closes it.
 */
function openRef(kind: 'program' | 'map', text: string): { fd: number; close(): void; id: number } {
  const t = text.trim();
  // Not a bare word: a value that is not a reference is more likely a mistake than a name.
  if (!/^(?:id|pinned|name)[:\s]|^\d+$|\//.test(t)) throw new MapCommandError('E_USAGE', `value: expected a ${kind} as id N, pinned PATH or name X, got '${t}'`);
  return kind === 'program' ? openProgRef(t) : openMapRef(t);
}

/** Writes KEY -> VALUE in an fd-valued map; returns what was stored, for the report. */
function setRef(m: BpfMap, key: Uint8Array, text: string): Record<string, unknown> {
  switch (m.type) {
    case 'prog_array':
    case 'array_of_maps':
    case 'hash_of_maps': {
      const o = openRef(m.type === 'prog_array' ? 'program' : 'map', text);
      try {
        m.updateFd(key, o.fd);
        return m.type === 'prog_array' ? { progId: o.id } : { mapId: o.id };
      } finally {
        o.close();
      }
    }
    case 'devmap':
    case 'devmap_hash':
    case 'cpumap': {
      // devmap: an interface (name or ifindex), optionally `prog REF`; cpumap: a queue size, optionally `prog REF`.
      const mm = /^(\S+)(?:\s+prog\s+(.+))?$/.exec(text.trim());
      if (!mm) throw new MapCommandError('E_USAGE', `value: expected ${m.type === 'cpumap' ? 'QSIZE' : 'IFNAME or IFINDEX'} [prog id N|pinned PATH|name X]`);
      let first: number;
      if (m.type === 'cpumap' || /^\d+$/.test(mm[1]!)) first = Number(mm[1]);
      else {
        first = ifIndexOf(mm[1]!);
        if (!first) throw new MapCommandError('E_NOENT', `value: no network interface '${mm[1]}' in this namespace`);
      }
      const v = Buffer.alloc(m.valueSize);
      v.writeUInt32LE(first, 0);
      const prog = mm[2] ? openRef('program', mm[2]) : undefined;
      try {
        if (prog) {
          if (m.valueSize < 8) throw new MapCommandError('E_USAGE', `map '${m.name}' has ${m.valueSize}-byte values: no room for a program (needs struct bpf_${m.type === 'cpumap' ? 'cpumap' : 'devmap'}_val)`);
          v.writeInt32LE(prog.fd, 4);
        }
        m.update(key, v);
      } finally {
        prog?.close();
      }
      // Report what the kernel holds now, as dump shows it.
      const back = m.lookup(key);
      return back ? decodeRef(m, back) : m.type === 'cpumap' ? { qsize: first } : { ifindex: first };
    }
    case 'perf_event_array':
      throw new MapCommandError('E_NOTSUPP', `map '${m.name}' (perf_event_array) holds perf event fds, which its reader opens: bpfctl map watch ${m.name} reads it`);
    case 'sockmap':
    case 'sockhash': {
      // A socket of another process: `sock PID:FD` takes a duplicate of it (pidfd_getfd).
      const sock = /^sock(?:et)?[:\s]\s*(\d+)[:\s](\d+)$/.exec(text.trim());
      if (!sock) throw new MapCommandError('E_USAGE', `value: a ${m.type} holds sockets: give one as sock PID:FD (an established TCP socket of that process)`);
      const fd = fdOfProcess(Number(sock[1]), Number(sock[2]));
      try {
        m.updateFd(key, fd);
      } finally {
        closeSync(fd);
      }
      const back = m.valueSize >= 8 ? m.lookup(key) : null;
      return back ? decodeRef(m, back) : { socket: `${sock[1]}:${sock[2]}` };
    }
    default:
      throw new MapCommandError(
        'E_NOTSUPP',
        `map '${m.name}' (${m.type}) holds sockets: only the process that owns a socket can insert it (BpfMap.updateFd in the loader, or the sockops program)`,
      );
  }
}

function ifIndexOf(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
  } catch {
    return 0;
  }
}

/** Frozen maps (libbpf freezes .rodata and .kconfig at load) refuse every write from user space. */
function isFrozen(m: BpfMap): boolean {
  try {
    return /^frozen:\s*1$/m.test(readFileSync(`/proc/self/fdinfo/${m.fd}`, 'utf8'));
  } catch {
    return false;
  }
}

/** A global-data map (.bss, .data, .rodata): its value type is the section, its members the variables. */
function datasecVar(m: BpfMap, name: string): { offset: number; codec: Codec<unknown> } | undefined {
  const v = m.btf?.value;
  if (!isDatasec(v) || !/^[A-Za-z_]\w*$/.test(name)) return undefined;
  const member = v.members.find((x) => x.name === name);
  if (!member) throw new MapCommandError('E_NOENT', `${v.name} map '${m.name}' has no variable '${name}' (variables: ${v.members.map((x) => x.name).join(', ')})`);
  return { offset: member.offsetBits / 8, codec: codecFromBtf(member.type) };
}

function readVar(m: BpfMap, dv: { offset: number; codec: Codec<unknown> }): unknown {
  const mmapable = (m.flags & BPF_F_MMAPABLE) !== 0;
  if (mmapable) {
    const mm = mmapArray(m);
    try {
      return dv.codec.decode(mm.view, dv.offset);
    } finally {
      mm.unmap();
    }
  }
  const buf = m.lookup(new Uint8Array(4));
  if (!buf) throw new MapCommandError('E_NOENT', `map '${m.name}' has no value`);
  return dv.codec.decode(new DataView(buf.buffer, buf.byteOffset, buf.byteLength), dv.offset);
}

function writeVar(m: BpfMap, dv: { offset: number; codec: Codec<unknown> }, value: unknown, name: string): void {
  const bytesOut = encode(dv.codec, value);
  const v = m.btf?.value;
  const section = isDatasec(v) ? v.name : '';
  if (section.startsWith('.rodata') || section === '.kconfig')
    throw new MapCommandError('E_RDONLY', `'${name}' is in ${section}, which the kernel froze at load: set it before load (bpfctl load FILE --set ${name}=...)`);
  if ((m.flags & BPF_F_MMAPABLE) !== 0) {
    const mm = mmapArray(m, { writable: true });
    try {
      mm.bytes.set(bytesOut, dv.offset);
    } finally {
      mm.unmap();
    }
    return;
  }
  const key = new Uint8Array(4);
  const cur = m.lookup(key) ?? new Uint8Array(m.valueSize);
  cur.set(bytesOut, dv.offset);
  m.update(key, cur);
}

const refOptions = (y: Argv) =>
  y
    // bpftool's `id N`, `pinned PATH`, `name X` are two words: the handler re-reads them (refWords).
    .strict(false)
    .strictOptions()
    .parserConfiguration({ 'parse-positional-numbers': false })
    .positional('map', { type: 'string', demandOption: true, describe: 'id N, pinned PATH, name NAME, POLICY/MAP, a pin path, or a map name of one loaded policy' })
    .option('raw', { type: 'boolean', default: false, describe: 'hex keys and values even when the map has BTF' })
    .option('per-cpu', { type: 'boolean', default: false, describe: "per-CPU maps: every CPU's value (an array) instead of the sum" })
    .option('cpu', { type: 'number', describe: 'per-CPU maps: only this CPU' });

/** The id of the map a reference names (opened and closed: pins and names resolve to ids). */
function mapIdOf(ref: string): number {
  const r = resolveRef('map', ref);
  if (r.id !== undefined) return r.id;
  const m = openMapRef(ref);
  try {
    return m.id;
  } finally {
    m.close();
  }
}

const ls: Command = {
  aliases: ['show'],
  ...defineCommand<{ map?: string[] }>({
  command: 'ls [map..]',
  describe: 'List every BPF map loaded on the machine, or the ones named (bpftool map show)',
  builder: (y: Argv) =>
    y
      .strict(false)
      .strictOptions()
      .parserConfiguration({ 'parse-positional-numbers': false })
      .positional('map', { type: 'string', array: true, describe: 'id N, pinned PATH, name NAME, POLICY/MAP... (default: all)' }),
  handler: (argv) => {
    let words = positionalWords(argv, ['map'], 2);
    const ids = new Set<number>();
    while (words.length) {
      const { ref, rest } = splitRef(words, 'map');
      ids.add(mapIdOf(ref));
      words = rest;
    }
    const rows = listMaps()
      .filter((m) => !ids.size || ids.has(m.id))
      .map((m) => ({
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
  }),
};

const dump = defineCommand<MapRef>({
  command: 'dump <map>',
  describe: 'Every entry of a map, decoded with its BTF (hex without; globals by variable)',
  builder: refOptions,
  handler: (argv) =>
    withMap(refWords(argv, 'dump', 'none').ref, (m) => {
      const t = inspect(m, argv.raw);
      const cpu = checkCpu(m, argv.cpu);
      let rows: { key: unknown; value: unknown }[];
      if (FD_VALUED.has(m.type)) rows = dumpRefs(m, t.key);
      else if (cpu !== undefined) rows = readAll(t, true).map((r) => ({ key: r.key, value: (r.value as unknown[])[cpu] }));
      else rows = readAll(t, showsPerCpu(t, argv.perCpu));
      if (argv.out.json) return argv.out.printJson(rows);
      argv.out.table(rows, ['key', 'value'], `${m.name} (${m.type}, id ${m.id}): ${rows.length} entr${rows.length === 1 ? 'y' : 'ies'}`);
    }),
});

const get = defineCommand<MapRef & { key: string }>({
  command: 'get <map> <key>',
  describe: 'The value under KEY (integers, hex bytes, JSON for structs; a variable name for .bss/.data/.rodata)',
  builder: (y) => refOptions(y).positional('key', { type: 'string', demandOption: true }),
  handler: (argv) => {
    const w = refWords(argv, 'get', 'key');
    return withMap(w.ref, (m) => {
      const dv = argv.raw ? undefined : datasecVar(m, w.key);
      if (dv) return argv.out.record({ name: w.key, value: readVar(m, dv) });
      const t = inspect(m, argv.raw);
      const key = parseArg(t.key, w.key, 'key');
      const cpu = checkCpu(m, argv.cpu);
      let value: unknown;
      if (FD_VALUED.has(m.type)) {
        // As dump: null where the kernel lists the key but will not say what it holds (xskmap).
        const row = dumpRefs(m, t.key, encode(t.key, key));
        value = row.length ? row[0]!.value : undefined;
      } else if (cpu !== undefined) value = t.getPerCpu(key)?.[cpu];
      else value = showsPerCpu(t, argv.perCpu) ? t.getPerCpu(key) : t.isPerCpu ? t.getSum(key) : t.get(key);
      if (value === undefined) throw new MapCommandError('E_NOENT', `map '${m.name}' has no entry for key ${w.key}`);
      argv.out.record({ key, value });
    });
  },
});

const set = defineCommand<MapRef & { key: string; value: string[]; mode: 'any' | 'noexist' | 'exist' }>({
  command: 'set <map> <key> <value..>',
  describe: 'Write VALUE under KEY (fd maps: id N, pinned PATH or name X; per-CPU: what get shows, or --cpu N / --all-cpus)',
  builder: (y) =>
    refOptions(y)
      .positional('key', { type: 'string', demandOption: true })
      .positional('value', { type: 'string', array: true, demandOption: true })
      .option('all-cpus', { type: 'boolean', default: false, describe: 'per-CPU maps: the same value on every CPU' })
      .option('mode', { choices: ['any', 'noexist', 'exist'] as const, default: 'any' as const, describe: 'noexist: only create; exist: only replace' }),
  handler: (argv) => {
    const w = refWords(argv, 'set', 'key value');
    return withMap(w.ref, (m) => {
      const text = w.value.join(' ');
      const dv = argv.raw ? undefined : datasecVar(m, w.key);
      if (dv) {
        const value = parseArg(dv.codec, text, 'value');
        writeVar(m, dv, value, w.key);
        if (argv.out.json) argv.out.printJson({ name: w.key, value });
        else argv.out.line(`${m.name}.${w.key} = ${formatCell(value)}`);
        return;
      }
      const t = inspect(m, argv.raw);
      const key = parseArg(t.key, w.key, 'key');
      if (isFrozen(m)) {
        const sec = m.btf?.value;
        const what = isDatasec(sec) ? sec.name : (/\.(rodata|kconfig)\S*$/.exec(m.name)?.[0] ?? 'its values');
        throw new MapCommandError('E_RDONLY', `map '${m.name}' holds ${what}, which the kernel froze at load: set its variables before load (bpfctl load FILE --set NAME=VALUE)`);
      }
      if (FD_VALUED.has(m.type)) {
        const stored = setRef(m, encode(t.key, key), text);
        if (argv.out.json) argv.out.printJson({ key, value: stored });
        else argv.out.line(`${m.name}[${formatCell(key)}] = ${formatCell(stored)}`);
        return;
      }
      const cpu = checkCpu(m, argv.cpu);
      let value: unknown;
      if (t.isPerCpu && (argv.perCpu || (showsPerCpu(t) && text.trim().startsWith('[') && cpu === undefined && !argv.allCpus))) {
        // An array, one value per CPU: what `get --per-cpu` prints.
        value = parseArg(array(t.value, m.possibleCpus), text, 'value');
        t.setPerCpu(key, value as unknown[]);
      } else {
        value = parseArg(t.value, text, 'value');
        if (!t.isPerCpu || argv.allCpus || (showsPerCpu(t) && cpu === undefined)) t.set(key, value, argv.mode);
        else {
          // `get` shows the sum (or one CPU with --cpu): store so that it reads back the same.
          const zero = t.value.decode(new DataView(new ArrayBuffer(t.value.size)), 0);
          const cur = t.getPerCpu(key) ?? Array.from({ length: m.possibleCpus }, () => zero);
          const next = cpu === undefined ? cur.map((_, i) => (i === 0 ? value : zero)) : cur.map((v, i) => (i === cpu ? value : v));
          t.setPerCpu(key, next);
        }
      }
      if (argv.out.json) argv.out.printJson({ key, value });
      else argv.out.line(`${m.name}[${formatCell(key)}]${cpu !== undefined ? ` on CPU ${cpu}` : ''} = ${formatCell(value)}`);
    });
  },
});

const del = defineCommand<MapRef & { key: string }>({
  command: 'del <map> <key>',
  describe: 'Delete the entry under KEY',
  builder: (y) => refOptions(y).positional('key', { type: 'string', demandOption: true }),
  handler: (argv) => {
    const w = refWords(argv, 'del', 'key');
    return withMap(w.ref, (m) => {
      const t = inspect(m, argv.raw);
      const key = parseArg(t.key, w.key, 'key');
      if (!t.delete(key)) throw new MapCommandError('E_NOENT', `map '${m.name}' has no entry for key ${w.key}`);
      if (argv.out.json) argv.out.printJson({ key, deleted: true });
      else argv.out.line(`deleted ${m.name}[${formatCell(key)}]`);
    });
  },
});

interface WatchArgs extends MapRef {
  interval: number;
  count?: number;
  type?: string;
  timeout?: number;
}

/** The codec for records of a stream map: `--type NAME` from the BTF of the map or of a program that uses it. */
function recordCodec(m: BpfMap, type: string | undefined): Codec<unknown> | undefined {
  if (!type) return undefined;
  const ids = [...new Set([m.btf ? mapBtfId(m) : 0, ...listPrograms().filter((p) => p.mapIds.includes(m.id)).map((p) => p.btfId)].filter(Boolean))];
  for (const id of ids) {
    const t = btfTypeByName(id, type);
    if (t && t.size > 0) return codecFromBtf(t);
  }
  throw new MapCommandError(
    'E_NOENT',
    `--type ${type}: no struct, union or typedef '${type}' in the BTF of map '${m.name}' or its programs (a type only used inside a function is not in BTF: declare e.g. \`struct ${type} *unused __attribute__((unused));\`)`,
  );
}

function mapBtfId(m: BpfMap): number {
  return listMaps().find((x) => x.id === m.id)?.btfId ?? 0;
}

/** `map watch` on a ringbuf or perf_event_array: one line per record, decoded with --type or as hex. */
async function watchStream(m: BpfMap, argv: Args<WatchArgs>): Promise<void> {
  const { out } = argv;
  const codec = recordCodec(m, argv.type);
  let seen = 0;
  const decodeRecord = (data: Uint8Array): unknown => {
    if (!codec) return data;
    if (data.length < codec.size) return data;
    return codec.decode(new DataView(data.buffer, data.byteOffset, data.byteLength), 0);
  };
  const reader = new StreamReader(m, (r) => {
    if (argv.count !== undefined && seen >= argv.count) return;
    seen++;
    const row = { time: new Date().toISOString(), ...(r.cpu !== undefined ? { cpu: r.cpu } : {}), size: r.data.length, record: decodeRecord(r.data) };
    if (out.json) out.stdout.write(`${JSON.stringify(row, jsonReplacer)}\n`);
    else out.stdout.write(`${row.time}${r.cpu !== undefined ? ` cpu ${r.cpu}` : ''} ${formatCell(row.record)}\n`);
  });
  try {
    const deadline = argv.timeout !== undefined ? Date.now() + argv.timeout * 1000 : Number.POSITIVE_INFINITY;
    const slice = Math.max(1, Math.min(100, argv.interval * 1000));
    while ((argv.count === undefined || seen < argv.count) && Date.now() < deadline) {
      // Short blocking polls, with the event loop running in between (signals, timers, tests).
      reader.poll(Math.min(slice, Math.max(0, deadline - Date.now())));
      await sleep(0);
    }
    if (reader.lost) out.stderr.write(`bpfctl: warning: the kernel dropped ${reader.lost} records (perf buffer full)\n`);
  } finally {
    reader.close();
  }
}

function keyId(key: unknown): string {
  return JSON.stringify(key, jsonReplacer);
}

const watch = defineCommand<WatchArgs>({
  command: 'watch <map>',
  describe: 'Redraw a map every --interval seconds with the per-second change of its counters; ringbuf/perf_event_array: stream its records',
  builder: (y) =>
    refOptions(y)
      .option('interval', { alias: 'i', type: 'number', default: 1, describe: 'seconds between refreshes' })
      .option('count', { alias: 'n', type: 'number', describe: 'stop after N refreshes (streams: N records)' })
      .option('type', { type: 'string', describe: 'streams: decode records as this struct from the BTF (hex without)' })
      .option('timeout', { type: 'number', describe: 'streams: stop after this many seconds' }),
  handler: (argv) =>
    withMap(refWords(argv, 'watch', 'none').ref, async (m) => {
      if (m.type === 'ringbuf' || m.type === 'perf_event_array') return watchStream(m, argv);
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
  ...usage('map'),
  builder: (y: Argv) => y.command(ls).command(dump).command(get).command(set).command(del).command(watch).demandCommand(1),
  handler: () => {},
};
