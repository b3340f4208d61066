/**
 * Typed handles on a loaded policy's chain maps, opened from their pins: what status, route
 * changes, `top` and the runtime's supervisor read and write. Values use the schemas the generated
 * C was built from (src/schema/chain-maps.ts), and sizes are checked against the pinned maps, so a
 * map pinned by an incompatible bpfctl is refused instead of misread.
 */
import { join } from 'node:path';
import { TypedMap } from '../runtime/typed-map.ts';
import { configValue, countersValue, instancesValue, routeValue, u32, u64 } from '../schema/index.ts';
import { BpfMap } from '../../loader/index.ts';
import { pinRoot, policyDir } from './paths.ts';

export function openChainMaps(policy: string, root = pinRoot()) {
  const dir = join(policyDir(policy, root), 'maps');
  const opened: BpfMap[] = [];
  const open = (name: string) => {
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
      regPorts: new TypedMap(open('reg_ports'), u32, u32),
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
