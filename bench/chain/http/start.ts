/**
 * Starts the Knative-style chain from the last function backwards (each function needs the
 * port of the next one's sidecar); the entry is the first function's sidecar.
 */
import { fileURLToPath } from 'node:url';
import { type Child, spawnTs } from '../proc.ts';
import type { RunningChain } from '../tcp/start.ts';
import { CHAIN } from '../work.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export async function startHttpChain(): Promise<RunningChain> {
  const all: Child[] = [];
  const stop = async () => {
    await Promise.all(all.map((c) => c.stop()));
  };
  try {
    let next: number | null = null;
    for (const w of [...CHAIN].reverse()) {
      const fn = spawnTs(`http-${w}`, here('./function.ts'), next === null ? [w] : [w, String(next)]);
      all.push(fn);
      const fnPort = (await fn.line(/^listening (\d+)$/))[1]!;
      const sc = spawnTs(`http-${w}-sidecar`, here('./sidecar.ts'), [fnPort]);
      all.push(sc);
      next = Number((await sc.line(/^listening (\d+)$/))[1]);
    }
    return { url: `http://127.0.0.1:${next}/chain`, pids: () => all.map((c) => c.pid), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
