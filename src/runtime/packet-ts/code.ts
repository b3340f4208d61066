/**
 * What a TypeScript packet function instance runs, built before anything starts (like C packet
 * functions): the handler bundled to JavaScript (cached; no TypeScript tooling in the instance)
 * with a default export checked, and the shim library. The argv and environment the packet
 * runtime adds for it.
 */
import { ownModule } from '../../package.ts';
import { bundleHandler } from '../function-code.ts';
import { nodeEntryArgv } from '../supervisor/launch.ts';
import { buildPacketShim } from './build.ts';

/** The process entry of a TypeScript packet function instance, as this copy of bpfctl runs it. */
export const PACKET_TS_MAIN = ownModule('src/runtime/packet-ts/main.ts');

export interface TsPacketCode {
  argv: string[];
  env: Record<string, string>;
}

/** @throws HandlerError, SourceError (file:line:col), PacketShimBuildError */
export async function buildTsPacketFunction(fn: string, source: string): Promise<TsPacketCode> {
  const js = await bundleHandler(fn, `packetFunctions.${fn}.handler`, source, 'export default function (packets) { ... }');
  const shim = await buildPacketShim();
  return { argv: [process.execPath, ...nodeEntryArgv(PACKET_TS_MAIN)], env: { BPFCTL_PKT_SHIM: shim, BPFCTL_PKT_HANDLER: js, BPFCTL_PKT_SOURCE: source } };
}
