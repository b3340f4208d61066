/**
 * Reading what programs stream to user space: BPF ring buffers (ring_buffer__new) and perf event
 * arrays (perf_buffer__new, one buffer per CPU), through libbpf, records handed to a callback as
 * copies. poll() blocks the calling thread for at most its timeout, so callers poll in short
 * slices and yield to the event loop between them.
 */
import koffi, { type TypeObject } from 'koffi';
import { EINVAL, LoaderError, loaderError } from './errors.ts';
import { lastErrno, lib, viewOf } from './libbpf.ts';

type Fn = (...args: unknown[]) => unknown;
let fns:
  | {
      rbNew: Fn;
      rbPoll: Fn;
      rbFree: Fn;
      pbNew: Fn;
      pbPoll: Fn;
      pbFree: Fn;
      rbProto: TypeObject;
      pbSample: TypeObject;
      pbLost: TypeObject;
    }
  | undefined;

function bind(): NonNullable<typeof fns> {
  if (fns) return fns;
  lib(); // loads libbpf (and its print hook) first
  const h = koffi.load('libbpf.so.1');
  // Prototype names are process-wide in koffi: make them unique to this module instance.
  const tag = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const rbProto = koffi.proto(`int bpfctl_rb_sample_${tag}(void *ctx, void *data, size_t size)`);
  const pbSample = koffi.proto(`void bpfctl_pb_sample_${tag}(void *ctx, int cpu, void *data, uint32_t size)`);
  const pbLost = koffi.proto(`void bpfctl_pb_lost_${tag}(void *ctx, int cpu, uint64_t cnt)`);
  fns = {
    rbProto,
    pbSample,
    pbLost,
    rbNew: h.func('ring_buffer__new', 'void *', ['int', koffi.pointer(rbProto), 'void *', 'void *']) as Fn,
    rbPoll: h.func('int ring_buffer__poll(void *rb, int timeout_ms)') as Fn,
    rbFree: h.func('void ring_buffer__free(void *rb)') as Fn,
    pbNew: h.func('perf_buffer__new', 'void *', ['int', 'size_t', koffi.pointer(pbSample), koffi.pointer(pbLost), 'void *', 'void *']) as Fn,
    pbPoll: h.func('int perf_buffer__poll(void *pb, int timeout_ms)') as Fn,
    pbFree: h.func('void perf_buffer__free(void *pb)') as Fn,
  };
  return fns;
}

export interface StreamRecord {
  data: Uint8Array;
  /** perf event arrays: the CPU that wrote it. */
  cpu?: number;
}

/** A reader of a ringbuf or perf_event_array map. LoaderError E_INVAL for other map types. */
export class StreamReader {
  /** Records the kernel dropped because the perf buffer was full (perf event arrays). */
  lost = 0;
  private handle: bigint | null;
  private readonly callbacks: bigint[] = [];
  private readonly kind: 'ringbuf' | 'perf';

  constructor(map: { fd: number; name: string; type: string }, onRecord: (r: StreamRecord) => void, opts: { pagesPerCpu?: number } = {}) {
    const f = bind();
    if (map.type === 'ringbuf') {
      this.kind = 'ringbuf';
      const cb = koffi.register((_ctx: unknown, data: bigint, size: number) => {
        onRecord({ data: viewOf(data, Number(size)).slice() });
        return 0;
      }, koffi.pointer(f.rbProto));
      this.callbacks.push(cb);
      this.handle = f.rbNew(map.fd, cb, null, null) as bigint | null;
    } else if (map.type === 'perf_event_array') {
      this.kind = 'perf';
      const sample = koffi.register((_ctx: unknown, cpu: number, data: bigint, size: number) => {
        onRecord({ data: viewOf(data, size).slice(), cpu });
      }, koffi.pointer(f.pbSample));
      const lost = koffi.register((_ctx: unknown, _cpu: number, cnt: bigint | number) => {
        this.lost += Number(cnt);
      }, koffi.pointer(f.pbLost));
      this.callbacks.push(sample, lost);
      this.handle = f.pbNew(map.fd, opts.pagesPerCpu ?? 8, sample, lost, null, null) as bigint | null;
    } else {
      throw new LoaderError('E_INVAL', EINVAL, `map '${map.name}' (${map.type}) does not stream records: only ringbuf and perf_event_array do`);
    }
    if (this.handle === null) {
      const errno = lastErrno();
      this.unregister();
      throw loaderError(`open ${map.type} '${map.name}' for reading`, errno);
    }
  }

  /** Deliver what is waiting, waiting at most `timeoutMs` for the first record. Returns the count delivered. */
  poll(timeoutMs = 0): number {
    if (this.handle === null) return 0;
    const f = bind();
    const n = (this.kind === 'ringbuf' ? f.rbPoll(this.handle, timeoutMs) : f.pbPoll(this.handle, timeoutMs)) as number;
    if (n < 0 && n !== -4 /* EINTR */) throw loaderError(`poll ${this.kind}`, -n);
    return Math.max(0, n);
  }

  private unregister(): void {
    for (const cb of this.callbacks) koffi.unregister(cb);
    this.callbacks.length = 0;
  }

  /** Idempotent. */
  close(): void {
    if (this.handle !== null) {
      const f = bind();
      if (this.kind === 'ringbuf') f.rbFree(this.handle);
      else f.pbFree(this.handle);
      this.handle = null;
    }
    this.unregister();
  }
}
