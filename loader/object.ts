/**
 * BpfObject: one ELF object (.bpf.o). Before load() it is a spec: its programs and maps can be
 * inspected and adjusted (reuse a pinned map, resize a map). load() creates everything in the
 * kernel at once; on any failure nothing it created survives. After load the object owns one fd
 * per program and map (libbpf's own object is freed right away), and close() releases them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { EINVAL, ENOENT, ENOSPC, LoaderError, loaderError, VerifierError } from './errors.ts';
import { dupFd } from './info.ts';
import { addressOf, clearLibbpfMessages, lastErrno, lib, libbpfMessages } from './libbpf.ts';
import { BpfMap } from './map.ts';
import { BpfProgram } from './program.ts';
import { attachTypeName, mapTypeName, progTypeName } from './types.ts';

export interface ProgramSpec {
  name: string;
  section: string;
  /** 'sk_msg', 'sock_ops', 'xdp', ... */
  type: string;
  /** The attach type libbpf derives from the section, e.g. 'cgroup_sock_ops'. */
  attachType: string;
}

export interface MapSpec {
  name: string;
  /** 'array', 'hash', 'percpu_array', 'sockhash', 'lpm_trie', ... */
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

type Source = { kind: 'file'; path: string } | { kind: 'mem'; bytes: Buffer };

// struct bpf_object_open_opts (x86-64): sz@0 object_name@8 relaxed_maps@16 pin_root_path@24
// kconfig@40 btf_custom_path@48 kernel_log_buf@56 kernel_log_size@64 kernel_log_level@72; 80 bytes.
const OPEN_OPTS_SIZE = 80;
const LOG_START = 256 * 1024;
const LOG_MAX = 256 * 1024 * 1024;
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export class BpfObject {
  readonly name: string;
  private readonly source: Source;
  private obj: bigint | null = null;
  private logBuf: Buffer | null = null;
  private nameBuf: Buffer;
  private readonly reused = new Map<string, BpfMap>();
  private readonly maxEntries = new Map<string, number>();
  private progSpecs: ProgramSpec[] = [];
  private mapSpecs: MapSpec[] = [];
  private state: 'open' | 'loaded' | 'failed' | 'closed' = 'open';
  private readonly livePrograms = new Map<string, BpfProgram>();
  private readonly liveMaps = new Map<string, BpfMap>();

  private constructor(source: Source, name: string) {
    this.source = source;
    this.name = name;
    this.nameBuf = Buffer.from(`${name}\0`);
    this.reopen(LOG_START);
  }

  /** Open an ELF file. LoaderError E_NOENT when it does not exist, E_ELF when it is not a BPF object. */
  static open(path: string, opts: { name?: string } = {}): BpfObject {
    if (!existsSync(path)) throw loaderError(`open BPF object ${path}`, ENOENT, { code: 'E_NOENT', hint: 'no such file' });
    checkElf(readFileSync(path).subarray(0, 4), path);
    // Objects from the compile cache are <name>-<hash16>.bpf.o: the hash is not part of the name.
    return new BpfObject({ kind: 'file', path }, opts.name ?? basename(path).replace(/\.(bpf\.)?o$/, '').replace(/-[0-9a-f]{16}$/, ''));
  }

  /** Open an ELF image held in memory. LoaderError E_ELF when it is not a BPF object. */
  static openBuffer(elf: Uint8Array, name: string): BpfObject {
    checkElf(elf.subarray(0, 4), name);
    return new BpfObject({ kind: 'mem', bytes: Buffer.from(elf) }, name);
  }

  private reopen(logSize: number): void {
    const l = lib();
    this.logBuf = Buffer.alloc(logSize);
    const o = Buffer.alloc(OPEN_OPTS_SIZE);
    o.writeBigUInt64LE(BigInt(OPEN_OPTS_SIZE), 0);
    o.writeBigUInt64LE(addressOf(this.nameBuf), 8);
    o.writeBigUInt64LE(addressOf(this.logBuf), 56);
    o.writeBigUInt64LE(BigInt(logSize), 64);
    o.writeUInt32LE(0, 72); // level 0: libbpf asks for a log only after a program fails
    clearLibbpfMessages();
    const what = this.source.kind === 'file' ? this.source.path : this.name;
    const obj =
      this.source.kind === 'file'
        ? (l.bpf_object__open_file(this.source.path, o) as bigint | null)
        : (l.bpf_object__open_mem(this.source.bytes, this.source.bytes.length, o) as bigint | null);
    if (obj === null) {
      const errno = lastErrno();
      throw loaderError(`open BPF object ${what}`, errno, { code: errno === ENOENT ? 'E_NOENT' : 'E_ELF' });
    }
    this.obj = obj;
    try {
      this.readSpecs(obj);
    } catch (err) {
      l.bpf_object__close(obj);
      this.obj = null;
      throw err;
    }
  }

  private readSpecs(obj: bigint): void {
    const l = lib();
    this.progSpecs = [];
    this.mapSpecs = [];
    for (let p = l.bpf_object__next_program(obj, null) as bigint | null; p !== null; p = l.bpf_object__next_program(obj, p)) {
      this.progSpecs.push({
        name: l.bpf_program__name(p),
        section: l.bpf_program__section_name(p),
        type: progTypeName(l.bpf_program__type(p)),
        attachType: attachTypeName(l.bpf_program__expected_attach_type(p)),
      });
    }
    for (let m = l.bpf_object__next_map(obj, null) as bigint | null; m !== null; m = l.bpf_object__next_map(obj, m)) {
      const name = l.bpf_map__name(m) as string;
      const max = this.maxEntries.get(name);
      if (max !== undefined) this.check(l.bpf_map__set_max_entries(m, max), `set max_entries of map '${name}'`);
      const reuse = this.reused.get(name);
      if (reuse) this.check(l.bpf_map__reuse_fd(m, reuse.fd), `reuse map '${name}'`);
      this.mapSpecs.push({
        name,
        type: mapTypeName(l.bpf_map__type(m)),
        keySize: l.bpf_map__key_size(m),
        valueSize: l.bpf_map__value_size(m),
        maxEntries: l.bpf_map__max_entries(m),
        flags: l.bpf_map__map_flags(m),
      });
    }
  }

  private check(ret: number, what: string): void {
    if (ret < 0) throw loaderError(`${this.name}: ${what}`, -ret);
  }

  private mapPtr(name: string): bigint {
    const l = lib();
    for (let m = l.bpf_object__next_map(this.obj, null) as bigint | null; m !== null; m = l.bpf_object__next_map(this.obj, m)) {
      if (l.bpf_map__name(m) === name) return m;
    }
    throw new LoaderError('E_NOENT', ENOENT, `object '${this.name}' has no map '${name}' (maps: ${this.mapSpecs.map((s) => s.name).join(', ')})`);
  }

  private assertOpen(what: string): void {
    if (this.state !== 'open') throw new LoaderError('E_STATE', EINVAL, `${what}: object '${this.name}' is ${this.state}, not open (call it before load())`);
  }

  get programs(): readonly ProgramSpec[] {
    return this.progSpecs;
  }

  get maps(): readonly MapSpec[] {
    return this.mapSpecs;
  }

  /**
   * Use an existing map (e.g. a pinned one) instead of creating `mapName`. LoaderError E_INVAL
   * when its type, key/value size or max_entries differ from the object's definition.
   */
  reuseMap(mapName: string, map: BpfMap): void {
    this.assertOpen(`reuseMap('${mapName}')`);
    const spec = this.mapSpecs.find((s) => s.name === mapName);
    const ptr = this.mapPtr(mapName);
    if (spec) {
      const diffs: string[] = [];
      if (spec.type !== map.type) diffs.push(`type ${map.type} != ${spec.type}`);
      if (spec.keySize !== map.keySize) diffs.push(`key size ${map.keySize} != ${spec.keySize}`);
      if (spec.valueSize !== map.valueSize) diffs.push(`value size ${map.valueSize} != ${spec.valueSize}`);
      if (spec.maxEntries !== map.maxEntries) diffs.push(`max_entries ${map.maxEntries} != ${spec.maxEntries}`);
      if (diffs.length) throw new LoaderError('E_INVAL', EINVAL, `cannot reuse map '${map.name}' as '${mapName}': ${diffs.join(', ')}`);
    }
    this.check(lib().bpf_map__reuse_fd(ptr, map.fd), `reuse map '${mapName}'`);
    this.reused.set(mapName, map);
  }

  /** Resize a map before load. */
  setMapMaxEntries(mapName: string, n: number): void {
    this.assertOpen(`setMapMaxEntries('${mapName}')`);
    this.check(lib().bpf_map__set_max_entries(this.mapPtr(mapName), n), `set max_entries of map '${mapName}'`);
    this.maxEntries.set(mapName, n);
    const spec = this.mapSpecs.find((s) => s.name === mapName);
    if (spec) spec.maxEntries = n;
  }

  /**
   * Create the maps and load the programs. VerifierError when a program is rejected (with the
   * full log), LoaderError otherwise. On failure every map and program created so far is gone
   * and the object is unusable.
   */
  load(): void {
    this.assertOpen('load()');
    const l = lib();
    for (let logSize = this.logBuf!.length; ; logSize *= 4) {
      clearLibbpfMessages();
      const ret = l.bpf_object__load(this.obj) as number;
      if (ret === 0) {
        this.adopt();
        return;
      }
      const errno = -ret;
      const log = this.logText();
      const messages = libbpfMessages();
      l.bpf_object__close(this.obj);
      this.obj = null;
      // The kernel says ENOSPC when the log did not fit: only a bigger buffer shows the start.
      const truncated = errno === ENOSPC || log.length >= this.logBuf!.length - 1;
      if (log && truncated && logSize * 4 <= LOG_MAX) {
        try {
          this.reopen(logSize * 4);
        } catch (err) {
          this.state = 'failed';
          throw err;
        }
        continue;
      }
      this.state = 'failed';
      this.logBuf = null;
      if (log) {
        const lines = log.split('\n');
        while (lines.length && !lines[lines.length - 1]!.trim()) lines.pop();
        throw new VerifierError(failingProgram(messages) ?? this.name, errno, lines, truncated);
      }
      throw loaderError(`load BPF object '${this.name}'`, errno);
    }
  }

  private logText(): string {
    const b = this.logBuf!;
    const end = b.indexOf(0);
    return b.toString('utf8', 0, end < 0 ? b.length : end);
  }

  private adopt(): void {
    const l = lib();
    try {
      for (let p = l.bpf_object__next_program(this.obj, null) as bigint | null; p !== null; p = l.bpf_object__next_program(this.obj, p)) {
        const fd = l.bpf_program__fd(p) as number;
        if (fd < 0) continue; // autoload disabled
        const name = l.bpf_program__name(p) as string;
        const attach = attachTypeName(l.bpf_program__expected_attach_type(p));
        this.livePrograms.set(name, new BpfProgram(dupFd(fd, `program ${name}`), { name, expectedAttachType: attach }));
      }
      for (let m = l.bpf_object__next_map(this.obj, null) as bigint | null; m !== null; m = l.bpf_object__next_map(this.obj, m)) {
        const fd = l.bpf_map__fd(m) as number;
        if (fd < 0) continue;
        const name = l.bpf_map__name(m) as string;
        this.liveMaps.set(name, new BpfMap(dupFd(fd, `map ${name}`), { name }));
      }
    } catch (err) {
      this.releaseLive();
      l.bpf_object__close(this.obj);
      this.obj = null;
      this.state = 'failed';
      throw err;
    }
    // Our dups keep everything alive; libbpf's copies (and the ELF) are no longer needed.
    l.bpf_object__close(this.obj);
    this.obj = null;
    this.logBuf = null;
    this.state = 'loaded';
  }

  /** A loaded program. LoaderError E_NOENT for an unknown name, E_STATE before load(). */
  program(name: string): BpfProgram {
    if (this.state !== 'loaded') throw new LoaderError('E_STATE', EINVAL, `program('${name}'): object '${this.name}' is ${this.state}, not loaded`);
    const p = this.livePrograms.get(name);
    if (!p) throw new LoaderError('E_NOENT', ENOENT, `object '${this.name}' has no program '${name}' (programs: ${[...this.livePrograms.keys()].join(', ')})`);
    return p;
  }

  /** A loaded map. LoaderError E_NOENT for an unknown name, E_STATE before load(). */
  map(name: string): BpfMap {
    if (this.state !== 'loaded') throw new LoaderError('E_STATE', EINVAL, `map('${name}'): object '${this.name}' is ${this.state}, not loaded`);
    const m = this.liveMaps.get(name);
    if (!m) throw new LoaderError('E_NOENT', ENOENT, `object '${this.name}' has no map '${name}' (maps: ${[...this.liveMaps.keys()].join(', ')})`);
    return m;
  }

  private releaseLive(): void {
    for (const p of this.livePrograms.values()) p.close();
    for (const m of this.liveMaps.values()) m.close();
    this.livePrograms.clear();
    this.liveMaps.clear();
  }

  /** Idempotent. Maps reused from elsewhere stay open: their owner closes them. */
  close(): void {
    if (this.state === 'closed') return;
    if (this.obj !== null) lib().bpf_object__close(this.obj);
    this.obj = null;
    this.logBuf = null;
    this.releaseLive();
    this.state = 'closed';
  }
}

function checkElf(head: Uint8Array, what: string): void {
  if (head.length < 4 || !ELF_MAGIC.equals(head)) {
    throw new LoaderError('E_ELF', 4001, `open BPF object ${what}: not an ELF file (compile it with clang -target bpf)`);
  }
}

/** libbpf names the program that failed: "prog 'x': BPF program load failed: ...". */
function failingProgram(messages: string[]): string | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = /prog '([^']+)': (BPF program load failed|failed to load)/.exec(messages[i]!);
    if (m) return m[1];
  }
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = /prog '([^']+)'/.exec(messages[i]!);
    if (m) return m[1];
  }
  return undefined;
}
