/**
 * Builds the node-link's native data path (node-link.c, with the native gateway's live-maps.c for
 * the routes) into an executable, cached like the native gateway by the hash of what goes into it.
 */
import { join } from 'node:path';
import { CBuildError, cachedExecutable } from '../../c/build.ts';
import { cacheRoot, PACKAGE_ROOT } from '../../../package.ts';

const DIR = join(PACKAGE_ROOT, 'src/runtime/node-link/native');
const GW_DIR = join(PACKAGE_ROOT, 'src/runtime/gateway-native');
const INCLUDE_DIR = join(PACKAGE_ROOT, 'bpf/include');
/** -Werror: bpfctl's own code; a warning is a bug to fix, not to ship. */
const FLAGS = ['-O2', '-g', '-std=c11', '-Wall', '-Wextra', '-Werror'];

export class NodeLinkBuildError extends CBuildError {
  constructor(message: string, stderr: string, options?: { cause?: unknown }) {
    super('E_NODE_LINK_BUILD', message, stderr, options);
  }
}

/** Compiles the native data path and returns the executable's path. @throws NodeLinkBuildError with the compiler's diagnostics. */
export async function buildNativeNodeLink(o: { cacheDir?: string; cc?: string } = {}): Promise<string> {
  const c = [join(DIR, 'node-link.c'), join(GW_DIR, 'live-maps.c')];
  const inputs = [...c, join(GW_DIR, 'gw.h'), join(GW_DIR, 'pico.h'), join(INCLUDE_DIR, 'bpfctl/fn.h'), join(INCLUDE_DIR, 'bpfctl/pool.h'), join(INCLUDE_DIR, 'bpfctl/gateway_stats.h'), join(PACKAGE_ROOT, 'bpf/chain/chain.gen.h')];
  return cachedExecutable({
    cc: o.cc ?? process.env.CC ?? 'cc',
    args: [...FLAGS, `-I${INCLUDE_DIR}`, ...c],
    inputs,
    namedInputs: true,
    cacheDir: o.cacheDir ?? join(cacheRoot(), 'node-link-native'),
    name: 'bpfctl-node-link',
    fail: (text, cause) => new NodeLinkBuildError('cannot compile the node-link data path', text, { cause }),
  });
}
