/**
 * The two HTTP chains, started from the last function backwards (each function needs the port
 * of what it calls next):
 *   http-sidecar  Knative style: each function behind its own proxy sidecar; the entry is the
 *                 first function's sidecar. The sidecar is ./sidecar.ts (Node) or, with
 *                 `proxy: 'haproxy'` (http-sidecar-haproxy), Debian's HAProxy (./haproxy.ts).
 *   http-direct   each function calls the next one itself (keep-alive agent, no sidecars): what
 *                 many teams run instead of a mesh; the entry is the first function.
 */
import { fileURLToPath } from 'node:url';
import { type Child, HTTP_SERVER_FLAGS, spawnTs } from '../proc.ts';
import type { RunningChain } from '../tcp/start.ts';
import { startHaproxySidecar } from './haproxy.ts';
import { CHAIN } from '../work.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export async function startHttpChain(sidecars = true, proxy: 'node' | 'haproxy' = 'node'): Promise<RunningChain> {
  const all: Child[] = [];
  const tag = !sidecars ? 'http-direct' : proxy === 'haproxy' ? 'http-haproxy' : 'http';
  const stop = async () => {
    await Promise.all(all.map((c) => c.stop()));
  };
  try {
    let next: number | null = null;
    for (const w of [...CHAIN].reverse()) {
      const fn = spawnTs(`${tag}-${w}`, here('./function.ts'), next === null ? [w] : [w, String(next)], {}, HTTP_SERVER_FLAGS);
      all.push(fn);
      next = Number((await fn.line(/^listening (\d+)$/))[1]);
      if (!sidecars) continue;
      if (proxy === 'haproxy') {
        const hp = await startHaproxySidecar(`${tag}-${w}-sidecar`, next);
        all.push(hp.child);
        next = hp.port;
        continue;
      }
      const sc = spawnTs(`${tag}-${w}-sidecar`, here('./sidecar.ts'), [String(next)], {}, HTTP_SERVER_FLAGS);
      all.push(sc);
      next = Number((await sc.line(/^listening (\d+)$/))[1]);
    }
    return { url: `http://127.0.0.1:${next}/chain`, pids: () => all.map((c) => c.pid), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
