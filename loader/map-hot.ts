/**
 * The allocation-free hot path for one map: a key buffer and a value buffer owned by the path,
 * and a bpf_attr built once that points at them, so a lookup or update is one write of the key
 * and one bpf(2) syscall (through map-syscall.ts, skipping libbpf's per-call attr setup and
 * koffi's per-argument conversions). Nothing is allocated per operation: the caller reads
 * `value` after `lookup()` returned true.
 *
 * The buffers are reused by the next operation: copy what must outlive it.
 */
import koffi from 'koffi';
import { errnoName, explainErrno, LoaderError } from './errors.ts';
import { addressNumber, MAP_ATTR_SIZE, type MapSyscalls, mapSyscalls } from './map-syscall.ts';

const ENOENT = 2;
const FLAGS = { any: 0, noexist: 1, exist: 2 } as const;

export class MapHotPath {
  /** Write the key here before each operation (keySize bytes). */
  readonly key: Uint8Array;
  /** The value: filled by lookup(), read by update() (the map's value buffer size, all CPUs for per-CPU maps). */
  readonly value: Uint8Array;
  // The attrs, referenced here because the kernel reads them through the addresses below.
  private readonly attrs: Uint8Array;
  private readonly lookupAttr: number;
  private readonly updateAttr: readonly number[];
  private readonly deleteAttr: number;
  private readonly calls: MapSyscalls;
  private readonly slot: Float64Array;

  constructor(
    private readonly map: { fd: number; name: string },
    keySize: number,
    valueSize: number,
  ) {
    // One allocation each, for the life of the path; their addresses go into the attrs. Each has
    // its own ArrayBuffer, whose memory is outside V8's heap and never moves (a bare
    // `new Uint8Array(n)` of up to 64 bytes may start on the heap, where the GC moves it).
    this.key = new Uint8Array(new ArrayBuffer(Math.max(1, keySize)));
    this.value = new Uint8Array(new ArrayBuffer(Math.max(1, valueSize)));
    const k = koffi.address(this.key);
    const v = koffi.address(this.value);
    // Five attrs in one buffer: lookup, update any/noexist/exist, delete.
    this.attrs = new Uint8Array(new ArrayBuffer(5 * MAP_ATTR_SIZE));
    const dv = new DataView(this.attrs.buffer);
    const base = addressNumber(this.attrs);
    const attr = (i: number, withValue: boolean, flags: number) => {
      const o = i * MAP_ATTR_SIZE;
      dv.setUint32(o, map.fd, true);
      dv.setBigUint64(o + 8, k, true);
      if (withValue) dv.setBigUint64(o + 16, v, true);
      dv.setBigUint64(o + 24, BigInt(flags), true);
      return base + o;
    };
    this.lookupAttr = attr(0, true, 0);
    this.updateAttr = [attr(1, true, FLAGS.any), attr(2, true, FLAGS.noexist), attr(3, true, FLAGS.exist)];
    this.deleteAttr = attr(4, false, 0);
    this.calls = mapSyscalls();
    this.slot = this.calls.slot;
  }

  private fail(what: string, errno: number): never {
    const code = errno === ENOENT ? 'E_NOENT' : errno === 17 ? 'E_EXIST' : errno === 16 ? 'E_BUSY' : errno === 22 ? 'E_INVAL' : 'E_LOADER';
    const why = explainErrno(errno);
    throw new LoaderError(code, errno, `${what} map '${this.map.name}': ${errnoName(errno)}${why ? `: ${why}` : ''}`);
  }

  /** @internal For BpfMap's own calls: 0 when found (`value` filled), else the errno. */
  lookupErrno(): number {
    this.slot[0] = this.lookupAttr;
    const ret = this.calls.lookup();
    return ret === 0 ? 0 : -ret; // (not -0)
  }

  /** @internal For BpfMap's own calls: 0 when written, else the errno. */
  updateErrno(flags: 'any' | 'noexist' | 'exist'): number {
    this.slot[0] = this.updateAttr[FLAGS[flags]]!;
    const ret = this.calls.update();
    return ret === 0 ? 0 : -ret;
  }

  /** Looks up `key`; true and `value` filled when present, false when absent. LoaderError otherwise. */
  lookup(): boolean {
    this.slot[0] = this.lookupAttr;
    const ret = this.calls.lookup();
    if (ret === 0) return true;
    if (ret === -ENOENT) return false;
    return this.fail('lookup in', -ret);
  }

  /** Writes `value` under `key`. LoaderError E_EXIST ('noexist' and present), E_NOENT ('exist' and absent). */
  update(flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    this.slot[0] = this.updateAttr[FLAGS[flags]]!;
    const ret = this.calls.update();
    if (ret !== 0) this.fail('update', -ret);
  }

  /** Deletes `key`; false when it was absent. */
  delete(): boolean {
    this.slot[0] = this.deleteAttr;
    const ret = this.calls.delete();
    if (ret === 0) return true;
    if (ret === -ENOENT) return false;
    return this.fail('delete from', -ret);
  }
}
