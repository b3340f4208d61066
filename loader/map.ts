/**
 * BpfMap: one live kernel map, held by fd. Keys and values are raw bytes (Uint8Array); typed
 * access lives in src/runtime on top of src/schema codecs.
 *
 * Per-CPU maps: a value as seen from userspace is one slot per possible CPU, each slot valueSize
 * rounded up to 8 bytes, so `lookup` returns and `update` expects valueSize8 * possibleCpus bytes.
 */
import { type BtfType, mapBtf } from './btf.ts';
import { check, EINVAL, ENOENT, ENOSPC, ENOTSUPP, EOPNOTSUPP, LoaderError, loaderError } from './errors.ts';
import { closeFd, dupFd, type MapInfo, mapInfo } from './info.ts';
import { MapHotPath } from './map-hot.ts';
import { lib } from './libbpf.ts';
import { openPinnedFd, pinFd } from './pin.ts';
import { typeValue } from './types.ts';

const PERCPU = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);
const FD_VALUED = new Set(['sockmap', 'sockhash', 'devmap', 'devmap_hash', 'xskmap', 'cpumap', 'prog_array', 'array_of_maps', 'hash_of_maps']);
const BATCH_OPTS_SIZE = 24;

/**
 * dst.set(src) for the few bytes of a key or value: TypedArray#set leaves optimised code for a
 * builtin, a loop over up to 32 bytes stays inline (about 20 ns less per copy).
 */
function copyBytes(dst: Uint8Array, src: Uint8Array, n: number): void {
  if (n > 32) dst.set(src);
  else for (let i = 0; i < n; i++) dst[i] = src[i]!;
}

let cpus: number | undefined;
export function possibleCpus(): number {
  cpus ??= check(lib().libbpf_num_possible_cpus(), 'libbpf_num_possible_cpus');
  return cpus;
}

function batchOpts(): Buffer {
  const b = Buffer.alloc(BATCH_OPTS_SIZE);
  b.writeBigUInt64LE(BigInt(BATCH_OPTS_SIZE), 0);
  return b;
}

function unsupported(errno: number): boolean {
  return errno === EINVAL || errno === ENOTSUPP || errno === EOPNOTSUPP;
}

export class BpfMap {
  readonly fd: number;
  readonly name: string;
  readonly type: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly id: number;
  readonly isPerCpu: boolean;
  readonly possibleCpus: number;
  /** Bytes of a value buffer as userspace sees it (all CPUs for per-CPU maps). */
  readonly valueBufSize: number;
  private readonly info: MapInfo;
  private btfCache: { key: BtfType; value: BtfType } | null | undefined;
  private closed = false;
  // lookup, lookupInto and update copy the key (and value) into a hot path of the map's own and
  // make its syscall: a copy of a few bytes costs far less than koffi passing two buffers as
  // pointers to libbpf (see map-hot.ts).
  private ownHot: MapHotPath | undefined;

  /**
   * Wrap an fd the caller hands over (the map then owns and closes it). `name` overrides the
   * kernel's name, which is cut at 15 characters.
   */
  constructor(fd: number, opts: { name?: string } = {}) {
    this.fd = fd;
    this.info = mapInfo(fd);
    this.name = opts.name ?? this.info.name;
    this.type = this.info.type;
    this.keySize = this.info.keySize;
    this.valueSize = this.info.valueSize;
    this.maxEntries = this.info.maxEntries;
    this.flags = this.info.flags;
    this.id = this.info.id;
    this.isPerCpu = PERCPU.has(this.type);
    this.possibleCpus = possibleCpus();
    this.valueBufSize = this.isPerCpu ? Math.ceil(this.valueSize / 8) * 8 * this.possibleCpus : this.valueSize;
  }

  /** Open a pinned map. LoaderError E_NOENT when nothing is pinned there, E_INVAL if it is not a map. */
  static openPinned(path: string): BpfMap {
    return new BpfMap(openPinnedFd(path, 'map'));
  }

  /** Adopt `fd` (the map then owns and closes it); with `dup`, a duplicate of it, leaving `fd` the caller's. */
  static fromFd(fd: number, opts: { dup?: boolean; name?: string } = {}): BpfMap {
    return new BpfMap(opts.dup ? dupFd(fd, `map fd ${fd}`) : fd, { name: opts.name });
  }

