/**
 * TypedMap: a kernel map read and written through schema codecs, so callers deal in numbers,
 * bigints and objects instead of byte buffers. Every value is encoded (and range-checked) before
 * the syscall, and the codecs are checked against the map's sizes and BTF when the map is
 * wrapped, so a schema that disagrees with the C side fails once, early, with the field named.
 */
import { type BpfMap, LoaderError } from '../../loader/index.ts';
import { bytes, checkAgainstBtf, type Codec, codecFromBtf, encode, SchemaError } from '../schema/index.ts';
import { sumValues } from './typed-map-sum.ts';

export interface TypedMapOptions {
  /** Check the codecs against the map's BTF (default true; only maps with BTF are checked). */
  checkBtf?: boolean;
}

// Above this share of max_entries, one batch dump beats per-key lookups (~0.3 us per entry in a
// batch vs ~1.9 us per lookup syscall from Node).
const DUMP_RATIO = 1 / 6;

function hexKey(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** buf.fill(0), inline for the few bytes of a key or value (Uint8Array#fill is a builtin call). */
function zero(buf: Uint8Array): void {
  if (buf.length > 32) buf.fill(0);
  else for (let i = 0; i < buf.length; i++) buf[i] = 0;
}

class ViewCache {
  private buffer: ArrayBufferLike | null = null;
  private view: DataView | null = null;

  of(b: Uint8Array): DataView {
    if (b.buffer !== this.buffer || !this.view) {
      this.buffer = b.buffer;
      this.view = new DataView(b.buffer);
    }
    return this.view;
  }
}

export class TypedMap<K, V> {
  readonly map: BpfMap;
  readonly key: Codec<K>;
  readonly value: Codec<V>;
  /** Bytes per CPU slot in a per-CPU value buffer (the value size rounded up to 8). */
  private readonly slot: number;
  // get/set/has encode the key (and value) straight into the map's own buffers and decode the
  // value from there: no Uint8Array per key, no value copy (BpfMap.ownBuffers).
  private ownCache: { key: Uint8Array; value: Uint8Array; keyView: DataView; valueView: DataView } | undefined;

  /**
   * Wraps `map` (it stays the caller's to close). Throws SchemaError when a codec's size differs
   * from the map's key/value size, or (with BTF) when a field's offset, size or signedness differs.
   */
  constructor(map: BpfMap, key: Codec<K>, value: Codec<V>, opts: TypedMapOptions = {}) {
    if (key.size !== map.keySize)
      throw new SchemaError(`map '${map.name}' has ${map.keySize}-byte keys, the schema ${key.cType()} is ${key.size} bytes`, 'key');
    if (value.size !== map.valueSize)
      throw new SchemaError(`map '${map.name}' has ${map.valueSize}-byte values, the schema ${value.cType()} is ${value.size} bytes`, 'value');
    const btf = opts.checkBtf === false ? undefined : map.btf;
    if (btf) {
      const against = (codec: Codec<unknown>, t: typeof btf.key, what: string) => {
        if (t.size === 0) return; // maps without a key type (e.g. created by hand) record void
        try {
          checkAgainstBtf(codec, t);
        } catch (err) {
          if (!(err instanceof SchemaError)) throw err;
          const e = err.within(what);
          throw new SchemaError(`map '${map.name}' BTF mismatch: ${e.problem}`, e.path);
        }
      };
      against(key, btf.key, 'key');
      against(value, btf.value, 'value');
    }
    this.map = map;
    this.key = key;
    this.value = value;
    this.slot = Math.ceil(map.valueSize / 8) * 8;
  }

  private get own(): NonNullable<typeof this.ownCache> {
    if (!this.ownCache) {
      const { key: k, value: v } = this.map.ownBuffers();
      this.ownCache = { key: k, value: v, keyView: new DataView(k.buffer, k.byteOffset, k.byteLength), valueView: new DataView(v.buffer, v.byteOffset, v.byteLength) };
    }
    return this.ownCache;
  }

  /** A TypedMap whose codecs come from the map's own BTF. SchemaError if the map has none. */
  static fromBtf(map: BpfMap): TypedMap<unknown, unknown> {
    const btf = map.btf;
    if (!btf) throw new SchemaError(`map '${map.name}' has no BTF: give key and value schemas`);
    return new TypedMap(map, codecFromBtf(btf.key), codecFromBtf(btf.value), { checkBtf: false });
  }

  /**
   * For inspecting any map: codecs from its BTF when it has some, raw bytes otherwise. `raw`
   * forces bytes (to see exactly what is stored).
   */
  static inspect(map: BpfMap, opts: { raw?: boolean } = {}): TypedMap<unknown, unknown> {
    if (!opts.raw && map.btf) {
      const key = map.btf.key.size === map.keySize ? codecFromBtf(map.btf.key) : bytes(map.keySize);
      const value = map.btf.value.size === map.valueSize ? codecFromBtf(map.btf.value) : bytes(map.valueSize);
      return new TypedMap<unknown, unknown>(map, key, value, { checkBtf: false });
    }
    return new TypedMap<unknown, unknown>(map, bytes(map.keySize), bytes(map.valueSize), { checkBtf: false });
  }

  get isPerCpu(): boolean {
    return this.map.isPerCpu;
  }

  private encodeKey(key: K): Uint8Array {
    try {
      return encode(this.key, key);
    } catch (err) {
      throw err instanceof SchemaError ? err.within('key') : err;
    }
  }

  private encodeValue(value: V): Uint8Array {
    try {
      return encode(this.value, value);
    } catch (err) {
      throw err instanceof SchemaError ? err.within('value') : err;
    }
  }

  /** Encodes `key` into the map's own key buffer (padding zeroed). */
  private ownKey(key: K): void {
    const { key: buf, keyView } = this.own;
    zero(buf);
    try {
      this.key.encode(key, keyView, 0);
    } catch (err) {
      throw err instanceof SchemaError ? err.within('key') : err;
    }
  }

  /** Encodes `value` into the map's own value buffer: per-CPU maps get it in every CPU's slot. */
  private ownValue(value: V): void {
    const { value: buf, valueView } = this.own;
    zero(buf);
    try {
      this.value.encode(value, valueView, 0);
    } catch (err) {
      throw err instanceof SchemaError ? err.within('value') : err;
    }
    if (this.map.isPerCpu) for (let cpu = 1; cpu < this.map.possibleCpus; cpu++) buf.copyWithin(cpu * this.slot, 0, this.slot);
  }

  /** The user-space value buffer for `value`: per-CPU maps get it in every CPU's slot. */
  private valueBuf(value: V): Uint8Array {
    const one = this.encodeValue(value);
    if (!this.map.isPerCpu) return one;
    const buf = new Uint8Array(this.slot * this.map.possibleCpus);
    for (let cpu = 0; cpu < this.map.possibleCpus; cpu++) buf.set(one, cpu * this.slot);
    return buf;
  }

  // Batch results are slices of one key buffer and one value buffer: one DataView over each
  // serves every entry (making a DataView per entry costs more than decoding it).
  private readonly views = { key: new ViewCache(), value: new ViewCache() };

  /** `buf` comes from the loader, which sizes it from the map: no length check needed here. */
  private decodeKey(buf: Uint8Array): K {
    return this.key.decode(this.views.key.of(buf), buf.byteOffset);
  }

  private decodeValue(buf: Uint8Array): V {
    return this.value.decode(this.views.value.of(buf), buf.byteOffset);
  }

  private decodePerCpu(buf: Uint8Array): V[] {
    const view = this.views.value.of(buf);
    const out: V[] = [];
    for (let cpu = 0; cpu < this.map.possibleCpus; cpu++) out.push(this.value.decode(view, buf.byteOffset + cpu * this.slot));
    return out;
  }

  private requireSingle(op: string): void {
    if (this.map.isPerCpu)
      throw new SchemaError(`map '${this.map.name}' is ${this.map.type}: ${op} has one value per CPU (use ${op}PerCpu or getSum)`);
  }

  /** The value under `key`, or undefined. Per-CPU maps: SchemaError (use getPerCpu/getSum). */
  get(key: K): V | undefined {
    this.requireSingle('get');
    this.ownKey(key);
    return this.map.lookupOwn() ? this.value.decode(this.own.valueView, 0) : undefined;
  }

  /** Every possible CPU's value under `key` (index = CPU), or undefined when absent. */
  getPerCpu(key: K): V[] | undefined {
    if (!this.map.isPerCpu) {
      const v = this.get(key);
      return v === undefined ? undefined : [v];
    }
    this.ownKey(key);
    return this.map.lookupOwn() ? this.decodePerCpu(this.own.value) : undefined;
  }

  /** The value summed over CPUs (integers added, structs field by field); plain maps: `get`. */
  getSum(key: K): V | undefined {
    const all = this.getPerCpu(key);
    return all === undefined ? undefined : sumValues(this.value, all);
  }

  has(key: K): boolean {
    this.ownKey(key);
    return this.map.lookupOwn();
  }

  /**
   * Writes `value` under `key` (per-CPU maps: the same value on every CPU, e.g. to reset
   * counters). SchemaError for a value that does not fit, before the syscall.
   */
  set(key: K, value: V, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    this.ownKey(key);
    this.ownValue(value);
    this.map.updateOwn(flags);
  }

  /** Per-CPU maps: one value per possible CPU. */
  setPerCpu(key: K, values: readonly V[]): void {
    if (!this.map.isPerCpu) throw new SchemaError(`map '${this.map.name}' is not per-CPU`);
    if (values.length !== this.map.possibleCpus)
      throw new SchemaError(`expected ${this.map.possibleCpus} values (one per possible CPU), got ${values.length}`, 'value');
    const k = this.encodeKey(key);
    const buf = new Uint8Array(this.slot * values.length);
    values.forEach((v, cpu) => {
      try {
        buf.set(this.encodeValue(v), cpu * this.slot);
      } catch (err) {
        throw err instanceof SchemaError ? new SchemaError(err.problem, `value[${cpu}]${err.path.slice('value'.length)}`) : err;
      }
    });
    this.map.update(k, buf);
  }

  /** Returns false when the key was absent. */
  delete(key: K): boolean {
    return this.map.delete(this.encodeKey(key));
  }

  /** Raw key/value buffers of every entry: one batch syscall per chunk where supported. */
  private *rawEntries(): Generator<[Uint8Array, Uint8Array]> {
    const batch = this.map.lookupBatch();
    if (batch) {
      for (let i = 0; i < batch.keys.length; i++) yield [batch.keys[i]!, batch.values[i]!];
      return;
    }
    for (let k = this.map.nextKey(null); k; k = this.map.nextKey(k)) {
      const v = this.map.lookup(k);
      // Deleted between nextKey and lookup: skip it, the walk continues from the key we hold.
      if (v) yield [k, v];
    }
  }

  /** Every entry; per-CPU maps yield the value summed over CPUs (see entriesPerCpu). */
  *entries(): Generator<[K, V]> {
    for (const [k, v] of this.rawEntries())
      yield [this.decodeKey(k), this.map.isPerCpu ? sumValues(this.value, this.decodePerCpu(v)) : this.decodeValue(v)];
  }

  *entriesPerCpu(): Generator<[K, V[]]> {
    for (const [k, v] of this.rawEntries()) yield [this.decodeKey(k), this.map.isPerCpu ? this.decodePerCpu(v) : [this.decodeValue(v)]];
  }

  /** Every key, walked with get_next_key (no values read). */
  *keys(): Generator<K> {
    for (let k = this.map.nextKey(null); k; k = this.map.nextKey(k)) yield this.decodeKey(k);
  }

  [Symbol.iterator](): Iterator<[K, V]> {
    return this.entries();
  }

  /**
   * Values for many keys (undefined where absent), in order. The kernel has no keyed batch
   * lookup, so a large request dumps the map in batches and picks from it; a small one looks up
   * key by key. Per-CPU maps return sums.
   */
  getMany(keys: readonly K[]): (V | undefined)[] {
    const encoded = keys.map((k, i) => {
      try {
        return encode(this.key, k);
      } catch (err) {
        throw err instanceof SchemaError ? err.within(`keys[${i}]`) : err;
      }
    });
    const decodeAny = (buf: Uint8Array) => (this.map.isPerCpu ? sumValues(this.value, this.decodePerCpu(buf)) : this.decodeValue(buf));
    if (keys.length > this.map.maxEntries * DUMP_RATIO) {
      const batch = this.map.lookupBatch();
      if (batch) {
        const byKey = new Map<string, Uint8Array>();
        for (let i = 0; i < batch.keys.length; i++) byKey.set(hexKey(batch.keys[i]!), batch.values[i]!);
        return encoded.map((k) => {
          const v = byKey.get(hexKey(k));
          return v ? decodeAny(v) : undefined;
        });
      }
    }
    return encoded.map((k) => {
      const v = this.map.lookup(k);
      return v ? decodeAny(v) : undefined;
    });
  }

  /**
   * Writes many entries with batch updates (one syscall per call where the kernel supports it).
   * Everything is encoded first: a SchemaError names the bad entry and nothing is written.
   */
  setMany(entries: Iterable<readonly [K, V]>): void {
    const keys: Uint8Array[] = [];
    const values: Uint8Array[] = [];
    let i = 0;
    for (const [k, v] of entries) {
      try {
        keys.push(this.encodeKey(k));
        values.push(this.valueBuf(v));
      } catch (err) {
        throw err instanceof SchemaError ? err.within(`entries[${i}]`) : err;
      }
      i++;
    }
    this.map.updateBatch(keys, values);
  }

  /**
   * Deletes many keys with batch deletes where supported; absent keys are skipped. Returns how
   * many entries were deleted.
   */
  deleteMany(keys: readonly K[]): number {
    const encoded = keys.map((k, i) => {
      try {
        return encode(this.key, k);
      } catch (err) {
        throw err instanceof SchemaError ? err.within(`keys[${i}]`) : err;
      }
    });
    return this.deleteRaw(encoded);
  }

  private deleteRaw(encoded: Uint8Array[]): number {
    if (!encoded.length) return 0;
    try {
      this.map.deleteBatch(encoded);
      return encoded.length;
    } catch (err) {
      // One absent key stops the batch part-way (the keys before it are gone): finish one by one.
      if (!(err instanceof LoaderError) || err.code !== 'E_NOENT') throw err;
      let n = 0;
      for (const k of encoded) if (this.map.delete(k)) n++;
      const done = /\((\d+) of \d+ deleted\)/.exec(err.message);
      return n + (done ? Number(done[1]) : 0);
    }
  }

  /** Number of entries (walks the keys: O(n) syscalls, or batches). */
  count(): number {
    let n = 0;
    for (const _ of this.rawEntries()) n++;
    return n;
  }

  /** Deletes every entry and returns how many (hash-like maps; array entries cannot be deleted). */
  clear(): number {
    const keys: Uint8Array[] = [];
    for (const [k] of this.rawEntries()) keys.push(k);
    return this.deleteRaw(keys);
  }
}
