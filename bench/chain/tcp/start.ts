/**
 * Starts the plain-TCP chain: the gateway (or a loop driver standing in for it), then each
 * function connected to the one before, then the gateway connected to the last for replies.
 */
import { fileURLToPath } from 'node:url';
import { type Child, HTTP_SERVER_FLAGS, spawnTs } from '../proc.ts';
import { CHAIN } from '../work.ts';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export interface RunningChain {
  readonly url: string;
  readonly pids: () => number[];
  stop(): Promise<void>;
}

/**
 * The three functions, the first reading from `headPort`; resolves with the last one's port.
 * `unbatched`: a write per frame (reference only; see function.ts).
 */
export async function startTcpFunctions(headPort: number, unbatched = false): Promise<{ children: Child[]; lastPort: number }> {
  const children: Child[] = [];
  let port = headPort;
  try {
    for (const w of CHAIN) {
      const c = spawnTs(`tcp-${w}`, here('./function.ts'), unbatched ? [w, String(port), 'unbatched'] : [w, String(port)]);
      children.push(c);
      port = Number((await c.line(/^listening (\d+)$/))[1]);
    }
  } catch (err) {
    await Promise.all(children.map((c) => c.stop()));
    throw err;
  }
  return { children, lastPort: port };
}

/** Starts the three functions reading from `headPort` (Node by default; tcp-c's are C). */
export type StartFunctions = (headPort: number) => Promise<{ children: Child[]; lastPort: number }>;

export async function startTcpChain(functions: StartFunctions = startTcpFunctions, gatewayName = 'tcp-gateway'): Promise<RunningChain> {
  const gw = spawnTs(gatewayName, here('./gateway.ts'), [], {}, HTTP_SERVER_FLAGS);
  const all: Child[] = [gw];
  const stop = async () => {
    await Promise.all(all.map((c) => c.stop()));
  };
  try {
    const m = await gw.line(/^listening (\d+) (\d+)$/);
    const fns = await functions(Number(m[2]));
    all.push(...fns.children);
    gw.send(`connect ${fns.lastPort}`);
    await gw.line(/^connected$/);
    return { url: `http://127.0.0.1:${m[1]}/chain`, pids: () => all.map((c) => c.pid), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
