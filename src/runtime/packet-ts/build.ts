/**
 * Builds the C half of TypeScript packet functions (./shim.c) into a shared library, cached by the
 * hash of what goes in like every other C part (src/runtime/c/build.ts): the supervisor builds it
 * before anything starts and passes its path to each instance.
 */
import { join } from 'node:path';
import { cacheRoot, PACKAGE_ROOT } from '../../package.ts';
import { CBuildError, cachedExecutable } from '../c/build.ts';

export const SHIM_C = join(PACKAGE_ROOT, 'src/runtime/packet-ts/shim.c');
const INCLUDE_DIR = join(PACKAGE_ROOT, 'bpf/include');
const HEADERS = ['pool.h', 'packet.h', 'packet_layout.h', 'packet_ring.h', 'packet_plane.h', 'packet_hdr.h'].map((h) => join(INCLUDE_DIR, 'bpfctl', h));

/** The shim does not build here (no compiler, or headers missing from the package). */
export class PacketShimBuildError extends CBuildError {
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super('E_PACKET_SHIM_BUILD', message, stderr, options);
  }
}

/** Path of the built shim library. @throws PacketShimBuildError */
export function buildPacketShim(o: { cacheDir?: string; cc?: string } = {}): Promise<string> {
  return cachedExecutable({
    cc: o.cc ?? process.env.CC ?? 'cc',
    args: ['-O2', '-g', '-std=c11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-shared', '-fPIC', `-I${INCLUDE_DIR}`, SHIM_C],
    inputs: [SHIM_C, ...HEADERS],
    cacheDir: o.cacheDir ?? join(cacheRoot(), 'packet'),
    name: 'packet-ts-shim.so',
    fail: (stderr, cause) => new PacketShimBuildError('cannot build the TypeScript packet function shim', stderr, { cause }),
  });
}
