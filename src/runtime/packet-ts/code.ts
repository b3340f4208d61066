/**
 * What a TypeScript packet function instance runs, built before anything starts (like C packet
 * functions): the handler bundled to JavaScript (cached; no TypeScript tooling in the instance)
 * with a default export checked, and the shim library. The argv and environment the packet
 * runtime adds for it.
 */
import { existsSync } from 'node:fs';
import { BpfctlError } from '../../errors.ts';
import { buildModule, needsBuild } from '../../load/index.ts';
import { ownModule } from '../../package.ts';
import { nodeEntryArgv } from '../supervisor/launch.ts';
import { buildPacketShim } from './build.ts';

/** The process entry of a TypeScript packet function instance, as this copy of bpfctl runs it. */
export const PACKET_TS_MAIN = ownModule('src/runtime/packet-ts/main.ts');

/** A TypeScript packet handler that is missing or exports no function. */
export class PacketHandlerError extends BpfctlError {
  readonly path: string;
  readonly file: string;
  constructor(fn: string, file: string, why: string) {
    const path = `packetFunctions.${fn}.handler`;
    super('E_HANDLER', `${path}: ${why}`);
    this.path = path;
    this.file = file;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), path: this.path, file: this.file };
  }
}

export interface TsPacketCode {
  argv: string[];
  env: Record<string, string>;
}

/** @throws PacketHandlerError, SourceError (file:line:col), PacketShimBuildError */
export async function buildTsPacketFunction(fn: string, source: string): Promise<TsPacketCode> {
  if (!existsSync(source)) throw new PacketHandlerError(fn, source, `handler file not found: ${source}`);
  let js = source;
  if (needsBuild(source)) {
    const built = await buildModule(source);
    if (!built.exports.includes('default')) throw new PacketHandlerError(fn, source, `${source} has no default export (write: export default function (packets) { ... })`);
    js = built.js;
  }
  const shim = await buildPacketShim();
  return { argv: [process.execPath, ...nodeEntryArgv(PACKET_TS_MAIN)], env: { BPFCTL_PKT_SHIM: shim, BPFCTL_PKT_HANDLER: js, BPFCTL_PKT_SOURCE: source } };
}
