/**
 * Builds the C side of packet chains: pktio (the AF_XDP process, linked with libxdp and libbpf)
 * and packet function executables (the user's handler plus the runtime main, nf_main.c). Like C
 * functions (src/runtime/c/build.ts), results are cached by the hash of everything that goes in,
 * so `bpfctl run` compiles only what changed.
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { cacheRoot, PACKAGE_ROOT } from '../../package.ts';
import { CBuildError, cachedExecutable } from '../c/build.ts';

/** The runtime ships as source at the package root (the compiled package has no C under dist/). */
export const NF_MAIN_C = join(PACKAGE_ROOT, 'src/runtime/packet/nf_main.c');
export const PKTIO_C = join(PACKAGE_ROOT, 'src/runtime/packet/pktio.c');
const PKTIO_SOURCES = [PKTIO_C, join(PACKAGE_ROOT, 'src/runtime/packet/pktio_rxtx.c')];
const PKTIO_HEADER = join(PACKAGE_ROOT, 'src/runtime/packet/pktio.h');
export const INCLUDE_DIR = join(PACKAGE_ROOT, 'bpf/include');
const HEADERS = ['pool.h', 'packet.h', 'packet_layout.h', 'packet_ring.h', 'packet_plane.h', 'packet_hdr.h', 'packet_coalesce.h'].map((h) => join(INCLUDE_DIR, 'bpfctl', h));
// _GNU_SOURCE: handlers use POSIX and glibc (inet_pton, getenv, clock_gettime) without thinking about feature macros.
const FLAGS = ['-O2', '-g', '-std=c11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-Werror=implicit-function-declaration'];
const PKTIO_LIBS = ['-lxdp', '-lbpf', '-lpthread'];

/** A packet function handler that does not compile. */
export class PacketFunctionBuildError extends CBuildError {
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super('E_PACKET_FUNCTION', message, stderr, options);
  }
}

/** pktio does not build here: usually libxdp or libbpf headers are missing. */
export class PktioBuildError extends CBuildError {
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super('E_PKTIO_BUILD', message, stderr, options);
  }
}

export interface BuildPacketOptions {
  /** Where built executables are cached (default: `<cache root>/packet`). */
  cacheDir?: string;
  /** Compiler (default: $CC or cc). */
  cc?: string;
  /** Extra compiler/linker arguments (e.g. -lm). */
  extra?: string[];
  /** The main to link with the handler instead of nf_main.c (a test harness). */
  runtime?: string;
}

/**
 * Compiles a packet function handler (`void bpfctl_nf_batch(...)`, bpf/include/bpfctl/packet.h)
 * with the runtime main into an executable and returns its path.
 * @throws PacketFunctionBuildError (E_PACKET_FUNCTION) with the compiler's diagnostics.
 */
export async function buildPacketFunction(source: string, o: BuildPacketOptions = {}): Promise<string> {
  const src = resolve(source);
  if (!existsSync(src)) throw new PacketFunctionBuildError(`packet function source not found: ${src}`, '');
  const main = resolve(o.runtime ?? NF_MAIN_C);
  return build([src, main], basename(src).replace(/\.c$/, ''), o, [], (stderr, cause) => new PacketFunctionBuildError(`cannot compile packet function ${src}`, stderr, { cause }));
}

/**
 * Compiles pktio (src/runtime/packet/pktio.c, pktio_rxtx.c) and returns its path.
 * @throws PktioBuildError (E_PKTIO_BUILD) when the compiler or linker refuses (libxdp-dev, libbpf-dev missing).
 */
export async function buildPktio(o: Omit<BuildPacketOptions, 'runtime'> = {}): Promise<string> {
  return build(PKTIO_SOURCES, 'pktio', { ...o, extra: [...(o.extra ?? []), ...PKTIO_LIBS] }, [PKTIO_HEADER], (stderr, cause) => {
    const hint = /xdp\/xsk\.h|bpf\/bpf\.h|-lxdp|-lbpf/.test(stderr) ? ' (install libxdp-dev and libbpf-dev)' : '';
    return new PktioBuildError(`cannot build pktio${hint}`, stderr, { cause });
  });
}

function build(sources: string[], name: string, o: BuildPacketOptions, headers: string[], fail: (stderr: string, cause: unknown) => CBuildError): Promise<string> {
  return cachedExecutable({
    cc: o.cc ?? process.env.CC ?? 'cc',
    args: [...FLAGS, `-I${INCLUDE_DIR}`, ...sources, ...(o.extra ?? [])],
    inputs: [...sources, ...HEADERS, ...headers],
    cacheDir: o.cacheDir ?? join(cacheRoot(), 'packet'),
    name,
    fail,
  });
}
