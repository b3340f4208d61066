/**
 * The shim library (./shim.c) as TypeScript sees it: one attached packet function instance, its
 * batch words (one view, read and written in place) and the pool mapping as bytes. The blocking
 * receive runs as a koffi async call, on a libuv worker thread, so a sleeping function keeps its
 * event loop (signals, IPC, timers of the handler) alive.
 */
import koffi from 'koffi';

export interface ShimInstance {
  /** The pool mapping the shim made (frames are views of it). */
  readonly pool: Uint8Array;
  /** The batch words: `WORDS` per frame, see shim.c. */
  readonly info: Uint32Array;
  readonly words: number;
  readonly batchMax: number;
  /** Takes the frames in the ring now, without waiting; how many (0: none). */
  tryRecv(max: number): number;
  /** Waits for frames; resolves with how many (0: stopped and drained). */
  recv(max: number): Promise<number>;
  send(n: number): void;
  reparse(i: number): void;
  fixChecksums(i: number): number;
  ready(): void;
  stop(): void;
  close(): void;
}

export interface ShimOpen {
  /** The built shim (buildPacketShim). */
  library: string;
  pool: string;
  name: string;
  fn: number;
  instance: number;
  poll: boolean;
}

export function openShim(o: ShimOpen): ShimInstance {
  const lib = koffi.load(o.library);
  const open = lib.func('void *bpfctl_ts_open(const char *pool, const char *name, uint32_t fn, uint32_t inst, int poll)');
  const nf = open(o.pool, o.name, o.fn, o.instance, o.poll ? 1 : 0) as unknown;
  // A refusal (no plane, ring taken): the shim printed the reason on stderr already.
  if (nf === null) throw new Error(`${o.name}: cannot attach to instance ${o.instance} of the packet plane in ${o.pool} (the reason is above)`);
  const base = lib.func('void *bpfctl_ts_base(void *nf)')(nf) as unknown;
  const size = Number(lib.func('uint64_t bpfctl_ts_size(void *nf)')(nf));
  const words = lib.func('uint32_t bpfctl_ts_words(void)')() as number;
  const batchMax = lib.func('uint32_t bpfctl_ts_batch_max(void)')() as number;
  const infoPtr = lib.func('void *bpfctl_ts_info(void)')() as unknown;
  const recv = lib.func('unsigned int bpfctl_ts_recv(void *nf, unsigned int max)');
  const tryRecv = lib.func('unsigned int bpfctl_ts_try_recv(void *nf, unsigned int max)') as (nf: unknown, max: number) => number;
  const send = lib.func('void bpfctl_ts_send(void *nf, unsigned int n)') as (nf: unknown, n: number) => void;
  const reparse = lib.func('void bpfctl_ts_reparse(void *nf, unsigned int i)') as (nf: unknown, i: number) => void;
  const fix = lib.func('unsigned int bpfctl_ts_fix_checksums(void *nf, unsigned int i)') as (nf: unknown, i: number) => number;
  const ready = lib.func('void bpfctl_ts_ready(void *nf)') as (nf: unknown) => void;
  const stop = lib.func('void bpfctl_ts_stop(void *nf)') as (nf: unknown) => void;
  const close = lib.func('void bpfctl_ts_close(void *nf)') as (nf: unknown) => void;
  let closed = false;
  return {
    pool: new Uint8Array(koffi.view(base, size)),
    info: new Uint32Array(koffi.view(infoPtr, batchMax * words * 4)),
    words,
    batchMax,
    tryRecv: (max) => tryRecv(nf, max),
    recv: (max) =>
      new Promise((resolve, reject) => {
        recv.async(nf, max, (err: unknown, n: number) => (err ? reject(err) : resolve(n)));
      }),
    send: (n) => send(nf, n),
    reparse: (i) => reparse(nf, i),
    fixChecksums: (i) => fix(nf, i),
    ready: () => ready(nf),
    stop: () => {
      if (!closed) stop(nf);
    },
    close: () => {
      if (closed) return;
      closed = true;
      close(nf);
    },
  };
}
