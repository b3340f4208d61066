/**
 * Process entry of a TypeScript packet function instance, started by the packet runtime
 * (src/runtime/packet/runtime.ts) with the environment of a C packet function (BPFCTL_POOL,
 * BPFCTL_PKT_FN, BPFCTL_PKT_INST, BPFCTL_PKT_POLL, BPFCTL_FN_NAME, BPFCTL_READY_FD) plus
 * BPFCTL_PKT_SHIM (the built ./shim.c), BPFCTL_PKT_HANDLER (the bundled handler) and
 * BPFCTL_PKT_SOURCE (the file the user wrote, for messages). Says ready on
 * fd 3 like a C instance; SIGTERM drains the ring and exits 0; a bad start is one line on stderr
 * and exit 2.
 */
import { loadHandler } from '../sdk/run.ts';
import { openShim } from './native.ts';
import type { PacketHandler } from './packet.ts';
import { runPacketLoop } from './run.ts';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: the supervisor sets it`);
  return v;
}

function id(name: string): number {
  const v = need(name);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${v}'`);
  return n;
}

async function main(): Promise<void> {
  const name = process.env.BPFCTL_FN_NAME || 'nf';
  const log = (m: string) => process.stderr.write(`${name}: ${m}\n`);
  // The handler is imported before the ring is taken: one that fails to load leaves the ring to
  // the next instance untouched.
  const handler = (await loadHandler(need('BPFCTL_PKT_HANDLER'), process.env.BPFCTL_PKT_SOURCE || undefined)) as unknown as PacketHandler;
  const instance = id('BPFCTL_PKT_INST');
  const shim = openShim({ library: need('BPFCTL_PKT_SHIM'), pool: need('BPFCTL_POOL'), name, fn: id('BPFCTL_PKT_FN'), instance, poll: process.env.BPFCTL_PKT_POLL === '1' });
  // A drained stop, as the C runtime's signal handler: the loop ends once the ring is empty.
  process.on('SIGTERM', () => shim.stop());
  process.on('SIGINT', () => shim.stop());
  shim.ready();
  await runPacketLoop({ shim, handler, ctx: { functionName: name, instance }, log });
  shim.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${process.env.BPFCTL_FN_NAME || 'nf'}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
