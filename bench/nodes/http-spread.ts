/**
 * http-sidecar-3node: the chain bench's Knative-style chain (../chain/http: every function an
 * HTTP server behind its own proxy sidecar, the same scripts) spread like bpfctl-3node: upper and
 * its sidecar on node a, reverse and its sidecar on b, stamp and its sidecar on c. A function
 * calls the next function's sidecar at that node's address, over the bridge; a sidecar calls its
 * own function on its node's loopback. The client (on a) enters at upper's sidecar.
 * Started from the last function backwards (each needs the address of what it calls next).
 */
import { fileURLToPath } from 'node:url';
import { type Child, HTTP_SERVER_FLAGS } from '../chain/proc.ts';
import { CHAIN } from '../chain/work.ts';
import type { Node, Proc } from './cluster.ts';
import { spawnTsIn } from './ns.ts';

const chainDir = (f: string) => fileURLToPath(new URL(`../chain/http/${f}`, import.meta.url));

export interface HttpSpread {
  /** From node a: upper's sidecar on a's loopback. */
  readonly url: string;
  procs(): Proc[];
  stop(): Promise<void>;
}

/** `nodes[i]` runs CHAIN[i] (upper, reverse, stamp) and its sidecar. */
export async function startHttpSpread(nodes: readonly Node[]): Promise<HttpSpread> {
  const all: { child: Child; label: string }[] = [];
  const stop = async () => {
    await Promise.all(all.map((c) => c.child.stop()));
  };
  try {
    let next: string | null = null;
    let entry = 0;
    for (let i = CHAIN.length - 1; i >= 0; i--) {
      const w = CHAIN[i]!;
      const n = nodes[i]!;
      const fn = spawnTsIn(n.ns, `http-${w}`, chainDir('function.ts'), next === null ? [w] : [w, next], {}, HTTP_SERVER_FLAGS);
      all.push({ child: fn, label: `${n.name}: function ${w}` });
      const fnPort = Number((await fn.line(/^listening (\d+)$/))[1]);
      // Reachable from the other nodes (and from the client on a's loopback).
      const sc = spawnTsIn(n.ns, `http-${w}-sidecar`, chainDir('sidecar.ts'), [String(fnPort), '0.0.0.0'], {}, HTTP_SERVER_FLAGS);
      all.push({ child: sc, label: `${n.name}: sidecar of ${w}` });
      entry = Number((await sc.line(/^listening (\d+)$/))[1]);
      next = `${n.ip}:${entry}`;
    }
    return { url: `http://127.0.0.1:${entry}/chain`, procs: () => all.map((c) => ({ pid: c.child.pid, label: c.label })), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
