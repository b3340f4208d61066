/**
 * A gateway process's slot of the statistics block (`maps/gw_stats`, layout in
 * bpf/include/bpfctl/gateway_stats.h and src/schema/gateway-stats.ts): the Node gateway's writer.
 * Metrics readers in other processes (`bpfctl metrics`, `bpfctl run --metrics`) read the same
 * memory through their own mapping, so nothing is sent anywhere per request.
 *
 * Each call is a few stores into a Float64Array over the mapping: no allocation, no syscall. One
 * process writes one slot (its gw_inst), so plain read-modify-write is safe.
 */
import { join } from 'node:path';
import { BpfMap, type MappedArray, mmapArray } from '../../../loader/index.ts';
import { BpfctlError } from '../../errors.ts';
import type { ChainMapName } from '../../ir/chain-maps.ts';
import { ENGINE, type GatewayEngine, LATENCY_BOUNDS, MAGIC, OFF, ROUTE_SLOTS, SLOT_SIZE, SLOTS, STATUS_CODES, VERSION } from '../../schema/gateway-stats.ts';

export const GW_STATS_MAP = 'gw_stats' satisfies ChainMapName;

export class GatewayStatsError extends BpfctlError {
  constructor(message: string) {
    super('E_GW_STATS', message);
  }
}

const STATUS = OFF.status / 8;
const LATENCY = OFF.latency / 8;
const LATENCY_SUM = OFF.latencySum / 8;
const ROUTES = OFF.routeReplies / 8;
const VERSIONS = OFF.routeVersion / 4;
const NBOUNDS = LATENCY_BOUNDS.length;

export class GatewayStatsSlot {
  private f: Float64Array;
  private versions: Uint32Array;
  private mapped: MappedArray | null;

  private constructor(mapped: MappedArray, readonly gwInst: number) {
    this.mapped = mapped;
    const base = mapped.bytes.byteOffset + gwInst * SLOT_SIZE;
    this.f = new Float64Array(mapped.bytes.buffer, base, SLOT_SIZE / 8);
    this.versions = new Uint32Array(mapped.bytes.buffer, base, SLOT_SIZE / 4);
  }

  /**
   * Maps `<pinDir>/maps/gw_stats` writable and takes slot `gwInst` over: counters a previous
   * process of this instance left are kept (they stay monotonic), a slot never set up is zeroed.
   * @throws GatewayStatsError when the map is not the layout this bpfctl writes; LoaderError when the pin is missing
   */
  static open(pinDir: string, gwInst: number, engine: GatewayEngine = 'node'): GatewayStatsSlot {
    if (!Number.isInteger(gwInst) || gwInst < 0 || gwInst >= SLOTS) throw new GatewayStatsError(`gateway instance ${gwInst} has no stats slot (0..${SLOTS - 1})`);
    const path = join(pinDir, 'maps', GW_STATS_MAP);
    const map = BpfMap.openPinned(path);
    let mapped: MappedArray;
    try {
      if (map.valueSize !== SLOT_SIZE || map.maxEntries !== SLOTS) {
        throw new GatewayStatsError(`${path}: values of ${map.valueSize} bytes x ${map.maxEntries}, this bpfctl writes ${SLOT_SIZE} x ${SLOTS} (load the policy again)`);
      }
      mapped = mmapArray(map, { writable: true });
    } finally {
      map.close();
    }
    const slot = new GatewayStatsSlot(mapped, gwInst);
    slot.takeOver(ENGINE[engine]);
    return slot;
  }

  private takeOver(engine: number): void {
    const v = new DataView(this.f.buffer, this.f.byteOffset, SLOT_SIZE);
    if (v.getUint32(OFF.magic, true) !== MAGIC || v.getUint32(OFF.version, true) !== VERSION) {
      // magic first: a reader skips the slot while it is being zeroed.
      v.setUint32(OFF.magic, 0, true);
      new Uint8Array(this.f.buffer, this.f.byteOffset + 4, SLOT_SIZE - 4).fill(0);
      v.setUint32(OFF.version, VERSION, true);
    }
    v.setUint32(OFF.engine, engine, true);
    v.setUint32(OFF.pid, process.pid, true);
    v.setFloat64(OFF.started, Date.now() / 1000, true);
    v.setUint32(OFF.magic, MAGIC, true);
  }

  /** One response written, with its HTTP status. */
  response(status: number): void {
    this.f[STATUS + (status >= 100 && status < STATUS_CODES ? status : 0)]!++;
  }

  /** A request handed to the chain at `t0` (performance.now()) was answered now. */
  latency(t0: number): void {
    const s = (performance.now() - t0) / 1000;
    let b = 0;
    while (b < NBOUNDS && s > LATENCY_BOUNDS[b]!) b++;
    this.f[LATENCY + b]!++;
    this.f[LATENCY_SUM]! += s;
  }

  /**
   * A reply descriptor on route slot `route` came back for a request this gateway holds, which
   * started on `version` of the route. A slot taken by a newer version is counted from zero, the
   * count reset before the version is stored (readers match the version to the slot's).
   */
  reply(route: number, version: number): void {
    if (route < 0 || route >= ROUTE_SLOTS) return;
    if (this.versions[VERSIONS + route] !== version) {
      this.f[ROUTES + route] = 0;
      Atomics.store(this.versions, VERSIONS + route, version);
    }
    this.f[ROUTES + route]!++;
  }

  /** Unmaps the block (the counters stay in the map); later calls count into nothing instead of faulting. */
  close(): void {
    this.f = new Float64Array(SLOT_SIZE / 8);
    this.versions = new Uint32Array(SLOT_SIZE / 4);
    this.mapped?.unmap();
    this.mapped = null;
  }
}
