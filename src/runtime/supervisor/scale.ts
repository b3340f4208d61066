/**
 * Changing a running function's instance count. Up: new slots start, and join `instances` as
 * each registers; all or nothing, so a count that cannot be reached leaves the old one. Down: the
 * highest instance ids leave `instances` first, keep running a moment for descriptors already
 * on their way to them, then stop. One change at a time.
 *
 * The function is looked up in the manifest's IR (functions added by `apply` are there), through
 * `functions()`.
 */
import { MAX_INSTANCES } from '../../ir/chain-limits.ts';
import type { FunctionIR } from '../../ir/policy.ts';
import { ChainStartError, ScaleError } from './errors.ts';
import type { Registry } from './registry.ts';
import type { Slot, SlotInfo } from './slot.ts';

/** Time a retired instance keeps running so descriptors already sent to it are answered. */
const DRAIN_MS = 500;

export interface ScaleContext {
  /** The chain's functions now (apply adds and removes them). */
  functions(): FunctionIR[];
  policy: string;
  /** The chain's slots (changed in place). */
  slots: Slot[];
  /** A new slot for the function, with a fresh instance id. */
  newSlot(f: FunctionIR): Slot;
  registry: Registry;
  graceMs: number;
  stopping(): boolean;
  log(line: string): void;
}

/**
 * Starts new slots and waits until every one registered; all or nothing: if one fails, all are
 * stopped and removed again. @throws ChainStartError
 */
export async function startSlots(c: Pick<ScaleContext, 'slots' | 'graceMs'>, added: Slot[]): Promise<void> {
  c.slots.push(...added);
  for (const s of added) void s.start();
  try {
    await Promise.all(added.map((s) => s.ready));
  } catch (err) {
    await Promise.all(added.map((s) => s.stop(c.graceMs)));
    for (const s of added) c.slots.splice(c.slots.indexOf(s), 1);
    throw new ChainStartError((err as Error).message.split('\n')[0]!.replace(/:$/, ''), { cause: err });
  }
}

/** Takes slots out of `instances`, lets what was sent to them finish (DRAIN_MS), then stops them. */
export async function retireSlots(c: Pick<ScaleContext, 'slots' | 'graceMs' | 'registry'>, gone: Slot[]): Promise<void> {
  for (const s of gone) {
    s.halt();
    c.registry.retire(s);
  }
  await new Promise((r) => setTimeout(r, DRAIN_MS));
  await Promise.all(gone.map((s) => s.stop(c.graceMs)));
  for (const s of gone) c.slots.splice(c.slots.indexOf(s), 1);
}

export function scaler(c: ScaleContext): (fn: string, n: number) => Promise<SlotInfo[]> {
  let queue: Promise<unknown> = Promise.resolve();
  const of = (f: FunctionIR) => c.slots.filter((s) => s.kind === 'function' && s.fnId === f.id).sort((a, b) => a.instance - b.instance);

  const now = async (fnName: string, n: number): Promise<SlotInfo[]> => {
    const fns = c.functions();
    const f = fns.find((x) => x.name === fnName);
    if (!f) throw new ScaleError(`policy ${c.policy} has no function '${fnName}' (functions: ${fns.map((x) => x.name).join(', ')})`);
    if (!Number.isInteger(n) || n < 0 || n > MAX_INSTANCES) throw new ScaleError(`instances must be 0..${MAX_INSTANCES}, got ${n}`);
    if (c.stopping()) throw new ScaleError(`${c.policy} is stopping`);
    const mine = of(f);
    if (n > mine.length) {
      await startSlots(c, Array.from({ length: n - mine.length }, () => c.newSlot(f)));
    } else if (n < mine.length) {
      await retireSlots(c, mine.slice(n));
    }
    c.log(`[supervisor] ${f.name}: ${n} instance${n === 1 ? '' : 's'} (live: ${c.registry.liveIds(f.id).join(', ') || 'none'})`);
    return of(f).map((s) => s.snapshot());
  };

  return (fnName, n) => {
    const run = queue.then(() => now(fnName, n));
    queue = run.catch(() => {});
    return run;
  };
}