  /** Same as openPinned: the constructor pattern shared with BpfProgram and BpfLink. */
  static fromPin(path: string): BpfMap {
    return BpfMap.openPinned(path);
  }

  /** Create a map from its spec (a MapSpec of an object, or by hand). */
  static fromSpec(spec: { type: string; name: string; keySize: number; valueSize: number; maxEntries: number; flags?: number }): BpfMap {
    return BpfMap.create(spec);
  }

  /** Open a map by kernel id. LoaderError E_NOENT when no such map exists. */
  static fromId(id: number): BpfMap {
    return new BpfMap(check(lib().bpf_map_get_fd_by_id(id), `open map id ${id}`));
  }

  /** Create a map without an object file. LoaderError E_INVAL for an unknown type or bad sizes. */
  static create(o: { type: string; name: string; keySize: number; valueSize: number; maxEntries: number; flags?: number }): BpfMap {
    const type = typeValue('map', o.type);
    if (type === undefined) throw new LoaderError('E_INVAL', EINVAL, `unknown map type '${o.type}'`);
    let opts: Buffer | null = null;
    if (o.flags) {
      // struct bpf_map_create_opts: sz@0, btf_fd@8 ... map_flags@28, map_extra@32, numa@40, ifindex@44
      opts = Buffer.alloc(48);
      opts.writeBigUInt64LE(48n, 0);
      opts.writeUInt32LE(o.flags, 28);
    }
    const fd = lib().bpf_map_create(type, o.name.slice(0, 15), o.keySize, o.valueSize, o.maxEntries, opts) as number;
    return new BpfMap(check(fd, `create ${o.type} map '${o.name}'`));
  }

  /** Decoded key/value types from the map's BTF, when it was created with BTF (maps from .bpf.o). */
  get btf(): { key: BtfType; value: BtfType } | undefined {
    if (this.btfCache === undefined) {
      this.btfCache = mapBtf(this.info.btfId, this.info.btfKeyTypeId, this.info.btfValueTypeId) ?? null;
    }
    return this.btfCache ?? undefined;
  }

  private checkKey(key: Uint8Array): void {
    if (key.length !== this.keySize) throw new LoaderError('E_INVAL', EINVAL, `map '${this.name}': key is ${key.length} bytes, expected ${this.keySize}`);
  }

  private checkValue(value: Uint8Array): void {
    if (value.length !== this.valueBufSize) {
      const what = this.isPerCpu ? ` (${Math.ceil(this.valueSize / 8) * 8} x ${this.possibleCpus} possible CPUs)` : '';
      throw new LoaderError('E_INVAL', EINVAL, `map '${this.name}': value is ${value.length} bytes, expected ${this.valueBufSize}${what}`);
    }
  }

  private ops(): MapHotPath {
    this.ownHot ??= new MapHotPath(this, this.keySize, this.valueBufSize);
    return this.ownHot;
  }

  /**
   * @internal The map's own key and value buffers, for typed maps that encode straight into them
   * and then call lookupOwn/updateOwn (nothing allocated per op). Valid until the next op.
   */
  ownBuffers(): { key: Uint8Array; value: Uint8Array } {
    return this.ops();
  }

  /** @internal lookup() of the key in ownBuffers().key, the value left in ownBuffers().value. */
  lookupOwn(): boolean {
    const errno = this.ops().lookupErrno();
    if (errno === 0) return true;
    if (errno === ENOENT) return false;
    if (errno === ENOSPC && this.type.startsWith('sock')) {
      // Userspace lookups in sockmaps return the socket cookie, a u64: 4-byte values cannot hold it.
      throw loaderError(`lookup in map '${this.name}'`, ENOSPC, {
        code: 'E_NOTSUPP',
        hint: `${this.type} lookups from userspace need value_size 8 (they return the socket cookie); use nextKey() to list keys`,
      });
    }
    throw loaderError(`lookup in map '${this.name}'`, errno);
  }

  /** @internal update() with the key and value in ownBuffers(). */
  updateOwn(flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    const errno = this.ops().updateErrno(flags);
    if (errno !== 0) throw loaderError(`update map '${this.name}'`, errno);
  }

