/**
 * The generator process (gen.c) in the sender's namespace, driven over its stdin: one process for
 * the whole run, a `run` command per point.
 */
import { type Child, spawnChild } from '../chain/proc.ts';
import { PORT } from './progs.ts';
import type { Topology } from './topo.ts';

/** UDP source ports the frames are spread over (a power of two). */
export const FLOWS = 16;

export interface GenResult {
  /** Frames that reached the sender's veth. */
  sent: number;
  seconds: number;
  calls: number;
}

export interface Gen {
  readonly pid: number;
  frame(len: number): Promise<void>;
  /** `rate` frames/s, 0 for as fast as it can. */
  run(rate: number, seconds: number): Promise<GenResult>;
  stop(): Promise<void>;
}

export async function startGen(bin: string, t: Topology): Promise<Gen> {
  const child: Child = spawnChild('gen', 'ip', ['netns', 'exec', t.nsS, bin, t.ifS, t.ifPaceIn, t.ifPaceOut, String(FLOWS)]);
  // Replies in order, one line per command: a queue of its stdout lines.
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  let partial = '';
  child.proc.stdout!.on('data', (c: string) => {
    partial += c;
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      const l = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(l);
      else lines.push(l);
    }
  });
  const next = (timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const l = lines.shift();
      if (l !== undefined) return resolve(l);
      const onExit = () => reject(new Error(`gen exited (${child.proc.exitCode ?? child.proc.signalCode}): ${child.stderr().trim().slice(-500)}`));
      const timer = setTimeout(() => {
        child.proc.off('close', onExit);
        reject(new Error(`gen: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      child.proc.once('close', onExit);
      waiting.push((x) => {
        clearTimeout(timer);
        child.proc.off('close', onExit);
        resolve(x);
      });
    });
  const ask = async (cmd: string, timeoutMs: number) => {
    child.send(cmd);
    const l = await next(timeoutMs);
    if (l.startsWith('error')) throw new Error(`gen: ${l} (for: ${cmd})`);
    return l;
  };
  const ready = await next(30_000).catch(async (err) => {
    await child.stop();
    throw err;
  });
  if (ready !== 'ready') {
    await child.stop();
    throw new Error(`gen: ${ready}`);
  }
  return {
    pid: child.pid,
    frame: async (len) => {
      await ask(`frame ${len} ${t.macS} ${t.macIn} ${t.ipS} ${t.ipR} ${PORT}`, 5000);
    },
    run: async (rate, seconds) => {
      const l = await ask(`run ${rate} ${seconds}`, seconds * 1000 + 10_000);
      const [, sent, ns, calls] = l.split(' ').map(Number) as [number, number, number, number];
      return { sent, seconds: ns / 1e9, calls };
    },
    stop: () => child.stop('SIGTERM', 3000),
  };
}
