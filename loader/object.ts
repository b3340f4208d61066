/**
 * BpfObject: one ELF object (.bpf.o). Before load() it is a spec: its programs and maps can be
 * inspected and adjusted (reuse a pinned map, resize a map). load() creates everything in the
 * kernel at once; on any failure nothing it created survives. After load the object owns one fd
 * per program and map (libbpf's own object is freed right away), and close() releases them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type BtfType, btfTypeOf, datasecOf, type GlobalVar } from './btf.ts';
import { EINVAL, ENOENT, ENOSPC, LoaderError, loaderError, VerifierError } from './errors.ts';
import { dupFd } from './info.ts';
import { addressOf, clearLibbpfMessages, lastErrno, lib, libbpfMessages, viewOf } from './libbpf.ts';
import { BpfMap } from './map.ts';
import { BPF_F_MMAPABLE, type MappedArray, mmapArray } from './map-mmap.ts';
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
  /** libbpf's own global-data map (`.bss`, `.data`, `.rodata`, `.rodata.str1.1`, `.kconfig`). */
  internal?: boolean;
  /** For internal maps: the ELF section it holds, e.g. '.bss' (the map name is '<object>.bss'). */
  section?: string;
  /** Declared `__uint(pinning, LIBBPF_PIN_BY_NAME)`: libbpf pins (or reuses) it at this path on load. */
  pinPath?: string;
  /** Key and value types from the object's BTF (`__type(key, ...)`), when the map declares them. */
  btf?: { key?: BtfType; value?: BtfType };
}

/** A global variable (`.bss`, `.data`, `.rodata` ...) with the map that holds it. */
export interface GlobalSpec extends GlobalVar {
  /** The internal map, e.g. 'prog.rodata'. */
  mapName: string;
  /** `const volatile`: only writable before load (the kernel freezes .rodata). */
  readonly: boolean;
}

/** A value for a global: integers by number/bigint/boolean, char arrays by string, anything by its bytes. */
export type GlobalValue = number | bigint | boolean | string | Uint8Array;

export interface OpenOptions {
  name?: string;
  /**
   * Where maps declared with LIBBPF_PIN_BY_NAME are pinned (libbpf's pin_root_path): libbpf
   * reuses a compatible map already pinned there, or pins the new one there, at load.
   */
  pinRoot?: string;
}

