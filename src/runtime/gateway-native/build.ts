/**
 * Builds the native gateway (the C files in this folder, linked with libh2o-evloop for
 * picohttpparser) into an executable, cached like C functions by the hash of everything that goes
 * into it, so `bpfctl run` compiles it once per bpfctl version and compiler.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CBuildError, cachedExecutable } from '../c/build.ts';
import { cacheRoot, PACKAGE_ROOT } from '../../package.ts';
/** Its C ships as source at the package root, as the C function runtime does. */
export const NATIVE_GATEWAY_DIR = join(PACKAGE_ROOT, 'src/runtime/gateway-native');
const INCLUDE_DIR = join(PACKAGE_ROOT, 'bpf/include');
const CHAIN_HEADER = join(PACKAGE_ROOT, 'bpf/chain/chain.gen.h');
/** -Werror: the gateway is bpfctl's own code; a warning is a bug to fix, not to ship. */
const FLAGS = ['-O2', '-g', '-std=c11', '-Wall', '-Wextra', '-Werror'];
const LIBS = ['-lh2o-evloop'];

export class NativeGatewayBuildError extends CBuildError {
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super('E_GATEWAY_BUILD', message, stderr, options);
  }
}

export interface BuildNativeGatewayOptions {
  /** Where built executables are cached (default: `<cache root>/gateway-native`, see cacheRoot). */
  cacheDir?: string;
  /** Compiler (default: $CC or cc). */
  cc?: string;
}

function sources(): { c: string[]; all: string[] } {
  const files = readdirSync(NATIVE_GATEWAY_DIR).filter((f) => f.endsWith('.c') || f.endsWith('.h')).sort();
  const c = files.filter((f) => f.endsWith('.c')).map((f) => join(NATIVE_GATEWAY_DIR, f));
  const headers = [join(INCLUDE_DIR, 'bpfctl/fn.h'), join(INCLUDE_DIR, 'bpfctl/pool.h'), CHAIN_HEADER];
  for (const f of readdirSync(join(INCLUDE_DIR, 'bpfctl')).sort()) if (f.endsWith('.h')) headers.push(join(INCLUDE_DIR, 'bpfctl', f));
  return { c, all: [...files.map((f) => join(NATIVE_GATEWAY_DIR, f)), ...new Set(headers)] };
}

/**
 * Compiles the native gateway and returns the executable's path.
 * @throws NativeGatewayBuildError (E_GATEWAY_BUILD) with the compiler's diagnostics (a missing
 * libh2o-evloop says which package to install).
 */
export async function buildNativeGateway(o: BuildNativeGatewayOptions = {}): Promise<string> {
  const { c, all } = sources();
  return cachedExecutable({
    cc: o.cc ?? process.env.CC ?? 'cc',
    args: [...FLAGS, `-I${INCLUDE_DIR}`, ...c, ...LIBS],
    inputs: all,
    namedInputs: true,
    cacheDir: o.cacheDir ?? join(cacheRoot(), 'gateway-native'),
    name: 'bpfctl-gateway',
    fail: (text, cause) => {
      const hint = /h2o-evloop/.test(text) ? ' (install libh2o-evloop-dev: scripts/setup.sh does)' : '';
      return new NativeGatewayBuildError(`cannot compile the native gateway${hint}`, text, { cause });
    },
  });
}
