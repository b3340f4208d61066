/**
 * The allocation-free hot path for one map: a key buffer and a value buffer owned by the path,
 * and a bpf_attr built once that points at them, so a lookup or update is one write of the key
 * and one bpf(2) syscall (through libc's syscall(), skipping libbpf's per-call attr setup).
 * Nothing is allocated per operation: the caller reads `value` after `lookup()` returned true.
 *
 * The buffers are reused by the next operation: copy what must outlive it.
 */
import koffi from 'koffi';
import { errnoName, explainErrno, LoaderError } from './errors.ts';
import { lastErrno } from './libbpf.ts';

const SYS_BPF = 321; // x86-64
const BPF_MAP_LOOKUP_ELEM = 1;
const BPF_MAP_UPDATE_ELEM = 2;
const BPF_MAP_DELETE_ELEM = 3;
const ATTR_SIZE = 32; // map_fd@0, key@8, value@16, flags@24
const ENOENT = 2;

let sys: ((nr: number, cmd: number, attr: Uint8Array, size: number) => number) | undefined;
function bpf(): NonNullable<typeof sys> {
  sys ??= koffi.load('libc.so.6').func('long syscall(long nr, long cmd, void *attr, unsigned int size)') as NonNullable<typeof sys>;
  return sys;
}

const FLAGS = { any: 0, noexist: 1, exist: 2 } as const;

export class MapHotPath {
  /** Write the key here before each operation (keySize bytes). */
  readonly key: Uint8Array;
  /** The value: filled by lookup(), read by update() (the map's value buffer size, all CPUs for per-CPU maps). */
  readonly value: Uint8Array;
  private readonly lookupAttr: Uint8Array;
  private readonly updateAttr: Uint8Array[];
  private readonly deleteAttr: Uint8Array;
  private readonly call: NonNullable<typeof sys>;

  constructor(
    private readonly map: { fd: number; name: string },
    keySize: number,
    valueSize: number,
  ) {
    // One allocation each, for the life of the path; their addresses go into the attrs.
    this.key = new Uint8Array(Math.max(1, keySize));
    this.value = new Uint8Array(Math.max(1, valueSize));
    const k = koffi.address(this.key);
    const v = koffi.address(this.value);
    const attr = (withValue: boolean, flags: number) => {
      const a = Buffer.alloc(ATTR_SIZE);
      a.writeUInt32LE(map.fd, 0);
      a.writeBigUInt64LE(k, 8);
      if (withValue) a.writeBigUInt64LE(v, 16);
      a.writeBigUInt64LE(BigInt(flags), 24);
      return new Uint8Array(a.buffer, a.byteOffset, ATTR_SIZE);
    };
    this.lookupAttr = attr(true, 0);
    this.updateAttr = [attr(true, FLAGS.any), attr(true, FLAGS.noexist), attr(true, FLAGS.exist)];
    this.deleteAttr = attr(false, 0);
    this.call = bpf();
  }

  private fail(what: string): never {
    const errno = lastErrno();
    const code = errno === ENOENT ? 'E_NOENT' : errno === 17 ? 'E_EXIST' : errno === 16 ? 'E_BUSY' : errno === 22 ? 'E_INVAL' : 'E_LOADER';
    const why = explainErrno(errno);
    throw new LoaderError(code, errno, `${what} map '${this.map.name}': ${errnoName(errno)}${why ? `: ${why}` : ''}`);
  }

  /** Looks up `key`; true and `value` filled when present, false when absent. LoaderError otherwise. */
  lookup(): boolean {
    if (this.call(SYS_BPF, BPF_MAP_LOOKUP_ELEM, this.lookupAttr, ATTR_SIZE) === 0) return true;
    if (lastErrno() === ENOENT) return false;
    return this.fail('lookup in');
  }

  /** Writes `value` under `key`. LoaderError E_EXIST ('noexist' and present), E_NOENT ('exist' and absent). */
  update(flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    if (this.call(SYS_BPF, BPF_MAP_UPDATE_ELEM, this.updateAttr[FLAGS[flags]]!, ATTR_SIZE) !== 0) this.fail('update');
  }

  /** Deletes `key`; false when it was absent. */
  delete(): boolean {
    if (this.call(SYS_BPF, BPF_MAP_DELETE_ELEM, this.deleteAttr, ATTR_SIZE) === 0) return true;
    if (lastErrno() === ENOENT) return false;
    return this.fail('delete from');
  }
}
