/**
 * Typed handles on a loaded policy's chain maps, opened from their pins: what status, route
 * changes, `top` and the runtime's supervisor read and write. Values use the schemas the generated
 * C was built from (src/schema/chain-maps.ts), and sizes are checked against the pinned maps, so a
 * map pinned by an incompatible bpfctl is refused instead of misread.
 */
import { join } from 'node:path';
import { CHAIN_LAYOUT_HASH, type ChainMapName } from '../ir/chain-maps.ts';
import { TypedMap } from '../maps/typed-map.ts';
import { configValue, countersValue, instancesValue, routeValue, u32, u64 } from '../schema/index.ts';
import { BpfMap } from '../../loader/index.ts';
import { type Manifest, ManifestError, readManifest } from './manifest.ts';
import { pinRoot, policyDir } from './paths.ts';

/**
 * Opens the pinned chain maps of a loaded policy (pass its manifest when already read).
 * @throws ManifestError when they were pinned with another map layout (another bpfctl version)
 * @throws LoaderError when a pin is missing
 */
export function openChainMaps(policy: string, root = pinRoot(), manifest?: Manifest) {
  const pdir = policyDir(policy, root);
  manifest ??= readManifest(pdir);
  if (manifest.layoutHash !== CHAIN_LAYOUT_HASH) {
    throw new ManifestError(
      pdir,
      `policy ${policy}: its maps were pinned with chain layout ${manifest.layoutHash?.slice(0, 12) ?? 'unknown'}, this bpfctl uses ${CHAIN_LAYOUT_HASH.slice(0, 12)}; refusing to reuse them (bpfctl load the policy again to replace them)`,
    );
  }
  const dir = join(pdir, 'maps');
  const opened: BpfMap[] = [];
  const open = (name: ChainMapName) => {
    const m = BpfMap.openPinned(join(dir, name));
    opened.push(m);
    return m;
  };
  try {
    return {
      routes: new TypedMap(open('routes'), u32, routeValue),
      instances: new TypedMap(open('instances'), u32, instancesValue),
      /** Raw: values are socket fds going in, cookies coming out. */
      socks: open('socks'),
      config: new TypedMap(open('config'), u32, configValue),
      fnStats: new TypedMap(open('fn_stats'), u32, countersValue),
      routeStats: new TypedMap(open('route_stats'), u32, countersValue),
      dropReasons: new TypedMap(open('drop_reasons'), u32, u64),
      close() {
        for (const m of opened) m.close();
      },
    };
  } catch (err) {
    for (const m of opened) m.close();
    throw err;
  }
}

export type ChainMaps = ReturnType<typeof openChainMaps>;
