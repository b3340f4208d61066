/**
 * The loop of a TypeScript packet function: receive a batch (what the ring holds, taken at once;
 * asleep on the ring's futex in a worker thread while it holds none), run the handler on it, and
 * hand every frame on with its verdict. The twin of nf_main.c, with the ring work done by the
 * same C (./shim.c), which also keeps the instance's counters in the plane.
 *
 * A handler that throws (or whose promise rejects) does not kill the instance: its batch is
 * dropped, counted by the chain as dropped by this function, and the error is logged (the first
 * ones, then one line per 1000). A crash of the process itself is the supervisor's to handle, as
 * for C functions: it restarts the instance, and the frames in hand are reclaimed.
 */
import type { ShimInstance } from './native.ts';
import { DROP, Packet, type PacketContext, type PacketHandler } from './packet.ts';

/** Frames per batch, as the C runtime (BPFCTL_NF_BATCH). */
export const BATCH = 32;
/** Batches taken without waiting before the event loop gets a turn. */
const YIELD_EVERY = 8;

export interface PacketLoopOptions {
  shim: ShimInstance;
  handler: PacketHandler;
  ctx: PacketContext;
  log(msg: string): void;
}

/** Runs until a stop was asked for and the ring is drained. */
export async function runPacketLoop(o: PacketLoopOptions): Promise<void> {
  const { shim, handler, ctx } = o;
  const max = Math.min(BATCH, shim.batchMax);
  const records = Array.from({ length: max }, (_, i) => new Packet(shim, i));
  // One array per batch size, made once: the handler gets exactly the frames of this batch.
  const slices = Array.from({ length: max + 1 }, (_, n) => Object.freeze(records.slice(0, n)));
  let failed = 0;
  let inRow = 0;
  for (;;) {
    // What is there now is taken on this thread; only an empty ring waits (on a worker thread).
    // Batches taken at once do not return to the event loop, so every few of them it gets a
    // turn: signals (a drained stop), timers and I/O of the handler must not starve under load.
    let n = shim.tryRecv(max);
    if (n > 0 && ++inRow % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    if (n === 0) {
      inRow = 0;
      n = await shim.recv(max);
    }
    if (n === 0) return;
    for (let i = 0; i < n; i++) records[i]!.reset();
    try {
      const r = handler(slices[n]!, ctx);
      if (r !== undefined && r !== null && typeof (r as Promise<void>).then === 'function') await r;
    } catch (err) {
      failed++;
      if (failed <= 5 || failed % 1000 === 0) {
        const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
        o.log(`handler failed on a batch of ${n} (dropped; ${failed} so far): ${msg}`);
      }
      for (let i = 0; i < n; i++) records[i]!.verdict = DROP;
    }
    shim.send(n);
  }
}