  /** The value under `key`, or null when absent. */
  lookup(key: Uint8Array): Uint8Array | null {
    this.checkKey(key);
    const h = this.ops();
    copyBytes(h.key, key, this.keySize);
    if (!this.lookupOwn()) return null;
    const value = Buffer.allocUnsafe(this.valueBufSize);
    // (The hot path's buffers are at least 1 byte, for maps without values too.)
    copyBytes(value, h.value, this.valueBufSize);
    return value;
  }

  /** LoaderError E_EXIST ('noexist' and present), E_NOENT ('exist' and absent), E_LOADER/E2BIG (full). */
  update(key: Uint8Array, value: Uint8Array, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    this.checkKey(key);
    this.checkValue(value);
    const h = this.ops();
    copyBytes(h.key, key, this.keySize);
    copyBytes(h.value, value, this.valueBufSize);
    this.updateOwn(flags);
  }

  /** Store a file descriptor (socket, program, map, ...) in a map whose values are fds. */
  updateFd(key: Uint8Array, fd: number): void {
    this.checkKey(key);
    if (!FD_VALUED.has(this.type)) throw new LoaderError('E_INVAL', EINVAL, `map '${this.name}' (${this.type}) does not hold file descriptors`);
    const value = Buffer.alloc(this.valueSize);
    if (this.valueSize >= 8) value.writeBigUInt64LE(BigInt(fd), 0);
    else value.writeUInt32LE(fd, 0);
    const ret = lib().bpf_map_update_elem(this.fd, key, value, 0n) as number;
    if (ret < 0) {
      const hint = ret === -EOPNOTSUPP && this.type.startsWith('sock') ? 'only established (or listening) TCP sockets go into a sockmap' : undefined;
      throw loaderError(`insert fd ${fd} into map '${this.name}'`, -ret, { hint });
    }
  }

  /** Returns false when the key was absent. */
  delete(key: Uint8Array): boolean {
    this.checkKey(key);
    const ret = lib().bpf_map_delete_elem(this.fd, key) as number;
    if (ret === 0) return true;
    if (ret === -ENOENT) return false;
    throw loaderError(`delete from map '${this.name}'`, -ret);
  }

  /** The key after `key` (the first key for null), or null at the end. */
  nextKey(key: Uint8Array | null): Uint8Array | null {
    if (key) this.checkKey(key);
    const next = Buffer.allocUnsafe(this.keySize);
    const ret = lib().bpf_map_get_next_key(this.fd, key, next) as number;
    if (ret === 0) return next;
    if (ret === -ENOENT) return null;
    throw loaderError(`next key in map '${this.name}'`, -ret);
  }

  /**
   * Every entry, read `chunk` entries per syscall (bpf_map_lookup_batch, kernel 5.6+).
   * Returns null when the map type has no batch support (sockmap, sockhash, ...).
   */
  lookupBatch(opts: { chunk?: number } = {}): { keys: Uint8Array[]; values: Uint8Array[] } | null {
    let chunk = Math.max(1, Math.min(opts.chunk ?? 4096, this.maxEntries || 1));
    const keys: Uint8Array[] = [];
    const values: Uint8Array[] = [];
    // The batch cursor is opaque: a bucket index for hashes, an index for arrays. 8 bytes covers both.
    const cursorSize = Math.max(8, this.keySize);
    let inBatch: Buffer | null = null;
    const outBatch = Buffer.alloc(cursorSize);
    const count = new Uint32Array(1);
    const o = batchOpts();
    for (;;) {
      const keyBuf = Buffer.allocUnsafe(chunk * this.keySize);
      const valBuf = Buffer.allocUnsafe(chunk * this.valueBufSize);
      count[0] = chunk;
      const ret = lib().bpf_map_lookup_batch(this.fd, inBatch, outBatch, keyBuf, valBuf, count, o) as number;
      if (ret < 0 && ret !== -ENOENT) {
        if (ret === -ENOSPC && count[0] === 0) {
          // A hash bucket holds more entries than fit in one chunk: grow and retry this step.
          chunk *= 2;
          continue;
        }
        if (inBatch === null && unsupported(-ret)) return null;
        throw loaderError(`batch lookup in map '${this.name}'`, -ret);
      }
      const n = count[0]!;
      // Plain Uint8Array views: 4x cheaper to make than Buffer.subarray, which dominates a dump.
      const kab = keyBuf.buffer;
      const vab = valBuf.buffer;
      const ks = this.keySize;
      const vs = this.valueBufSize;
      for (let i = 0, ko = keyBuf.byteOffset, vo = valBuf.byteOffset; i < n; i++, ko += ks, vo += vs) {
        keys.push(new Uint8Array(kab, ko, ks));
        values.push(new Uint8Array(vab, vo, vs));
      }
      if (ret === -ENOENT) break;
      inBatch ??= Buffer.alloc(cursorSize);
      outBatch.copy(inBatch);
    }
    return { keys, values };
  }

