/**
 * Starts the tcp-c functions: ../tcp's chain shape (each function connected to the listener of
 * the one before, the first to the gateway's or loop driver's chain port), with the C functions
 * of ./build.ts in place of the Node ones.
 */
import { type Child, spawnChild } from '../proc.ts';
import { CHAIN } from '../work.ts';
import { buildTcpCFunctions } from './build.ts';

/** The three C functions, the first reading from `headPort`; resolves with the last one's port. */
export async function startTcpCFunctions(headPort: number): Promise<{ children: Child[]; lastPort: number }> {
  const bins = await buildTcpCFunctions();
  const children: Child[] = [];
  let port = headPort;
  try {
    for (const w of CHAIN) {
      const c = spawnChild(`tcp-c-${w}`, bins[w], [], { TCP_C_UPSTREAM_PORT: String(port), TCP_C_NAME: `tcp-c ${w}` });
      children.push(c);
      port = Number((await c.line(/^listening (\d+)$/))[1]);
    }
  } catch (err) {
    await Promise.all(children.map((c) => c.stop()));
    throw err;
  }
  return { children, lastPort: port };
}
