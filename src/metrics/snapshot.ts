/**
 * Everything a scrape reports about one policy, read from its pins (and its pool file) at one
 * moment. Nothing is kept between scrapes: a policy reloaded, rescaled or rerouted meanwhile is
 * read as it is now, and an unloaded one reads as not loaded.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openChainMaps } from '../deploy/chain-maps.ts';
import { pinRoot, policyDir } from '../deploy/paths.ts';
import { loadedManifest, PolicyNotLoadedError } from '../deploy/policy.ts';
import type { ChainMapName } from '../ir/chain-maps.ts';
import { type ChainReading, readChain } from './chain-reader.ts';
import { type GatewayReading, readGateways } from './gateway-reader.ts';
import { type PacketReading, readPacket } from './packet-reader.ts';
import { type PoolReading, readPool } from './pool-reader.ts';
import { readXdp, type XdpReading } from './xdp-reader.ts';

export interface PolicySnapshot {
  loaded: boolean;
  chain: ChainReading | null;
  gateways: GatewayReading[];
  pool: PoolReading | null;
  /** The pool's packet plane: null without packet chains, or while no `bpfctl run` has made the pool. */
  packet: PacketReading | null;
  xdp: XdpReading[];
}

export interface SnapshotOptions {
  root?: string;
  /** The chain's pool file name (default: the policy's name, as `bpfctl run` makes it). */
  poolName?: string;
}

const NOT_LOADED: PolicySnapshot = { loaded: false, chain: null, gateways: [], pool: null, packet: null, xdp: [] };

/** @throws ManifestError (pins of another map layout), LoaderError, PoolError, PacketPlaneError (a plane of another layout) */
export function readPolicy(policy: string, opts: SnapshotOptions = {}): PolicySnapshot {
  const root = opts.root ?? pinRoot();
  let manifest: ReturnType<typeof loadedManifest>;
  try {
    manifest = loadedManifest(policy, root);
  } catch (err) {
    if (err instanceof PolicyNotLoadedError) return NOT_LOADED;
    throw err;
  }
  const dir = policyDir(policy, root);
  let chain: ChainReading | null = null;
  let gateways: GatewayReading[] = [];
  let pool: PoolReading | null = null;
  let packet: PacketReading | null = null;
  const hasChain = existsSync(join(dir, 'maps', 'routes' satisfies ChainMapName));
  if (hasChain) {
    const cm = openChainMaps(policy, root, manifest);
    try {
      chain = readChain(cm, manifest.ir);
    } finally {
      cm.close();
    }
    gateways = readGateways(dir);
  }
  // A policy with only packet chains has no chain maps, but a pool all the same (its frames'
  // buffers, with the packet plane inside).
  const hasPacket = manifest.ir.packet !== undefined;
  if (hasChain || hasPacket) {
    const poolName = opts.poolName ?? policy;
    pool = readPool(poolName);
    if (hasPacket) packet = readPacket(poolName);
  }
  return { loaded: true, chain, gateways, pool, packet, xdp: readXdp(dir, manifest.ir.xdp) };
}