  /** Write many entries in one syscall; falls back to one update per entry where unsupported. */
  updateBatch(keys: Uint8Array[], values: Uint8Array[]): void {
    if (keys.length !== values.length) throw new LoaderError('E_INVAL', EINVAL, `updateBatch: ${keys.length} keys but ${values.length} values`);
    if (!keys.length) return;
    const keyBuf = Buffer.allocUnsafe(keys.length * this.keySize);
    const valBuf = Buffer.allocUnsafe(keys.length * this.valueBufSize);
    keys.forEach((k, i) => {
      this.checkKey(k);
      keyBuf.set(k, i * this.keySize);
    });
    values.forEach((v, i) => {
      this.checkValue(v);
      valBuf.set(v, i * this.valueBufSize);
    });
    const count = new Uint32Array([keys.length]);
    const ret = lib().bpf_map_update_batch(this.fd, keyBuf, valBuf, count, batchOpts()) as number;
    if (ret === 0) return;
    if (unsupported(-ret) && count[0] === 0) {
      for (let i = 0; i < keys.length; i++) this.update(keys[i]!, values[i]!);
      return;
    }
    throw loaderError(`batch update of map '${this.name}' (${count[0]} of ${keys.length} written)`, -ret);
  }

  /** Delete many entries in one syscall; LoaderError E_NOENT if one was absent (earlier ones are gone). */
  deleteBatch(keys: Uint8Array[]): void {
    if (!keys.length) return;
    const keyBuf = Buffer.allocUnsafe(keys.length * this.keySize);
    keys.forEach((k, i) => {
      this.checkKey(k);
      keyBuf.set(k, i * this.keySize);
    });
    const count = new Uint32Array([keys.length]);
    const ret = lib().bpf_map_delete_batch(this.fd, keyBuf, count, batchOpts()) as number;
    if (ret === 0) return;
    if (unsupported(-ret) && count[0] === 0) {
      for (const k of keys) this.delete(k);
      return;
    }
    throw loaderError(`batch delete from map '${this.name}' (${count[0]} of ${keys.length} deleted)`, -ret);
  }

  /**
   * The allocation-free path for hot loops: reusable key and value buffers and one syscall per
   * operation (`const h = map.hot(); h.key.set(k); if (h.lookup()) use(h.value)`). The path stays
   * valid while the map is open.
   */
  hot(): MapHotPath {
    return new MapHotPath(this, this.keySize, this.valueBufSize);
  }

  /**
   * lookup() into a buffer the caller owns (valueBufSize bytes): nothing allocated. False when
   * absent.
   */
  lookupInto(key: Uint8Array, value: Uint8Array): boolean {
    // The kernel writes valueBufSize bytes: a shorter buffer must never reach it.
    if (key.length !== this.keySize || value.length < this.valueBufSize) {
      this.checkKey(key);
      throw new LoaderError('E_INVAL', EINVAL, `map '${this.name}': value buffer is ${value.length} bytes, expected ${this.valueBufSize}`);
    }
    const h = this.ops();
    copyBytes(h.key, key, this.keySize);
    if (!this.lookupOwn()) return false;
    copyBytes(value, h.value, this.valueBufSize);
    return true;
  }

  /** Pin at `path` on bpffs (parent directories are created). */
  pin(path: string): void {
    pinFd(this.fd, path, `map '${this.name}'`);
  }

  /** Idempotent. The kernel frees the map when no fd, pin or program holds it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFd(this.fd);
  }
}