const INTERNAL_SECTION = /^.*?(\.(?:rodata|data|bss|kconfig)(?:\..*)?)$/;

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
  private pinRootBuf: Buffer | null;
  private globalSpecs: GlobalSpec[] = [];
  /** Values given to setGlobal() before load, rewritten into libbpf's image when the object is reopened. */
  private readonly pendingGlobals = new Map<string, Uint8Array>();
  private readonly aliases = new Map<string, string>();
  private readonly mapped = new Map<string, MappedArray>();
  private readonly pinnedByLibbpf = new Map<string, string>();
  private readonly reused = new Map<string, BpfMap>();
  private readonly maxEntries = new Map<string, number>();
  private progSpecs: ProgramSpec[] = [];
  private mapSpecs: MapSpec[] = [];
  private state: 'open' | 'loaded' | 'failed' | 'closed' = 'open';
  private readonly livePrograms = new Map<string, BpfProgram>();
  private readonly liveMaps = new Map<string, BpfMap>();

  private constructor(source: Source, name: string, pinRoot?: string) {
    this.source = source;
    this.name = name;
    this.nameBuf = Buffer.from(`${name}\0`);
    this.pinRootBuf = pinRoot ? Buffer.from(`${pinRoot}\0`) : null;
    this.reopen(LOG_START);
  }

  /** Open an ELF file. LoaderError E_NOENT when it does not exist, E_ELF when it is not a BPF object. */
  static open(path: string, opts: OpenOptions = {}): BpfObject {
    if (!existsSync(path)) throw loaderError(`open BPF object ${path}`, ENOENT, { code: 'E_NOENT', hint: 'no such file' });
    checkElf(readFileSync(path).subarray(0, 4), path);
    // Objects from the compile cache are <name>-<hash16>.bpf.o: the hash is not part of the name.
    return new BpfObject({ kind: 'file', path }, opts.name ?? basename(path).replace(/\.(bpf\.)?o$/, '').replace(/-[0-9a-f]{16}$/, ''), opts.pinRoot);
  }

  /** The live-object pattern: open the object a spec was read from (see spec.ts). */
  static fromSpec(spec: { name: string; path?: string }, opts: Omit<OpenOptions, 'name'> = {}): BpfObject {
    if (!spec.path) throw new LoaderError('E_INVAL', EINVAL, `spec '${spec.name}' was read from memory: open it with BpfObject.openBuffer`);
    return BpfObject.open(spec.path, { ...opts, name: spec.name });
  }

  /** Open an ELF image held in memory. LoaderError E_ELF when it is not a BPF object. */
  static openBuffer(elf: Uint8Array, name: string, opts: Omit<OpenOptions, 'name'> = {}): BpfObject {
    checkElf(elf.subarray(0, 4), name);
    return new BpfObject({ kind: 'mem', bytes: Buffer.from(elf) }, name, opts.pinRoot);
  }

  private reopen(logSize: number): void {
    const l = lib();
    this.logBuf = Buffer.alloc(logSize);
    const o = Buffer.alloc(OPEN_OPTS_SIZE);
    o.writeBigUInt64LE(BigInt(OPEN_OPTS_SIZE), 0);
    o.writeBigUInt64LE(addressOf(this.nameBuf), 8);
    if (this.pinRootBuf) o.writeBigUInt64LE(addressOf(this.pinRootBuf), 24);
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
      const spec: MapSpec = {
        name,
        type: mapTypeName(l.bpf_map__type(m)),
        keySize: l.bpf_map__key_size(m),
        valueSize: l.bpf_map__value_size(m),
        maxEntries: l.bpf_map__max_entries(m),
        flags: l.bpf_map__map_flags(m),
      };
      const pinPath = l.bpf_map__pin_path(m) as string | null;
      if (pinPath) spec.pinPath = pinPath;
      const objBtf = l.bpf_object__btf(obj) as bigint | null;
      const keyId = l.bpf_map__btf_key_type_id(m) as number;
      const valueId = l.bpf_map__btf_value_type_id(m) as number;
      if (objBtf !== null && (keyId || valueId)) {
        spec.btf = {};
        if (keyId) spec.btf.key = btfTypeOf(objBtf, keyId);
        if (valueId) spec.btf.value = btfTypeOf(objBtf, valueId);
      }
      if (l.bpf_map__is_internal(m)) {
        spec.internal = true;
        const section = INTERNAL_SECTION.exec(name)?.[1];
        if (section) {
          spec.section = section;
          if (!this.aliases.has(section)) this.aliases.set(section, name);
          this.readGlobals(obj, spec, section);
        }
      }
      this.mapSpecs.push(spec);
    }
    for (const [name, bytes] of this.pendingGlobals) this.initialImage(this.globalSpec(name)).set(bytes, this.globalSpec(name).offset);
  }

  private readGlobals(obj: bigint, map: MapSpec, section: string): void {
    const btf = lib().bpf_object__btf(obj) as bigint | null;
    if (btf === null) return;
    const sec = datasecOf(btf, section);
    if (!sec) return;
    const readonly = section.startsWith('.rodata') || section === '.kconfig';
    for (const v of sec.vars) if (!this.globalSpecs.some((g) => g.name === v.name)) this.globalSpecs.push({ ...v, mapName: map.name, readonly });
  }

  /** libbpf's copy of a global-data map's initial contents (writable until load). */
  private initialImage(g: GlobalSpec): Uint8Array {
    const size = new BigUint64Array(1);
    const p = lib().bpf_map__initial_value(this.mapPtr(g.mapName), size) as bigint | null;
    if (p === null) throw new LoaderError('E_INVAL', EINVAL, `object '${this.name}': map '${g.mapName}' has no initial data to hold global '${g.name}'`);
    return viewOf(p, Number(size[0]));
  }

  private globalSpec(name: string): GlobalSpec {
    const g = this.globalSpecs.find((x) => x.name === name);
    if (!g) {
      const names = this.globalSpecs.map((x) => x.name);
      throw new LoaderError('E_NOENT', ENOENT, `object '${this.name}' has no global variable '${name}' (globals: ${names.join(', ') || 'none'})`);
    }
    return g;
  }

  /** Global variables in the object's .bss/.data/.rodata sections (from its BTF), inspectable before load. */
  get globals(): readonly GlobalSpec[] {
    return this.globalSpecs;
  }

  /**
   * Set a global variable by name. Before load it sets the initial value (the way to configure
   * `const volatile` globals); after load it writes the live value (memory-mapped where the map
   * allows). LoaderError E_NOENT for an unknown name, E_INVAL for a value of the wrong size or
   * range, E_RDONLY for a .rodata global after load (the kernel froze it).
   */
  setGlobal(name: string, value: GlobalValue): void {
    const g = this.globalSpec(name);
    const bytes = encodeGlobal(g, value);
    if (this.state === 'open') {
      this.initialImage(g).set(bytes, g.offset);
      this.pendingGlobals.set(name, bytes);
      return;
    }
    if (this.state !== 'loaded') throw new LoaderError('E_STATE', EINVAL, `setGlobal('${name}'): object '${this.name}' is ${this.state}`);
    if (g.readonly)
      throw new LoaderError('E_RDONLY', 1, `global '${name}' is in ${g.section}, frozen read-only after load: set it before load (bpfctl load --set ${name}=...)`);
    const m = this.map(g.mapName);
    const mm = this.mappedFor(m);
    if (mm) {
      mm.bytes.set(bytes, g.offset);
      return;
    }
    const key = new Uint8Array(4);
    const cur = m.lookup(key) ?? new Uint8Array(m.valueSize);
    cur.set(bytes, g.offset);
    m.update(key, cur);
  }

  /** A global's current value (initial before load, live after): ints as number (bigint for 8 bytes), char arrays as strings, else bytes. */
  global(name: string): number | bigint | string | Uint8Array {
    return decodeGlobal(this.globalSpec(name), this.globalBytes(name));
  }

  /** A global's bytes (a copy). */
  globalBytes(name: string): Uint8Array {
    const g = this.globalSpec(name);
    if (this.state === 'open') return this.initialImage(g).slice(g.offset, g.offset + g.size);
    if (this.state !== 'loaded') throw new LoaderError('E_STATE', EINVAL, `global('${name}'): object '${this.name}' is ${this.state}`);
    const m = this.map(g.mapName);
    const mm = this.mappedFor(m);
    const value = mm ? mm.bytes : m.lookup(new Uint8Array(4));
    if (!value) throw new LoaderError('E_NOENT', ENOENT, `map '${m.name}' holds no value for global '${name}'`);
    return value.slice(g.offset, g.offset + g.size);
  }

  private mappedFor(m: BpfMap): MappedArray | undefined {
    if ((m.flags & BPF_F_MMAPABLE) === 0) return undefined;
    let mm = this.mapped.get(m.name);
    if (!mm) {
      // .rodata is frozen: the kernel allows only a read-only mapping of it.
      const rdonly = this.globalSpecs.some((g) => g.mapName === m.name && g.readonly);
      mm = mmapArray(m, { writable: !rdonly });
      this.mapped.set(m.name, mm);
    }
    return mm;
  }

  /** Maps libbpf pinned itself during load (LIBBPF_PIN_BY_NAME), by map name: the pin path. */
  get libbpfPins(): ReadonlyMap<string, string> {
    return this.pinnedByLibbpf;
  }

  private check(ret: number, what: string): void {
    if (ret < 0) throw loaderError(`${this.name}: ${what}`, -ret);
  }

  private mapPtr(name: string): bigint {
    name = this.aliases.get(name) ?? name;
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
        const pin = l.bpf_map__pin_path(m) as string | null;
        if (pin && l.bpf_map__is_pinned(m)) this.pinnedByLibbpf.set(name, pin);
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
    clearLibbpfMessages();
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
    const m = this.liveMaps.get(name) ?? this.liveMaps.get(this.aliases.get(name) ?? '');
    if (!m) throw new LoaderError('E_NOENT', ENOENT, `object '${this.name}' has no map '${name}' (maps: ${[...this.liveMaps.keys()].join(', ')})`);
    return m;
  }

  private releaseLive(): void {
    for (const mm of this.mapped.values()) mm.unmap();
    this.mapped.clear();
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

const U = (bits: number) => (1n << BigInt(bits)) - 1n;

function isChars(t: BtfType): boolean {
  return t.kind === 'array' && t.elem.kind === 'int' && t.elem.size === 1;
}

function encodeGlobal(g: GlobalSpec, value: GlobalValue): Uint8Array {
  const bad = (why: string) => new LoaderError('E_INVAL', EINVAL, `global '${g.name}' (${g.section}, ${g.size} bytes): ${why}`);
  if (value instanceof Uint8Array) {
    if (value.length !== g.size) throw bad(`got ${value.length} bytes`);
    return value;
  }
  const t = g.type;
  if (typeof value === 'string') {
    if (!isChars(t)) throw bad('a string needs a char array');
    const b = Buffer.from(value, 'utf8');
    if (b.length > g.size) throw bad(`"${value}" is ${b.length} bytes`);
    const out = new Uint8Array(g.size);
    out.set(b);
    return out;
  }
  if (t.kind !== 'int' && t.kind !== 'enum' && t.kind !== 'ptr') throw bad(`a ${t.kind} needs its ${g.size} bytes (Uint8Array)`);
  const signed = t.kind === 'int' && t.signed;
  if (typeof value === 'number' && !Number.isInteger(value)) throw bad(`${value} is not an integer`);
  const v = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  const bits = g.size * 8;
  const lo = signed ? -(1n << BigInt(bits - 1)) : 0n;
  const hi = signed ? U(bits - 1) : U(bits);
  if (v < lo || v > hi) throw bad(`${value} is outside ${lo}..${hi}`);
  const out = new Uint8Array(g.size);
  let u = BigInt.asUintN(bits, v);
  for (let i = 0; i < g.size; i++, u >>= 8n) out[i] = Number(u & 0xffn);
  return out;
}

function decodeGlobal(g: GlobalSpec, b: Uint8Array): number | bigint | string | Uint8Array {
  const t = g.type;
  if (isChars(t)) {
    const end = b.indexOf(0);
    return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8');
  }
  if ((t.kind === 'int' || t.kind === 'enum') && [1, 2, 4, 8].includes(g.size)) {
    let u = 0n;
    for (let i = g.size - 1; i >= 0; i--) u = (u << 8n) | BigInt(b[i]!);
    const v = t.kind === 'int' && t.signed ? BigInt.asIntN(g.size * 8, u) : u;
    return g.size === 8 ? v : Number(v);
  }
  return b;
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
